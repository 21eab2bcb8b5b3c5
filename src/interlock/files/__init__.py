"""File transfer and B2B: SFTP with pinned host keys, a drop server, files checked in quarantine.

An integration of ``type: file_transfer`` (or ``b2b_edi``) moves files with a
trading partner of the manifest (docs/files.md). Every file received lands in
a quarantine area and is checked — size, type by content, encoding, the
integration's format and schema with the existing validators, a checksum or
signature the partner must send — before it moves on to processing; a refused
file stays in quarantine with its reasons. Every file is an audit entry with
its hash, size and record count.
"""
