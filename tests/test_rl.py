"""`vgt train rl`: GRPO steps on a tiny Gemma3 with the grounding reward, every component logged; the
paper's aggregation handed to TRL; vLLM options passed through; bad input exits 2 with one line."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner
from vgt_cli import vgt
from world_traces import store_world_traces, world_samples

from vgt_agent.backends import TransformersBackend
from vgt_agent.store import TraceStore
from vgt_agent.training.model import read_provenance
from vgt_agent.training.sft import SFTJob, train_sft

runner = CliRunner()
COMPONENTS = ("base_reward", "grounding_reward", "answer_reward", "think_reward", "grounding_format_reward",
              "truncation_reward")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A store with two world-vsr samples' traces, and the split folder."""
    root = tmp_path_factory.mktemp("rl")
    samples = world_samples(root, "world-vsr", 2)
    db = root / "traces.db"
    with TraceStore.open(db) as store:
        store_world_traces(store, samples)
    return db, root / "world-vsr"


@pytest.fixture(scope="module")
def sft_model(world, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Gemma3 SFT'd until it writes the samples' point thoughts, so GRPO rollouts carry real tags
    and the grounding reward has something to score."""
    out = tmp_path_factory.mktemp("sft") / "model"
    with TraceStore.open(world[0]) as store:
        train_sft(store, SFTJob(model="tiny", variant="point", output_dir=out, eval_fraction=0.0, trl_args={
            "max_steps": 80, "learning_rate": 1e-2, "lr_scheduler_type": "constant", "logging_steps": 20,
            "per_device_train_batch_size": 2, "save_strategy": "no"}))
    return out


def _rl(*args: str):
    return vgt("train", "rl", "--json", "--logging-steps", "1", "--save-steps", "100", *args)


@pytest.mark.slow
def test_grpo_steps_with_grounding_reward_log_every_component(world, sft_model: Path, tmp_path: Path) -> None:
    db, _ = world
    out = tmp_path / "rl-point"
    result = _rl("--model", str(sft_model), "--variant", "point", "--db", str(db), "--output-dir", str(out),
                 "--max-steps", "2", "--batch-size", "4", "--num-generations", "4", "--max-completion-length", "80")
    assert result.exit_code == 0, result.output + result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["steps"] == 2 and metrics["prompts"] == 2 and metrics["prompts_with_references"] == 2
    with TraceStore.open(db, create=False, readonly=True) as store:
        run = store.run(metrics["run_id"])
    assert run["kind"] == "rl" and run["status"] == "done"
    steps = [h for h in run["metrics"]["history"] if "reward" in h]
    assert len(steps) == 2
    for h in steps:
        for name in COMPONENTS:
            assert f"rewards/{name}/mean" in h and f"rewards/{name}/std" in h
    # the SFT'd policy writes valid point tags, so rollouts earn a real grounding reward
    assert max(h["rewards/grounding_reward/mean"] for h in steps) > 0.3
    assert max(h["rewards/grounding_format_reward/mean"] for h in steps) > 0.0
    trl = run["config"]["trl"]
    assert trl["multi_objective_aggregation"] == "normalize_then_sum"
    assert trl["reward_weights"] == [1.0, 0.5, 0.0, 0.0, 0.0, 0.0]
    assert trl["use_cpu"] is True and trl["bf16"] is False
    provenance = read_provenance(out)
    assert provenance["stage"] == "rl" and provenance["parent"]["stage"] == "sft"
    assert provenance["reward_weights"]["grounding"] == 0.5
    TransformersBackend.from_pretrained(out)


def test_grpo_from_a_dataset_without_grounding_weight(world, tmp_path: Path) -> None:
    _, world_dir = world
    db = tmp_path / "fresh.db"  # no traces needed: prompts and gold references come from the split itself
    result = _rl("--model", "tiny", "--variant", "box", "--samples-from", str(world_dir), "--db", str(db),
                 "--output-dir", str(tmp_path / "rl-box"), "--max-steps", "1", "--batch-size", "2",
                 "--num-generations", "2", "--max-completion-length", "8", "--w-ground", "0", "--w-think", "0.3")
    assert result.exit_code == 0, result.output + result.stderr
    with TraceStore.open(db, create=False, readonly=True) as store:
        run = store.run(json.loads(result.stdout)["run_id"])
    assert run["config"]["trl"]["reward_weights"] == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # logged, not optimised
    assert run["config"]["reward_weights"]["think"] == 0.3
    assert "rewards/grounding_reward/mean" in run["metrics"]["history"][0]


def test_grpo_plain_variant_has_no_grounding_rewards(world, tmp_path: Path) -> None:
    db, _ = world
    result = _rl("--model", "tiny", "--variant", "plain", "--db", str(db), "--output-dir", str(tmp_path / "p"),
                 "--max-steps", "1", "--batch-size", "2", "--num-generations", "2", "--max-completion-length", "8")
    assert result.exit_code == 0, result.output + result.stderr
    with TraceStore.open(db, create=False, readonly=True) as store:
        history = store.run(json.loads(result.stdout)["run_id"])["metrics"]["history"]
    logged = {k.split("/")[1] for k in history[0] if k.startswith("rewards/")}
    assert logged == {"base_reward", "answer_reward", "think_reward", "truncation_reward"}


def test_vllm_options_pass_through(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """On a GPU machine with vLLM installed, the CLI's vLLM flags reach GRPOConfig unchanged."""
    from vgt_agent.training import config as config_module
    from vgt_agent.training import rl as rl_module

    seen = {}
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(config_module, "has_cuda", lambda: True)
    monkeypatch.setattr(rl_module.importlib.util, "find_spec",
                        lambda name, *a: object() if name == "vllm" else real_find_spec(name, *a))

    def fake_train(store, job):
        job.yaml_args["bf16"] = False  # this CPU cannot build a bf16 config; the GPU default is bf16
        seen["args"] = rl_module.grpo_config(job, [1.0, 0.5])
        return {"run_id": None}

    monkeypatch.setattr(rl_module, "train_rl", fake_train)
    result = _rl("--model", "tiny", "--db", str(tmp_path / "x.db"), "--samples-from", "unused", "--use-vllm",
                 "--vllm-mode", "server", "--vllm-server-url", "http://gpu-box:8000", "--output-dir", str(tmp_path))
    assert result.exit_code == 0, result.output + result.stderr
    args = seen["args"]
    assert args.use_vllm and args.vllm_mode == "server" and args.vllm_server_base_url == "http://gpu-box:8000"
    assert not args.use_cpu and args.reward_weights == [1.0, 0.5]


def test_bad_input_exits_2_with_one_line(world, tmp_path: Path) -> None:
    db, _ = world
    reserved = tmp_path / "weights.yaml"
    reserved.write_text("reward_weights: [1.0, 1.0]\n")
    common = ["--model", "tiny", "--db", str(db), "--output-dir", str(tmp_path / "never")]
    cases = [
        (["--use-vllm"], "--use-vllm needs the vllm package" if importlib.util.find_spec("vllm") is None
         else "--use-vllm needs a CUDA GPU"),
        (["--vllm-mode", "remote"], "Invalid value for '--vllm-mode'"),
        (["--router", "oracle"], "Invalid value for '--router'"),
        (["--config", str(reserved)], "set reward_weights with --w-answer"),
        (["--batch-size", "4", "--num-generations", "3"], "invalid GRPOConfig"),
        (["--samples-from", "no-such-dataset"], "unknown dataset"),
    ]
    for extra, message in cases:
        result = _rl(*common, *extra)
        assert result.exit_code == 2, (extra, result.output, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    missing = _rl("--model", "tiny", "--db", str(tmp_path / "none.db"))
    assert missing.exit_code == 2 and "no trace store" in missing.stderr
    assert not (tmp_path / "never").exists()
