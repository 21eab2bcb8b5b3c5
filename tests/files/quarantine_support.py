"""What the quarantine and inspection tests share: a manifest with one inbound file integration."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import asyncssh
import yaml

from interlock.audit import MemorySink
from interlock.config.files import FilesSpec
from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.files.quarantine import Quarantine
from interlock.testing.clock import ManualClock

INTEGRATION = "nightly-orders"
HEADER = b"order_id,email,total\r\n"
GOOD_CSV = HEADER + b"1,ada@example.com,12.50\r\n2,bob@example.com,-3.00\r\n"

# The example manifest of the brief (issue 24), host keys replaced at run time.
_MANIFEST = """
version: 1
organisation:
  controller: {name: Example GmbH, contact: privacy@example.com}
systems:
  erp: {url: "https://erp.example:9443", location: DE}
  crm: {url: "https://crm.example", location: DE}
partners:
  acme:
    location: NL
    agreement: "TPA-2025-017 (signed 2025-03-01)"
    contact: edi@acme.example
    sftp:
      host: sftp.acme.example
      user: interlock
      host_keys: [KEY]
      key: secret://acme/sftp-key
    drop:
      keys: [KEY]
clients:
  file-sync: {auth: [mtls]}
integrations:
  nightly-orders:
    type: file_transfer
    source: erp
    target: crm
    client: file-sync
    purpose: Nightly order files from ACME
    legal_basis: contract
    data_categories: [user.contact.email]
    data_subjects: [customer]
    retention: P30D
    files:
      partner: acme
      direction: inbound
      transport: sftp
      remote_path: /outbound/orders
      pattern: "*.csv"
      schedule: 1h
      format: csv
      csv_columns: [order_id, email, total]
      max_size: 10MiB
      checksum: sha256-sidecar
"""


def manifest(directory: Path, *, partner: dict[str, Any] | None = None, **files: Any) -> Manifest:
    """The example manifest, its ``files:`` section updated with ``files`` (None removes a key).

    ``partner``: sections added to (or replacing) the partner's.
    """
    document: dict[str, Any] = yaml.safe_load(_MANIFEST)
    key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    acme = document["partners"]["acme"]
    acme.update(partner or {})
    acme["sftp"]["host_keys"] = [key]
    acme["drop"]["keys"] = [key]
    spec = copy.deepcopy(document["integrations"][INTEGRATION]["files"])
    for name, value in files.items():
        if value is None:
            spec.pop(name, None)
        else:
            spec[name] = value
    document["integrations"][INTEGRATION]["files"] = spec
    path = directory / "interlock.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return load_manifest(path)


def spec(directory: Path, **files: Any) -> FilesSpec:
    """The integration's ``files:`` section with ``files`` applied."""
    found = manifest(directory, **files).integrations[INTEGRATION].files
    if found is None:
        raise AssertionError("the example integration lost its files: section")
    return found


def sidecar(name: str, data: bytes) -> dict[str, bytes]:
    """The ``NAME.sha256`` sidecar a partner sends, in ``sha256sum`` format."""
    return {f"{name}.sha256": f"{hashlib.sha256(data).hexdigest()}  {name}\n".encode()}


class Rig:
    """A quarantine in ``tmp_path`` with a memory audit sink and a manual clock."""

    def __init__(self, directory: Path, **files: Any) -> None:
        """Build the manifest (``files`` overrides) and the quarantine under ``directory/area``."""
        self.root = directory / "area"
        self.audit = MemorySink()
        self.clock = ManualClock()
        self.quarantine = Quarantine(
            self.root,
            manifest(directory, **files),
            INTEGRATION,
            audit=self.audit,
            now=self.clock,
            manifest_dir=directory,
        )

    def path(self, area: str) -> Path:
        """One of the three areas of the integration."""
        return self.root / area / INTEGRATION

    def everything(self) -> list[Path]:
        """Every file under the root (hidden temporary files too)."""
        return sorted(path for path in self.root.rglob("*") if path.is_file())
