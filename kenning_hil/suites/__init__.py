"""Suites: YAML test matrices of models × optimizer chains × targets (schema, parsing, cases)."""
