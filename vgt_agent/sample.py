"""A question about an image with its gold answer: what every dataset adapter yields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PIL import Image

from vgt_agent.images import load_image, to_rgb

if TYPE_CHECKING:  # an annotation only: importing a Sample need not load the answer parsers
    from vgt_agent.answers import AnswerType


@dataclass(frozen=True)
class GoldObject:
    """An object that makes the gold answer true, with its exact mask as COCO RLE when known."""

    name: str  # e.g. "red circle"
    rle: dict | None = None  # {"size": [h, w], "counts": str}, see geometry.encode_rle
    box: tuple[float, float, float, float] | None = None  # pixels, x1, y1, x2, y2
    role: str = ""  # "counted", "anchor", "target", "alternative", ...
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Sample:
    """One question on one image. `image` is loaded lazily from `image_path` when not given."""

    id: str
    dataset: str
    split: str
    question: str
    answer: str
    answer_type: AnswerType
    image_path: str | None = None
    image: Image.Image | None = None
    choices: tuple[str, ...] = ()
    gold_objects: tuple[GoldObject, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    def load_image(self) -> Image.Image:
        """The image as upright RGB, as a viewer shows it (`images.to_rgb`); raises ValueError naming the file
        when it is missing or not an image."""
        if self.image is not None:
            return to_rgb(self.image)
        if not self.image_path:
            raise ValueError(f"sample {self.id} has no image")
        return load_image(self.image_path)
