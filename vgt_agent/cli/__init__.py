"""The vgt command line (typer)."""
