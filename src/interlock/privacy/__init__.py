"""Privacy (GDPR): the register's facts, and drift between declared and observed flows."""
