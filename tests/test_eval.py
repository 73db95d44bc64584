"""`vgt eval` on world splits: a tiny model's run lands in the store; metrics are right on scripted answers;
interrupted runs resume; `vgt eval report` renders the paper layout as a table, CSV, JSON and a PNG."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner
from world_traces import thought, world_samples

from vgt_agent.backends.base import BackendError, Generation
from vgt_agent.backends.tiny_gemma3 import save_tiny_gemma3
from vgt_agent.cli.common import console
from vgt_agent.cli.main import app
from vgt_agent.store import TraceStore
from vgt_agent.training.eval import EvalSpec, default_label, load_benchmarks, run_eval

runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("eval")
    tally = world_samples(root, "world-tally", 4)
    vsr = world_samples(root, "world-vsr", 4)
    model = save_tiny_gemma3(root / "tiny-model")
    return {"root": root, "tally": root / "world-tally", "vsr": root / "world-vsr", "model": model,
            "samples": tally + vsr}


class ScriptedBackend:
    """Answers each question with its gold point thought on even calls and a wrong answer on odd ones."""

    name, model, supports_function_calling = "scripted", "oracle", False

    def __init__(self, samples) -> None:
        self.by_question = {s.question: s for s in samples}
        self.calls: dict[str, int] = {}

    def generate(self, messages, images=(), **_: object) -> Generation:
        question = messages[-1]["content"][-1]["text"]
        sample = next(s for q, s in self.by_question.items() if question.startswith(q))
        n = self.calls[question] = self.calls.get(question, 0) + 1
        text = thought(sample, "point") if n % 2 else "<think>no idea</think> \\boxed{maybe}"
        return Generation(text, "stop", self.name, self.model, completion_tokens=len(text.split()))


def test_metrics_on_scripted_answers_and_resume(world, tmp_path: Path) -> None:
    benches = load_benchmarks([str(world["tally"]), str(world["vsr"])], None)
    assert [(b.name, b.group) for b in benches] == [("world-tally", "counting"), ("world-vsr", "spatial")]
    backend = ScriptedBackend(world["samples"])
    with TraceStore.open(tmp_path / "t.db") as store:
        run_id = store.start_run("eval", config={"label": "Oracle", "mode": "point"})
        spec = EvalSpec(benchmarks=(), mode="point", samples=2, temperature=1.0)
        metrics = run_eval(store, backend, spec, benches, run_id)
        for name in ("world-tally", "world-vsr"):
            m = metrics["benchmarks"][name]
            assert (m["samples"], m["generations"], m["k"]) == (4, 8, 2)
            assert m["acc"] == 0.5 and m["pass@k"] == 1.0 and m["boxed_rate"] == 1.0 and m["truncated_rate"] == 0.0
        # the oracle's right half grounds perfectly, the wrong half not at all (samples with references only)
        assert metrics["benchmarks"]["world-vsr"]["grounding"] == pytest.approx(0.5)
        rows = list(store.traces(run=run_id))
        assert len(rows) == 16 and {r["variant"] for r in rows} == {"point"} and {r["attempt"] for r in rows} == {0, 1}
        grounded = store.trace(next(r["id"] for r in rows if r["correct"] and "world-vsr" in r["sample_key"]))
        assert grounded["groundings"] and all(g["score"] == 1.0 and g["verified"] for g in grounded["groundings"])
        calls = sum(backend.calls.values())
        assert run_eval(store, backend, spec, benches, run_id) == metrics  # resuming a finished run: no new calls
        assert sum(backend.calls.values()) == calls


class FlakyBackend(ScriptedBackend):
    """Fails the first request (a bad one, or a dead server), then answers like the oracle."""

    def __init__(self, samples, unreachable: bool) -> None:
        super().__init__(samples)
        self.failures, self.unreachable = 1, unreachable

    def generate(self, messages, images=(), **kwargs: object) -> Generation:
        if self.failures:
            self.failures -= 1
            raise BackendError("upstream said no", unreachable=self.unreachable)
        return super().generate(messages, images, **kwargs)


def test_failed_requests_and_dead_servers(world, tmp_path: Path) -> None:
    benches = load_benchmarks([str(world["vsr"])], 2)
    spec = EvalSpec(benchmarks=(), mode="point", samples=1)
    with TraceStore.open(tmp_path / "t.db") as store:
        run_id = store.start_run("eval")
        flaky = FlakyBackend(world["samples"], unreachable=False)
        first = run_eval(store, flaky, spec, benches, run_id)["benchmarks"]["world-vsr"]
        assert first["errors"] == 1 and first["acc"] == 0.5  # the error counts as wrong
        again = run_eval(store, flaky, spec, benches, run_id)["benchmarks"]["world-vsr"]
        assert again["errors"] == 0 and again["acc"] == 1.0  # resuming retries only the failed request
        dead_run = store.start_run("eval")
        with pytest.raises(BackendError, match="upstream"):
            run_eval(store, FlakyBackend(world["samples"], unreachable=True), spec, benches, dead_run)
        assert not list(store.traces(run=dead_run))


@pytest.mark.slow
def test_eval_cli_with_a_tiny_model_and_the_report(world, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    benchmarks = f"{world['tally']},{world['vsr']}"
    base = ["eval", "--benchmark", benchmarks, "--model", str(world["model"]), "--samples", "2", "--db", str(db)]
    point = runner.invoke(app, [*base, "--variant", "point", "--max-tokens", "16", "--json"])
    assert point.exit_code == 0, point.output + point.stderr
    result = json.loads(point.stdout)
    assert result["backend"] == "transformers" and result["label"] == "Base · Point"
    assert set(result["benchmarks"]) == {"world-tally", "world-vsr"}
    assert result["benchmarks"]["world-vsr"]["grounding"] is not None  # references exist on the world
    with TraceStore.open(db, create=False, readonly=True) as store:
        run = store.run(result["run_id"])
        assert run["kind"] == "eval" and run["status"] == "done" and run["config"]["mode"] == "point"
        assert len(list(store.traces(run=result["run_id"]))) == 16
    direct = runner.invoke(app, [*base, "--variant", "direct", "--max-tokens", "4"])
    assert direct.exit_code == 0, direct.output + direct.stderr
    labelled = runner.invoke(app, [*base, "--variant", "box", "--max-tokens", "4", "--label", "Box · RL + r_ground",
                                   "--samples", "1", "--limit", "2"])
    assert labelled.exit_code == 0 and "pass@1" in labelled.output

    console.width = 200
    table = runner.invoke(app, ["eval", "report", "--db", str(db), "--png", str(tmp_path / "chart.png")])
    assert table.exit_code == 0, table.output + table.stderr
    for text in ("Base", "Base · Point", "Box · RL + r_ground", "world-tally", "counting avg", "spatial avg"):
        assert text in table.output
    assert table.output.index("Base ") < table.output.index("Box · RL") < table.output.index("Base · Point")
    with Image.open(tmp_path / "chart.png") as png:
        assert png.format == "PNG" and png.width > 300
    csv = runner.invoke(app, ["eval", "report", "--db", str(db), "--csv"])
    assert csv.stdout.splitlines()[0].startswith("configuration,world-tally acc,world-tally pass@N")
    assert len(csv.stdout.splitlines()) == 4
    report = json.loads(runner.invoke(app, ["eval", "report", result["run_id"], "--db", str(db), "--json"]).stdout)
    assert [r["configuration"] for r in report["rows"]] == ["Base · Point"] and report["k"] == "2"
    assert set(report["rows"][0]["averages"]) == {"counting", "spatial"}


@pytest.mark.slow
def test_eval_agent_mode(world, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    result = runner.invoke(app, ["eval", "--benchmark", str(world["vsr"]), "--model", str(world["model"]),
                                 "--variant", "agent", "--grounding", "box", "--grounder", "world", "--samples", "1",
                                 "--limit", "2",
                                 "--max-tokens", "12", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output + result.stderr
    out = json.loads(result.stdout)
    assert out["label"] == "Base · Box (agent)" and out["benchmarks"]["world-vsr"]["generations"] == 2
    with TraceStore.open(db, create=False, readonly=True) as store:
        assert {r["variant"] for r in store.traces(run=out["run_id"])} == {"agent"}


def test_default_labels() -> None:
    assert default_label("direct", False, None) == ("Base", "base")
    assert default_label("think", False, {"stage": "sft"}) == ("Non-grounded thinking · SFT", "sft")
    rl = {"stage": "rl", "reward_weights": {"grounding": 0.5}}
    assert default_label("box", False, rl) == ("Box · RL + r_ground", "rl+ground")
    assert default_label("point", False, {**rl, "reward_weights": {"grounding": 0.0}}) == ("Point · RL", "rl")
    assert default_label("think", False, rl) == ("Non-grounded thinking · RL", "rl")


def test_bad_input_exits_2_with_one_line(world, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    vsr = str(world["vsr"])
    cases = [
        (["eval", "--model", "m"], "--benchmark is required"),
        (["eval", "--benchmark", "no-such-benchmark"], "unknown dataset"),
        (["eval", "--benchmark", vsr, "--variant", "plain", "--grounding", "box"], "--grounding is the form of"),
        (["eval", "--benchmark", vsr, "--backend", "transformers", "--model", str(tmp_path / "none")], "cannot load"),
        (["eval", "report"], "no trace store"),
    ]
    for args, message in cases:
        result = runner.invoke(app, [*args, "--db", str(db)])
        assert result.exit_code == 2, (args, result.output, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not db.exists()
    with TraceStore.open(db):
        pass
    empty = runner.invoke(app, ["eval", "report", "--db", str(db)])
    assert empty.exit_code == 2 and "no finished eval runs" in empty.stderr
    unknown = runner.invoke(app, ["eval", "report", "nope", "--db", str(db)])
    assert unknown.exit_code == 2 and "is not an eval run" in unknown.stderr
