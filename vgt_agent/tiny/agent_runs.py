"""Run any backend as the ask agent over a world split: teacher traces for vgt-tiny and its agent-mode eval.

Why one loop for both: the teacher's traces and the student's evaluation must go through the very same ask
graph + WorldGrounder, so what the student imitates is exactly what it will be asked to continue.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vgt_agent.backends.base import VLMBackend
from vgt_agent.datasets.sample import Sample
from vgt_agent.graphs.ask import AskContext, AskLimits, run_ask
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


def ensure_split(root: Path, split: str, n: int, seed: int | None = None) -> Path:
    """The split folder under root with n samples, made by `vgt world make`'s code when missing."""
    out = root / (split if seed is None else f"{split}-s{seed}")
    if not (is_split_dir(out) and sum(1 for _ in load_split(out)) >= n):
        make_split(out, split, n=n, seed=seed)
    return out


def run_split(
    backend: VLMBackend,
    samples: list[Sample],
    *,
    grounder: WorldGrounder | None = None,
    store: TraceStore | None = None,
    run_id: str | None = None,
    limits: AskLimits | None = None,
    on_done: Callable[[RunResult], None] | None = None,
) -> Iterator[RunResult]:
    """The ask graph on each sample (point groundings, in-text protocol), yielding the final states."""
    grounder = grounder or WorldGrounder()
    limits = limits or AskLimits(max_turns=6, max_tool_calls=4, max_tokens=768)
    for sample in samples:
        image = sample.load_image()
        record = SampleRecord.from_sample(sample, ImageRecord.from_path(sample.image_path))
        ctx = AskContext(image=image, sample=record, backend=backend, grounder=grounder, kind="point",
                         protocol="text", limits=limits, store=store, run_id=run_id)
        result = RunResult(sample, dict(run_ask(ctx)))
        if on_done is not None:
            on_done(result)
        yield result
