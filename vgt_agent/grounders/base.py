"""The one grounding interface used by the agent, synthesis and rewards.

A grounder turns (image, concept phrase) into instances. The shape follows SAM3's output:
several instances, each with a mask and a score, plus an image-level presence score.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from PIL import Image


@dataclass(frozen=True, eq=False)
class Instance:
    """One object found for a concept. Box and point are in pixels, derived from the mask by `geometry`."""

    mask: np.ndarray  # (H, W) bool
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 (pixel edges, x2/y2 exclusive)
    point: tuple[int, int]  # x (column), y (row) of the distance-transform maximum
    score: float
    label: str = ""  # what the grounder believes this is, e.g. "red circle"


@dataclass(frozen=True)
class GroundingResult:
    """What a grounder returns: the instances (best first), and why there are none when empty."""

    concept: str
    instances: list[Instance] = field(default_factory=list)
    reason: str | None = None  # set when the concept could not be handled (unknown words, ...)
    presence: float | None = None  # image-level "is it there at all" score, when the grounder has one

    def __iter__(self) -> Iterator[Instance]:
        return iter(self.instances)

    def __len__(self) -> int:
        return len(self.instances)

    def __getitem__(self, i: int) -> Instance:
        return self.instances[i]


class Grounder(Protocol):
    """Anything that grounds a concept phrase in an image."""

    name: str  # e.g. "world", "gold", "sam3:facebook/sam3"

    def ground(self, image: Image.Image, concept: str) -> GroundingResult: ...
