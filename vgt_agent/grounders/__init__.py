"""Grounders: concept phrase -> instances (mask, box, point, score)."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from vgt_agent.grounders.base import Grounder, GroundingResult, Instance

# Concrete grounders load on first use, so importing the interface stays cheap (no scipy).
_LAZY = {
    "WorldGrounder": "vgt_agent.grounders.world",
    "GoldGrounder": "vgt_agent.grounders.gold",
    "ShuffledGoldGrounder": "vgt_agent.grounders.shuffled_gold",
}

__all__ = ["GoldGrounder", "Grounder", "GroundingResult", "Instance", "ShuffledGoldGrounder", "WorldGrounder"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
