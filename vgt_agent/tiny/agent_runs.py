"""Run any backend as the ask agent over a world split: teacher traces for vgt-tiny and its agent-mode eval.

Why one loop for both: the teacher's traces and the student's evaluation must go through the very same ask
graph + WorldGrounder, so what the student imitates is exactly what it will be asked to continue.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from vgt_agent.backends.base import VLMBackend
from vgt_agent.datasets.sample import Sample
from vgt_agent.graphs.ask import AskContext, AskLimits, run_ask
from vgt_agent.grounders.base import Grounder, GroundingResult
from vgt_agent.grounders.gold import GoldGrounder
from vgt_agent.grounders.world import WorldGrounder
from vgt_agent.store import ImageRecord, SampleRecord, TraceStore
from vgt_agent.world.storage import is_split_dir, load_split, make_split

SPATIAL = ("world-vsr", "world-embspatial", "world-spatialmqa", "world-multihop")
COUNTING = ("world-tally", "world-countqa")
BENCHMARKS = COUNTING + SPATIAL


@dataclass
class RunResult:
    sample: Sample
    state: dict[str, Any]

    @property
    def correct(self) -> bool:
        return bool(self.state.get("correct"))


class ShuffledGoldGrounder:
    """The sample's gold masks in a random order: the teacher's fast grounder for training traces.

    Why: the WorldGrounder returns exactly the gold masks (recall/precision/IoU 1.0 on every split) but
    takes ~0.1 s per call; the scene graph gives the same coordinates in ~1 ms. Gold lists instances in
    reading order while the WorldGrounder lists them by score, so the order is shuffled: a student must
    not learn that the first instance listed is the topmost one.
    """

    name = "gold-shuffled"

    def __init__(self, sample: Sample, seed: int = 0) -> None:
        self.inner = GoldGrounder(sample)
        self.rng = random.Random(f"{seed}/{sample.id}")

    def ground(self, image, concept: str) -> GroundingResult:
        result = self.inner.ground(image, concept)
        instances = list(result.instances)
        self.rng.shuffle(instances)
        return replace(result, instances=instances)


def ensure_split(root: Path, split: str, n: int, seed: int | None = None, workers: int = 1,
                 progress: Callable[[int, int], None] | None = None) -> Path:
    """The split folder under root with n samples, made by `vgt world make`'s code when missing."""
    out = root / (split if seed is None else f"{split}-s{seed}")
    if not (is_split_dir(out) and sum(1 for _ in load_split(out)) >= n):
        make_split(out, split, n=n, seed=seed, workers=workers, progress=progress)
    return out


def run_split(
    backend: VLMBackend,
    samples: list[Sample],
    *,
    grounder: Grounder | None = None,
    grounder_for: Callable[[Sample], Grounder] | None = None,
    store: TraceStore | None = None,
    run_id: str | None = None,
    limits: AskLimits | None = None,
    on_done: Callable[[RunResult], None] | None = None,
) -> Iterator[RunResult]:
    """The ask graph on each sample (point groundings, in-text protocol), yielding the final states.

    `grounder_for` builds a grounder per sample (e.g. `ShuffledGoldGrounder`); otherwise one `grounder`.
    """
    grounder = grounder or WorldGrounder()
    limits = limits or AskLimits(max_turns=6, max_tool_calls=4, max_tokens=768)
    for sample in samples:
        image = sample.load_image()
        record = SampleRecord.from_sample(sample, ImageRecord.from_path(sample.image_path))
        tool = grounder_for(sample) if grounder_for is not None else grounder
        ctx = AskContext(image=image, sample=record, backend=backend, grounder=tool, kind="point",
                         protocol="text", limits=limits, store=store, run_id=run_id)
        result = RunResult(sample, dict(run_ask(ctx)))
        if on_done is not None:
            on_done(result)
        yield result
