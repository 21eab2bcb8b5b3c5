"""Interlock's own PKI: the deployment's local CA and the certificates it issues."""

from interlock.pki.local_ca import LOCAL_CA_NAME, IssuedCertificate, LocalCA, ensure_local_ca

__all__ = ["LOCAL_CA_NAME", "IssuedCertificate", "LocalCA", "ensure_local_ca"]
