"""The embedded world: procedural shapes scenes with exact masks and questions.

Public API (imported lazily, so `vgt_agent.world.palette` stays a light import for the grounders):
`make_scene(rng, spec)`, `render(scene)`, `make_sample(split, index)`, `make_split(out_dir, split)`,
`load_split(dir)`, `SPLITS`, and the question families in `FAMILIES`.
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "Attr": "scene", "SceneSpec": "scene", "Scene": "scene", "WorldObject": "scene", "make_scene": "scene",
    "PlacementError": "scene", "render": "render", "make_sample": "generate", "make_question": "generate",
    "make_split": "storage", "load_split": "storage", "read_rows": "storage", "SPLITS": "splits",
    "SplitSpec": "splits", "FAMILIES": "families", "Question": "question", "Gold": "question",
}


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(f"{__name__}.{_API[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
