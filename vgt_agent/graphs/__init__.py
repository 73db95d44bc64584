"""graphs: see README."""
