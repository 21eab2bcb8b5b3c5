"""``interlock check``: the security checklist, evaluated per integration (docs/check.md)."""
