"""What goes into the trace store: plain dataclasses, free of SQL.

A trace is one question on one image answered by one run (one `variant`, one `attempt`): its messages,
the parsed groundings, the final answer against gold, who produced it, timings, and the grounder's masks.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # image decoding (PIL, numpy) loads when an image is recorded, not for reading the store
    from vgt_agent.sample import Sample


def short_hash(*parts: object) -> str:
    """A stable 16-hex id from parts; keys built this way make re-runs idempotent."""
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class ImageRecord:
    """An image by content hash; pixels stay on disk at `path`."""

    hash: str
    path: str
    width: int
    height: int

    @classmethod
    def from_path(cls, path: str | Path) -> ImageRecord:
        """Hash the file's bytes and record the size of the image as `images.load_image` decodes it (upright,
        so an EXIF-rotated photo records the size the model sees and its points are read in); raises
        ValueError when it is not a readable image."""
        from PIL import Image

        from vgt_agent.images import upright_size

        p = Path(path)
        try:
            data = p.read_bytes()
            with Image.open(io.BytesIO(data)) as im:
                im.verify()
            with Image.open(io.BytesIO(data)) as im:
                width, height = upright_size(im)
        except (OSError, ValueError, SyntaxError) as e:
            raise ValueError(f"cannot read image {p}: {e}") from e
        return cls(hashlib.sha256(data).hexdigest(), str(p.resolve()), width, height)


@dataclass(frozen=True)
class SampleRecord:
    """A question on an image, with its gold answer when known. Unique by (dataset, split, key)."""

    dataset: str
    split: str
    key: str
    question: str
    image: ImageRecord
    gold_answer: str | None = None
    answer_type: str | None = None
    choices: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.id_for(self.dataset, self.split, self.key)

    @staticmethod
    def id_for(dataset: str, split: str, key: str) -> str:
        """The stored id of a sample, without building the record (what resumable jobs look up)."""
        return short_hash("sample", dataset, split, key)

    @classmethod
    def from_sample(cls, sample: Sample, image: ImageRecord) -> SampleRecord:
        """A dataset sample as stored; the scene graph and pixels stay out (masks live in `gold_objects`)."""
        meta = {k: v for k, v in sample.meta.items() if k != "objects"}
        meta["gold_objects"] = [{"name": g.name, "role": g.role, "rle": g.rle, "box": g.box}
                                for g in sample.gold_objects]
        return cls(sample.dataset, sample.split, sample.id, sample.question, image, sample.answer,
                   sample.answer_type, tuple(sample.choices), meta)


@dataclass(frozen=True)
class GroundingRecord:
    """One `<obj>` tag of a trace: normalised 0..1000 coordinates, who wrote it, whether it was verified."""

    phrase: str
    kind: str  # "point" | "box"
    coords: list[list[int]]
    source: str = "model"  # "model" wrote it itself, "tool" was injected from the grounder
    verified: bool | None = None
    score: float | None = None
    span: tuple[int, int] | None = None


@dataclass(frozen=True)
class MaskRecord:
    """One instance mask the grounder returned, as COCO RLE, with its pixel box and point."""

    concept: str
    rle: dict[str, Any]
    box: list[float]
    point: list[int]
    score: float
    grounder: str
    grounding_idx: int | None = None
    selected: bool = True


@dataclass(frozen=True)
class TraceRecord:
    """One answer by one run to one sample. Its id is derived from (run, sample, variant, attempt)."""

    run_id: str
    sample: SampleRecord
    variant: str  # "agent", "point", "box", "plain", "direct", "candidate", ...
    status: str = "ok"  # "ok" | "rejected" | "error"
    attempt: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)
    completion: str = ""
    answer: str | None = None
    answer_source: str | None = None
    correct: bool | None = None
    verified_fraction: float | None = None
    reason: str | None = None
    error: str | None = None
    backend: str | None = None
    model: str | None = None
    grounder: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    groundings: list[GroundingRecord] = field(default_factory=list)
    masks: list[MaskRecord] = field(default_factory=list)
    parent_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return short_hash("trace", self.run_id, self.sample.id, self.variant, self.attempt)
