"""Boundary validation: bodies, parameters, schemas, business rules, safe parsing, minimisation."""
