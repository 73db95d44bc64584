"""The world benchmark splits vgt-tiny is measured on, their folders, and any backend as the ask agent over a split.

`ensure_split` makes a split with `vgt world make`'s code when missing (`vgt repro tiny`'s first stage);
`run_split` runs the ask graph over samples outside any command, which is how the tests check that the
world-oracle teacher is right through the very graph and grounder the student is later evaluated with
(`vgt repro tiny` itself goes through `vgt synth --via agent` and `vgt eval --variant agent`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vgt_agent.backends.base import VLMBackend
from vgt_agent.graphs.ask import AskContext, AskLimits, run_ask
from vgt_agent.grounders.base import Grounder
from vgt_agent.grounders.world import WorldGrounder
from vgt_agent.sample import Sample
from vgt_agent.store import ImageRecord, SampleRecord, TraceStore
from vgt_agent.world.splits import BENCHMARKS, COUNTING_BENCHMARKS, SPATIAL_BENCHMARKS
from vgt_agent.world.storage import is_split_dir, load_split, make_split

EXISTENCE, ATTRIBUTE, PHRASED = ("world-exist",), ("world-attribute",), ("world-phrased",)
GROUPS = {"counting": COUNTING_BENCHMARKS, "spatial": SPATIAL_BENCHMARKS, "existence": EXISTENCE,
          "attribute": ATTRIBUTE, "phrased": PHRASED}
# What vgt-tiny is measured on: every family in the varied style (the targets), the six in the canonical one.
EVAL_SPLITS = (*(f"{s}-varied" for s in BENCHMARKS + EXISTENCE + ATTRIBUTE + PHRASED), *BENCHMARKS)


def split_group(split: str) -> tuple[str, str]:
    """(group, style) of a world split name: ("counting", "varied") for world-tally-varied."""
    base = split.removesuffix("-varied")
    group = next((g for g, names in GROUPS.items() if base in names), "other")
    return group, "varied" if split.endswith("-varied") else "canonical"


@dataclass
class RunResult:
    sample: Sample
    state: dict[str, Any]

    @property
    def correct(self) -> bool:
        return bool(self.state.get("correct"))


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
