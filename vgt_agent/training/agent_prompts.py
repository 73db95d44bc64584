"""The prompts and the grounder of `vgt train rl --variant agent`.

Prompts: `data.rl_rows_*` with the `agent` variant: the same samples, gold answers and references as the
other RL variants, asked the way `graphs/ask.py` asks the tool-calling policy (its in-text tool system
prompt, then the image and the question). This module reads such a prompt back (`prompt_view`).

Grounders: `world` (WorldGrounder: pixels only, exact on world images, the grounder `vgt ask` and the
agent-mode evaluation use) or `gold` (ShuffledGoldGrounder: the sample's scene graph when the prompts come
from a world split (`--samples-from`), as exact as the world grounder; from the store, whose samples keep no
scene graph, only the reference objects, named as the question names them: "large green circle" finds
nothing when the question said "green circle"). A rollout sees its prompt's messages, not its dataset row, so
the gold grounder finds the row by what the prompt shows: the image's pixels and the question text.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from PIL import Image

from vgt_agent.grounders.base import Grounder
from vgt_agent.images import to_rgb
from vgt_agent.sample import GoldObject, Sample
from vgt_agent.store import SampleRecord
from vgt_agent.training.data import DataError
from vgt_agent.vocabulary import ROLLOUT_GROUNDERS

# ROLLOUT_GROUNDERS: gold is the same as gold-shuffled (a rollout never sees instances in reading order, as
# synth and eval name the shuffled one)


def _parts(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    content = message["content"]
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def user_text(messages: Iterable[Mapping[str, Any]]) -> str:
    """The text the user message(s) of a prompt ask: the question with its options, as formatted."""
    return "".join(p.get("text") or "" for m in messages if m["role"] == "user" for p in _parts(m)
                   if p["type"] == "text")


def prompt_view(messages: list[dict[str, Any]]) -> tuple[str, str, Image.Image]:
    """(system prompt, user text, image) of a TRL prompt whose image TRL has put into the user message."""
    system = "".join(p.get("text") or "" for m in messages if m["role"] == "system" for p in _parts(m)
                     if p["type"] == "text")
    images = [p["image"] for m in messages if m["role"] == "user" for p in _parts(m)
              if p["type"] == "image" and p.get("image") is not None]
    if len(images) != 1:
        raise ValueError(f"an agent RL prompt carries exactly one image, this one {len(images)}")
    return system, user_text(messages), images[0]


def image_digest(image: Image.Image) -> str:
    """A hash of the pixels (as RGB): the same picture hashes the same whether read from its file or decoded
    by `datasets`."""
    rgb = to_rgb(image)
    return hashlib.sha256(f"{rgb.size}".encode() + rgb.tobytes()).hexdigest()


def reference_sample(row: Mapping[str, Any], question: str) -> Sample:
    """The row as a Sample whose gold objects are its reference objects, one per instance mask."""
    refs = json.loads(row["references"])
    golds = tuple(GoldObject(name=obj["name"], rle=rle, role=obj.get("context", ""))
                  for obj in refs["objects"] for rle in obj.get("rles") or [])
    return Sample(id=row["sample_id"], dataset=row["dataset"], split="", question=question,
                  answer=row["gold_answer"] or "", answer_type=row["answer_type"] or "", image_path=row["image"],
                  gold_objects=golds, meta={"width": refs["width"], "height": refs["height"]})


class GrounderSource(Protocol):
    """The grounder one rollout of a prompt calls; `rollout` numbers the rollouts (seeds a shuffle)."""

    name: str

    def for_prompt(self, image: Image.Image, question: str, rollout: int) -> Grounder: ...


class WorldSource:
    """One WorldGrounder for every rollout: it reads only the pixels (and caches its work per image)."""

    name = "world"

    def __init__(self) -> None:
        from vgt_agent.grounders.world import WorldGrounder

        self.grounder = WorldGrounder()

    def for_prompt(self, image: Image.Image, question: str, rollout: int) -> Grounder:
        return self.grounder


class GoldSource:
    """A ShuffledGoldGrounder per rollout, over the sample the prompt was made from (its scene graph when
    `samples` has it, else the row's reference objects)."""

    name = "gold"

    def __init__(self, rows: Iterable[Mapping[str, Any]], samples: Iterable[Sample] = (), seed: int = 0) -> None:
        self.seed = seed
        scenes = {SampleRecord.id_for(s.dataset, s.split, s.id): s for s in samples if s.meta.get("objects")}
        self.samples: dict[tuple[str, str], Sample] = {}
        for row in rows:
            question = user_text(row["prompt"])
            with Image.open(row["image"]) as image:
                key = (image_digest(image), question)
            self.samples[key] = scenes.get(row["sample_id"]) or reference_sample(row, question)

    def for_prompt(self, image: Image.Image, question: str, rollout: int) -> Grounder:
        from vgt_agent.grounders.shuffled_gold import ShuffledGoldGrounder

        sample = self.samples.get((image_digest(image), question))
        if sample is None:
            raise KeyError(f"no RL row shows this image with the question {question!r}")
        return ShuffledGoldGrounder(sample, seed=self.seed * 1_000_003 + rollout)


def grounder_source(name: str, rows: Iterable[Mapping[str, Any]], samples: Iterable[Sample] = (),
                    seed: int = 0) -> GrounderSource:
    """The named grounder for the rollouts of these rows (DataError for an unknown name)."""
    if name == "world":
        return WorldSource()
    if name in ("gold-shuffled", "gold"):
        return GoldSource(rows, samples, seed)
    raise DataError(f"unknown grounder {name!r}; expected one of {', '.join(ROLLOUT_GROUNDERS)}")
