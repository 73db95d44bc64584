"""`--coords`, shared by every command that talks to a model: the coordinate convention it reads and writes
(`geometry/conventions.py`), converted at the backend boundary (`backends/coord_boundary.py`)."""

from __future__ import annotations

import typer

from vgt_agent.vocabulary import CANONICAL_COORDS

CoordsOption = typer.Option(
    None, "--coords", envvar="VGT_COORDS", show_default=False, case_sensitive=False,
    help="The model's coordinate convention (default: its family's, e.g. qwen2.5-vl-pixels for Qwen2.5-VL; "
         "norm1000 for a server). Stored and scored in 0..1000 either way.",
)


def convention_name(backend: object) -> str:
    """The convention a (possibly wrapped) backend shows its model."""
    return getattr(getattr(backend, "convention", None), "name", CANONICAL_COORDS)
