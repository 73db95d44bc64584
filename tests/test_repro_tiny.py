"""`vgt repro tiny` at smoke size, end to end through the CLI: every stage runs through vgt's own pipeline (the
functions `vgt synth`, `vgt train sft`, `vgt train rl` and `vgt eval --agent` call) and is logged in the store
as that command logs it; the model it writes loads and answers, and the report says what happened."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner
from vgt_cli import vgt

from vgt_agent.backends import TransformersBackend
from vgt_agent.cli.main import app
from vgt_agent.store import TraceStore
from vgt_agent.tiny.agent_runs import BENCHMARKS, EVAL_SPLITS
from vgt_agent.training.agent_examples import prompt_messages
from vgt_agent.training.model import read_provenance

runner = CliRunner()


@pytest.mark.slow
def test_smoke_repro_runs_every_stage_through_the_pipeline(tmp_path: Path, shared_prefix_calls: list[int]) -> None:
    prefixes = shared_prefix_calls
    work, out = tmp_path / "work", tmp_path / "out"
    result = runner.invoke(app, ["repro", "tiny", "--out", str(out), "--work-dir", str(work), "--train-samples", "12",
                                 "--eval-samples", "2", "--warmup-steps", "3", "--steps", "3", "--rl-steps", "1",
                                 "--rl-prompts", "1", "--rl-generations", "2", "--teacher-grounder", "gold-shuffled",
                                 "--workers", "1", "--threads", "1"])
    assert result.exit_code == 0, result.output + result.stderr
    report = json.loads((out / "repro_report.json").read_text())
    db = work / "traces.db"
    with TraceStore.open(db, create=False, readonly=True) as store:
        runs = {r["kind"]: [x for x in store.runs() if x["kind"] == r["kind"]] for r in store.runs()}
        eval_traces = list(store.traces(run=report["eval"]["run_id"]))
    assert {k: len(v) for k, v in runs.items()} == {"repro": 1, "synth": 1, "warmup": 1, "sft": 1,
                                                      "rl": 1, "eval": 1}
    assert all(r["status"] == "done" for rs in runs.values() for r in rs)

    # synth: the world-oracle plays the policy in the ask agent, gold masks shuffled
    (synth,) = runs["synth"]
    assert synth["name"] == "synth/world/world-train/agent/world-oracle" == report["teacher"]["run"]
    assert (synth["backend"], synth["model"], synth["grounder"]) == ("world-oracle", "world-oracle",
                                                                     "gold-shuffled")
    assert report["teacher"]["model"] == "world-oracle"
    assert synth["config"]["via"] == "agent" and synth["command"].startswith("vgt synth --dataset ")
    assert synth["metrics"]["run_totals"]["kept"] == report["teacher"]["kept"] >= 10

    # SFT: one `vgt train sft --variant agent` run on that run's traces, with the recipe's TRL arguments (from
    # the YAML the logged command names) and its wall-time budget
    (sft,) = runs["sft"]
    trl = sft["config"]["trl"]
    assert sft["name"] == "sft-agent" and sft["config"]["variant"] == "agent"
    assert sft["config"]["filters"]["run"] == synth["id"] and sft["metrics"]["steps"] == 3
    assert (trl["learning_rate"], trl["lr_scheduler_type"], trl["adam_beta2"], trl["warmup_steps"]) == \
        (1e-3, "cosine_with_min_lr", 0.98, 20)
    assert (trl["per_device_train_batch_size"], trl["train_sampling_strategy"], trl["max_grad_norm"]) == \
        (16, "group_by_length", 1.0)
    assert sft["command"].startswith("vgt train sft --model ") and "--variant agent" in sft["command"]
    assert "--max-minutes 10 " in sft["command"] + " " and sft["config"]["max_minutes"] == 10
    written = yaml.safe_load(Path(sft["command"].split("--config ")[1].split()[0]).read_text())
    assert written["learning_rate"] == 1e-3 and written["lr_scheduler_kwargs"]["min_lr"] == 1e-4
    # the warm-up ran on the fresh policy before SFT (tiny/warmup.py), and SFT started from it
    (warm,) = runs["warmup"]
    assert warm["metrics"]["steps"] == report["warmup"]["steps"] == 3 and warm["config"]["max_steps"] == 3
    assert (work / "models" / "init" / "model.safetensors").exists()
    assert Path(sft["model"]).resolve() == (work / "models" / "warm").resolve()
    assert len(prefixes) == 3 and min(prefixes) > 100  # every SFT step ran the system prompt once

    # RL: `vgt train rl --variant agent` from the SFT model, rolling out with the teacher's (shuffled gold) grounder
    (rl,) = runs["rl"]
    assert rl["config"]["variant"] == "agent" and rl["config"]["grounder"] == "gold-shuffled"
    assert Path(rl["model"]).resolve() == Path(sft["config"]["output_dir"]) and rl["metrics"]["steps"] == 1
    assert rl["config"]["output_dir"] == str(out.resolve()) and rl["command"].startswith("vgt train rl ")

    # eval: `vgt eval --agent`, greedy, one run per question, on every family's varied split and the six canonical
    (ev,) = runs["eval"]
    assert ev["config"]["agent"] is True and ev["config"]["samples"] == 1 and ev["config"]["temperature"] == 0.0
    assert ev["name"] == report["eval"]["label"] == "Point (agent) · RL + r_ground" and ev["model"] == "vgt-tiny"
    assert set(ev["metrics"]["benchmarks"]) == set(EVAL_SPLITS) == set(report["scores"]) > set(BENCHMARKS)
    assert len(eval_traces) == 2 * len(EVAL_SPLITS) and {t["variant"] for t in eval_traces} == {"agent"}
    assert set(report["summary"]) == {"counting varied", "spatial varied", "existence varied", "attribute varied",
                                      "phrased varied", "counting canonical", "spatial canonical"}
    assert ev["command"].startswith("vgt eval --benchmark ")

    # the model: saved where --out says, with its provenance, and it loads and generates
    assert read_provenance(out)["stage"] == "rl" and read_provenance(out)["variant"] == "agent"
    backend = TransformersBackend.from_pretrained(out)
    gen = backend.generate(prompt_messages("How many red circles are there?", ()), [Image.new("RGB", (32, 32))],
                           max_tokens=4)
    assert gen.completion_tokens >= 1
    assert report["model"] == "vgt-tiny" and report["params"] > 1_000_000 and report["train_samples"] == 12
    assert report["sft"]["result"]["run_id"] == sft["id"] and report["sft"]["max_minutes"] == 10
    assert report["rl"]["run_id"] == rl["id"] and "| world-exist-varied | 2 |" in report["markdown"]
    assert set(report["stage_seconds"]) == {"world make", "synth", "init", "warm-up", "SFT", "RL", "eval"}
    (repro,) = runs["repro"]
    assert repro["name"] == "vgt-tiny" and repro["metrics"]["eval"]["run_id"] == ev["id"]
    assert sorted(p.name for p in (work / "logs").iterdir()) == sorted(
        f"{s.replace(' ', '-')}.log" for s in report["stage_seconds"])


def test_help_shows_the_one_recipes_options() -> None:
    result = runner.invoke(app, ["repro", "tiny", "--help"])
    assert result.exit_code == 0
    assert re.findall(r"^\W+(--[a-z][a-z0-9-]+)", result.output, re.M) == [
        "--out", "--work-dir", "--train-samples", "--eval-samples", "--warmup-steps", "--warmup-minutes", "--steps",
        "--train-minutes", "--rl-steps", "--rl-prompts", "--rl-generations", "--rl-lr", "--threads", "--workers",
        "--teacher-grounder", "--seed", "--help"]
    assert "vgt train sft -> vgt train rl (with --rl-steps) -> vgt eval" in " ".join(result.output.split())


def test_bad_options_exit_2(tmp_path: Path) -> None:
    for args, message in ((["--reasoning", "digits"], "No such option"),
                          (["--steps2", "2"], "No such option"),
                          (["--teacher-grounder", "sam3"], "Invalid value for '--teacher-grounder'")):
        result = vgt("repro", "tiny", "--work-dir", str(tmp_path / "w"), *args)
        assert result.exit_code == 2 and message in result.stderr
        assert not (tmp_path / "w").exists()
