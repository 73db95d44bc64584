"""backends: see README."""
