"""tiny: see README."""
