"""What a registered dataset is: where its rows come from and how one row becomes Samples.

Conventions every mapper follows, so prompt builders and scorers never special-case a dataset:
* `Sample.question` is the bare question; multiple-choice options live in `Sample.choices` (never inlined),
  and the gold answer of a choice question is its option letter ("A", "B", ...).
* Yes/no golds are "yes"/"no"; count golds are decimal integers.
* Images that the dataset embeds are decoded into `Sample.image`; images it only names (COCO files, web
  URLs) are expected under `RowContext.image_dir`, which becomes `Sample.image_path`, with the download URL
  in `meta["image_url"]` when the dataset gives one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vgt_agent.sample import Sample

Kind = Literal["counting", "spatial", "mixed"]
Source = Literal["hub", "github", "world", "local"]


class SkipRow(ValueError):
    """A row whose gold answer cannot be read; the loader skips it and warns once with a count."""


@dataclass(frozen=True)
class RowContext:
    """What a mapper needs besides the row: names for ids and where external images live."""

    dataset: str
    split: str
    image_dir: Path

    def sample(self, key: object, **fields: Any) -> Sample:
        """A Sample of this dataset and split, its id built from the row's own key."""
        return Sample(id=f"{self.dataset}-{self.split}-{key}", dataset=self.dataset, split=self.split, **fields)


Mapper = Callable[[Mapping[str, Any], int, RowContext], Iterable[Sample]]


@dataclass(frozen=True)
class DatasetSpec:
    """One registered dataset.

    `files` maps a split to glob patterns of its raw files in the upstream repository layout; they are used
    when `load_samples(..., path=...)` points at a local copy instead of the Hugging Face cache.
    `hub_image_dir` is the folder of the Hub repo holding images that rows only name (fetched from the Hub
    snapshot, since `load_dataset` downloads just the data files). `schema` says whether the field mapping
    was checked against the published schema ("confirmed") or written from indirect evidence ("assumed";
    see the mapper's comment).
    """

    name: str
    kind: Kind
    description: str
    source: Source
    default_split: str
    splits: tuple[str, ...] = ()
    hub_id: str | None = None
    config: str | None = None
    hub_data_files: Mapping[str, str] | None = None
    hub_image_dir: str | None = None
    files: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    mapper: Mapper | None = None
    role: Literal["train", "eval", "train+eval"] = "eval"
    schema: Literal["confirmed", "assumed"] = "confirmed"
    hint: str = ""

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly description for `vgt datasets` style listings."""
        return {
            "name": self.name,
            "kind": self.kind,
            "source": self.source,
            "hub_id": self.hub_id,
            "config": self.config,
            "default_split": self.default_split,
            "splits": list(self.splits),
            "role": self.role,
            "schema": self.schema,
            "description": self.description,
        }
