"""Agent-mode evaluation of a policy on the six held-out world benchmarks (ask graph + WorldGrounder).

Greedy decoding, one run per question: the shipped default answers deterministically, so that is what is
measured. Every run is logged as a trace when a store is given, like `vgt ask` would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.table import Table

from vgt_agent.backends.base import VLMBackend
from vgt_agent.grounders.world import WorldGrounder
from vgt_agent.store import TraceStore
from vgt_agent.tiny.agent_runs import BENCHMARKS, COUNTING, RunResult, ensure_split, run_split
from vgt_agent.world.storage import load_split


@dataclass
class SplitScore:
    split: str
    n: int = 0
    correct: int = 0
    answered: int = 0  # runs that ended with a boxed answer (not truncated / looping)
    by_family: dict[str, list[int]] = field(default_factory=dict)  # family -> [correct, n]

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0


def evaluate(
    backend: VLMBackend,
    data_root: Path,
    n: int,
    *,
    splits: tuple[str, ...] = BENCHMARKS,
    store: TraceStore | None = None,
    run_id: str | None = None,
    on_done: Callable[[str, RunResult], None] | None = None,
) -> list[SplitScore]:
    """Accuracy per split on its first n samples."""
    grounder = WorldGrounder()
    scores = []
    for split in splits:
        samples = list(load_split(ensure_split(data_root, split, n)))[:n]
        score = SplitScore(split)
        for r in run_split(backend, samples, grounder=grounder, store=store, run_id=run_id,
                           on_done=(lambda r, s=split: on_done(s, r)) if on_done else None):
            score.n += 1
            score.correct += r.correct
            score.answered += r.state.get("stop_reason") == "answered"
            fam = score.by_family.setdefault(r.sample.meta["family"], [0, 0])
            fam[0] += r.correct
            fam[1] += 1
        scores.append(score)
    return scores


def summary(scores: list[SplitScore]) -> dict[str, float]:
    """Mean accuracy over the counting and the spatial splits (each split weighted equally)."""
    def mean(names: list[SplitScore]) -> float:
        return sum(s.accuracy for s in names) / len(names) if names else 0.0

    return {"counting": mean([s for s in scores if s.split in COUNTING]),
            "spatial": mean([s for s in scores if s.split not in COUNTING])}


def table(scores: list[SplitScore], title: str) -> Table:
    t = Table(title=title)
    for col in ("split", "n", "accuracy", "answered", "by family"):
        t.add_column(col, justify="right" if col in ("n", "accuracy", "answered") else "left")
    for s in scores:
        fams = ", ".join(f"{k} {c}/{m}" for k, (c, m) in s.by_family.items())
        t.add_row(s.split, str(s.n), f"{100 * s.accuracy:.1f}%", f"{s.answered}/{s.n}", fams)
    agg = summary(scores)
    t.add_row("counting (mean)", "", f"{100 * agg['counting']:.1f}%", "", "")
    t.add_row("spatial (mean)", "", f"{100 * agg['spatial']:.1f}%", "", "")
    return t


def markdown(scores: list[SplitScore]) -> str:
    lines = ["| split | n | accuracy | answered | by family |", "|---|---:|---:|---:|---|"]
    for s in scores:
        fams = ", ".join(f"{k} {c}/{m}" for k, (c, m) in s.by_family.items())
        lines.append(f"| {s.split} | {s.n} | {100 * s.accuracy:.1f}% | {s.answered}/{s.n} | {fams} |")
    agg = summary(scores)
    lines.append(f"| **counting (mean)** | | **{100 * agg['counting']:.1f}%** | | |")
    lines.append(f"| **spatial (mean)** | | **{100 * agg['spatial']:.1f}%** | | |")
    return "\n".join(lines)
