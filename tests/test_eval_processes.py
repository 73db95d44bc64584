"""An agent eval shared over processes (`training/eval_processes.py`) stores what one process stores: the same
traces question for question, in the same run, and the same metrics; a failing share fails the eval."""

from __future__ import annotations

from pathlib import Path

import pytest

from vgt_agent.backends import TransformersBackend
from vgt_agent.backends.base import BackendError
from vgt_agent.store import TraceStore
from vgt_agent.tiny.agent_runs import ensure_split
from vgt_agent.tiny.recipe import shipped_weights
from vgt_agent.training.eval import EvalSpec, load_benchmarks
from vgt_agent.training.eval_processes import run_eval_in_processes, shares

SPLITS = ("world-tally", "world-vsr", "world-exist-varied")


def test_shares_balance_question_counts() -> None:
    class B:
        def __init__(self, name: str, n: int) -> None:
            self.name, self.samples = name, [0] * n

    groups = shares([B("a", 100), B("b", 100), B("c", 30), B("d", 60)], 2)  # type: ignore[list-item]
    assert sorted(sorted(b.name for b in g) for g in groups) == [["a", "d"], ["b", "c"]]  # 160 and 130
    assert len(shares([B("a", 1)], 4)) == 1  # type: ignore[list-item]


def _eval(tmp_path: Path, names: tuple[str, ...], workers: int, model: Path) -> tuple[dict, list[dict]]:
    spec = EvalSpec(benchmarks=names, samples=1, temperature=0.0, limit=4, max_tokens=256, agent=True,
                    grounder="world")
    benches = load_benchmarks(names, spec.limit)
    backend = TransformersBackend.from_pretrained(model, model_name="vgt-tiny")
    with TraceStore.open(tmp_path / f"w{workers}.db") as store:
        run = store.start_run("eval", name="eval")
        metrics = run_eval_in_processes(store, backend, spec, benches, run, model, workers)
        traces = sorted(store.traces(run=run), key=lambda t: t["sample_id"])
    return metrics, traces


def test_two_processes_store_what_one_stores(tmp_path: Path) -> None:
    model = shipped_weights()
    assert model is not None
    names = tuple(str(ensure_split(tmp_path / "data", s, 4)) for s in SPLITS)
    one, two = _eval(tmp_path, names, 1, model), _eval(tmp_path, names, 2, model)
    assert one[0] == two[0] and set(one[0]["benchmarks"]) == set(SPLITS)
    assert len(one[1]) == len(two[1]) == 4 * len(SPLITS)
    fields = ("sample_id", "completion", "answer", "correct", "status")
    assert [{k: t[k] for k in fields} for t in one[1]] == [{k: t[k] for k in fields} for t in two[1]]


def test_a_failing_share_fails_the_eval(tmp_path: Path) -> None:
    model = shipped_weights()
    assert model is not None
    names = tuple(str(ensure_split(tmp_path / "data", s, 2)) for s in SPLITS[:2])
    spec = EvalSpec(benchmarks=names, samples=1, temperature=0.0, limit=2, max_tokens=64, agent=True,
                    grounder="world")
    benches = load_benchmarks(names, 2)
    backend = TransformersBackend.from_pretrained(model, model_name="vgt-tiny")
    with TraceStore.open(tmp_path / "t.db") as store:
        run = store.start_run("eval", name="eval")
        with pytest.raises(BackendError, match="cannot load model"):  # the other process's model is missing
            run_eval_in_processes(store, backend, spec, benches, run, tmp_path / "no-such-model", 2)
