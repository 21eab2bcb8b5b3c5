"""Art. 30 facts of file-transfer and B2B integrations: the partner, and the file measures.

The trading partner receives (or sends) the files: the register lists it
among the recipients with its location and the reference of the partner
agreement (the seed's "partner agreement"), and the measures say how files
move and what each received file passes before anyone processes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from interlock.config.units import format_duration
from interlock.privacy.ropa_measures import Measure

if TYPE_CHECKING:
    from interlock.config.manifest import Integration, Manifest

__all__ = ["files_measures", "partner_of"]


def partner_of(manifest: Manifest, flow: Integration) -> tuple[str, str | None, str | None]:
    """The partner's name, location and agreement (None when it is not declared)."""
    if flow.files is None:
        raise ValueError("not a file integration")
    partner = manifest.partners.get(flow.files.partner)
    return (
        flow.files.partner,
        partner.location if partner is not None else None,
        partner.agreement if partner is not None else None,
    )


def files_measures(manifest: Manifest, name: str, flow: Integration) -> Iterator[Measure]:
    """The measures of integration ``name``'s files (nothing for other types)."""
    spec = flow.files
    if spec is None:
        return
    at = f"integrations.{name}.files"
    partner = manifest.partners.get(spec.partner)
    if spec.transport == "sftp" and partner is not None and partner.sftp is not None:
        yield Measure(
            "tls",
            f"files move over SFTP with {spec.partner}: its host key pinned "
            f"({len(partner.sftp.host_keys)} key(s)), Interlock authenticated by key",
            f"partners.{spec.partner}.sftp",
        )
    elif spec.transport == "as2" and partner is not None and partner.as2 is not None:
        profile = partner.as2
        yield Measure(
            "tls",
            f"files move with {spec.partner} over AS2 (RFC 4130): HTTPS, S/MIME signed "
            f"({profile.signing}) and encrypted ({profile.encryption}), signed receipts (MDNs) "
            "with the content's MIC checked; the partner's certificate pinned",
            f"partners.{spec.partner}.as2",
        )
    elif spec.transport == "drop" and partner is not None and partner.drop is not None:
        mode = "upload-only" if partner.drop.upload_only else "read and write"
        yield Measure(
            "authentication",
            f"{spec.partner} uploads to Interlock's SFTP drop server with its own keys only, "
            f"into its own directory ({mode})",
            f"partners.{spec.partner}.drop",
        )
    yield Measure(
        "validation",
        f"every received file is held in quarantine until its size (max {spec.max_size} "
        f"bytes), type by content, encoding and {spec.format} format are checked; refused "
        f"files are kept {format_duration(spec.quarantine_retention)} with their reasons",
        f"{at}.format",
    )
