"""`vgt train sft` on a tiny Gemma3 and stored world traces: loss goes down, the run is logged, checkpoints
resume, LoRA merges, the loss covers the assistant turn only, and bad input exits 2 with one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner
from vgt_cli import vgt
from world_traces import store_world_traces, world_samples

from vgt_agent.backends import TransformersBackend
from vgt_agent.cli.main import app
from vgt_agent.store import TraceStore
from vgt_agent.training.data import sft_dataset
from vgt_agent.training.model import read_provenance
from vgt_agent.training.sft import SFTJob, sft_config

runner = CliRunner()


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sft")
    samples = world_samples(root, "world-tally", 8) + world_samples(root, "world-vsr", 8)
    path = root / "traces.db"
    with TraceStore.open(path) as store:
        store_world_traces(store, samples)
    return path


def _sft(db: Path, out: Path, *extra: str):
    return runner.invoke(app, ["train", "sft", "--model", "tiny", "--variant", "point", "--db", str(db),
                               "--output-dir", str(out), "--json", *extra])


@pytest.mark.slow
def test_sft_lowers_loss_logs_the_run_and_resumes(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "sft-point"
    result = _sft(db, out, "--max-steps", "30", "--lr", "3e-3", "--batch-size", "4", "--eval-fraction", "0.25",
                  "--logging-steps", "5", "--save-steps", "15")
    assert result.exit_code == 0, result.output + result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["steps"] == 30 and metrics["train_examples"] + metrics["eval_examples"] == 16
    assert metrics["eval_loss_after"] < metrics["eval_loss_before"] - 1.0  # held-out images, not memorisation
    assert metrics["last_loss"] < metrics["first_loss"]
    with TraceStore.open(db, create=False, readonly=True) as store:
        run = store.run(metrics["run_id"])
    assert run["kind"] == "sft" and run["status"] == "done" and run["model"] == "tiny"
    assert run["config"]["trl"]["assistant_only_loss"] is True and run["config"]["trl"]["use_cpu"] is True
    assert [h["step"] for h in run["metrics"]["history"] if "loss" in h] == [5, 10, 15, 20, 25, 30]
    assert (out / "checkpoint-15").is_dir() and (out / "checkpoint-30").is_dir()
    assert read_provenance(out)["stage"] == "sft" and read_provenance(out)["run_id"] == metrics["run_id"]
    backend = TransformersBackend.from_pretrained(out)  # what `vgt eval` / `vgt ask` load
    assert backend.generate([{"role": "user", "content": "How many?"}], max_tokens=4).completion_tokens >= 1

    resumed = _sft(db, out, "--resume", "--max-steps", "34", "--lr", "3e-3", "--batch-size", "4",
                   "--eval-fraction", "0.25", "--logging-steps", "2", "--save-steps", "15")
    assert resumed.exit_code == 0, resumed.output + resumed.stderr
    again = json.loads(resumed.stdout)
    assert again["steps"] == 34 and "eval_loss_before" not in again
    # it continues from the checkpoint's weights, not from the base model's (transformers#43701)
    assert again["eval_loss_after"] < metrics["eval_loss_before"] - 1.0, (again, metrics)
    with TraceStore.open(db, create=False, readonly=True) as store:
        assert store.run(again["run_id"])["config"]["resumed_from"].endswith("checkpoint-30")


def test_sft_lora_merges_into_a_loadable_model(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "sft-lora"
    result = _sft(db, out, "--lora", "--lora-r", "4", "--max-steps", "2", "--eval-fraction", "0",
                  "--logging-steps", "1")
    assert result.exit_code == 0, result.output + result.stderr
    assert (out / "adapter" / "adapter_config.json").is_file() and (out / "model.safetensors").is_file()
    assert read_provenance(out)["lora"]["r"] == 4
    TransformersBackend.from_pretrained(out)


def test_loss_is_on_the_assistant_turn_only(db: Path, tmp_path: Path) -> None:
    from trl import SFTTrainer

    from vgt_agent.backends.tiny_gemma3 import build_tiny_gemma3

    model, processor = build_tiny_gemma3()
    with TraceStore.open(db, create=False, readonly=True) as store:
        ds = sft_dataset(store, "box")
    args = sft_config(SFTJob(model="tiny", variant="box", output_dir=tmp_path / "x"))
    assert args.assistant_only_loss and args.max_length is None and not args.gradient_checkpointing
    trainer = SFTTrainer(model=model, processing_class=processor, args=args, train_dataset=ds)
    batch = trainer.data_collator([ds[0]])
    labels = batch["labels"][0]
    target = ds[0]["messages"][-1]["content"][0]["text"]
    assert processor.tokenizer.decode(labels[labels != -100]) == target + "<end_of_turn>\n"


def test_yaml_config(db: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("learning_rate: 2.0e-4\nwarmup_steps: 1\nlogging_steps: 1\nmax_steps: 1\n")
    result = _sft(db, tmp_path / "y", "--config", str(good), "--eval-fraction", "0")
    assert result.exit_code == 0, result.output + result.stderr
    with TraceStore.open(db, create=False, readonly=True) as store:
        trl = store.run(json.loads(result.stdout)["run_id"])["config"]["trl"]
    assert trl["learning_rate"] == 2e-4 and trl["warmup_steps"] == 1


@pytest.mark.parametrize("yaml_text, message", [
    ("learning_rat: 1.0\n", "unknown SFTConfig argument(s) in the config: learning_rat"),
    ("output_dir: /tmp/elsewhere\n", "set output_dir with --output-dir"),
    ("- just\n- a list\n", "must be a mapping"),
    ("a: [unclosed\n", "not valid YAML"),
])
def test_bad_yaml_exits_2(db: Path, tmp_path: Path, yaml_text: str, message: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml_text)
    result = _sft(db, tmp_path / "z", "--config", str(bad))
    assert result.exit_code == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_input_exits_2_with_one_line(db: Path, tmp_path: Path) -> None:
    cases = [
        (["--variant", "agentic"], "Invalid value for '--variant'"),
        (["--model", str(tmp_path / "no-such-model")], "cannot load model"),
        (["--run", "no-such-run"], "no verified point traces"),
        (["--resume"], "--resume needs --output-dir"),
    ]
    for extra, message in cases:
        args = ["train", "sft", "--model", "tiny", "--db", str(db), *extra]
        if "--resume" not in extra:
            args += ["--output-dir", str(tmp_path / "never")]
        result = vgt(*args)
        assert result.exit_code == 2, (extra, result.output, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    missing = runner.invoke(app, ["train", "sft", "--model", "tiny", "--db", str(tmp_path / "none.db")])
    assert missing.exit_code == 2 and "no trace store" in missing.stderr
    assert not (tmp_path / "none.db").exists() and not (tmp_path / "never").exists()
