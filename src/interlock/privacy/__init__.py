"""Privacy (GDPR): the Art. 30 register and drift between declared and observed flows."""
