"""The gateway: the HTTPS data plane every call between systems passes through."""
