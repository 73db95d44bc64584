"""vgt-tiny's eval table: per held-out world split, accuracy, answered runs and accuracy per question family.

Read from the traces of an agent-mode `vgt eval` run (`training/eval.py run_eval` with `agent=True`: the ask
graph + WorldGrounder, one greedy run per question, each logged as a trace), so the table and the store
say the same thing; the families come from the samples' metadata.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.table import Table

from vgt_agent.store import TraceStore
from vgt_agent.tiny.agent_runs import split_group
from vgt_agent.training.eval import Benchmark


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


def scores(store: TraceStore, run_id: str, benchmarks: list[Benchmark]) -> list[SplitScore]:
    """Per benchmark, its questions' stored runs: correct, answered (stopped on a boxed answer), by family."""
    rows = {r["sample_id"]: r for r in store.traces(run=run_id)}
    out = []
    for bench in benchmarks:
        score = SplitScore(bench.name)
        for sample, record in zip(bench.samples, bench.records, strict=True):
            row = rows.get(record.id)
            if row is None:
                continue
            correct = bool(row["correct"])
            score.n += 1
            score.correct += correct
            score.answered += row["reason"] == "answered"
            fam = score.by_family.setdefault(sample.meta.get("family", "-"), [0, 0])
            fam[0] += correct
            fam[1] += 1
        out.append(score)
    return out


def summary(scores: list[SplitScore]) -> dict[str, float]:
    """Mean accuracy per question group and style ("counting varied", "spatial canonical", ...), each split
    weighted equally."""
    groups: dict[str, list[float]] = {}
    for s in scores:
        group, style = split_group(s.split)
        groups.setdefault(f"{group} {style}", []).append(s.accuracy)
    return {k: sum(v) / len(v) for k, v in groups.items()}


def table(scores: list[SplitScore], title: str) -> Table:
    t = Table(title=title)
    for col in ("split", "n", "accuracy", "answered", "by family"):
        t.add_column(col, justify="right" if col in ("n", "accuracy", "answered") else "left")
    for s in scores:
        fams = ", ".join(f"{k} {c}/{m}" for k, (c, m) in s.by_family.items())
        t.add_row(s.split, str(s.n), f"{100 * s.accuracy:.1f}%", f"{s.answered}/{s.n}", fams)
    for key, value in summary(scores).items():
        t.add_row(f"{key} (mean)", "", f"{100 * value:.1f}%", "", "")
    return t


def markdown(scores: list[SplitScore]) -> str:
    lines = ["| split | n | accuracy | answered | by family |", "|---|---:|---:|---:|---|"]
    for s in scores:
        fams = ", ".join(f"{k} {c}/{m}" for k, (c, m) in s.by_family.items())
        lines.append(f"| {s.split} | {s.n} | {100 * s.accuracy:.1f}% | {s.answered}/{s.n} | {fams} |")
    for key, value in summary(scores).items():
        lines.append(f"| **{key} (mean)** | | **{100 * value:.1f}%** | | |")
    return "\n".join(lines)
