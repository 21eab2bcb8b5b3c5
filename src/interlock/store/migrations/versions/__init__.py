"""Migration scripts; each domain package adds its own, named after itself."""
