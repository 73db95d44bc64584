"""The normalised coordinate range: ints in 0..NORM across each image side (no imports, so the parser and
the CLI can name it without loading numpy)."""

NORM = 1000
