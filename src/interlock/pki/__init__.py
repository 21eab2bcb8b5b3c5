"""Interlock's own PKI: a root, an issuing intermediate and the certificates it issues."""

from interlock.pki.authority import CertificateInfo, Issued, Pki
from interlock.pki.local_ca import LOCAL_CA_NAME, IssuedCertificate, LocalCA, ensure_local_ca

__all__ = [
    "LOCAL_CA_NAME",
    "CertificateInfo",
    "Issued",
    "IssuedCertificate",
    "LocalCA",
    "Pki",
    "ensure_local_ca",
]
