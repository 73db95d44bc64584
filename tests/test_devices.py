"""--device / --dtype: the auto choice on every kind of machine (availability monkeypatched), the refusals,
and that models and their inputs really land on the chosen device and dtype (CPU float32 and bfloat16)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from vgt_agent.backends import TransformersBackend
from vgt_agent.cli.main import app
from vgt_agent.devices import CPU_FLOAT32, DeviceError, Placement, resolve_placement, trainer_device_args
from vgt_agent.store import TraceStore
from vgt_agent.tiny.recipe import shipped_weights
from vgt_agent.training.config import build_args

runner = CliRunner()


def machine(monkeypatch: pytest.MonkeyPatch, *, gpus: int = 0, bf16: bool = True, mps: bool = False) -> None:
    """Pretend this machine has `gpus` CUDA devices (with or without bf16) and/or an Apple MPS device."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Tesla T4")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    monkeypatch.delenv("VGT_DEVICE", raising=False)
    monkeypatch.delenv("VGT_DTYPE", raising=False)


@pytest.mark.parametrize(("gpus", "bf16", "mps", "want"), [
    (1, True, False, "cuda:0/bfloat16"),  # A100 / H100
    (2, False, False, "cuda:0/float16"),  # T4 / V100: no bf16
    (0, True, True, "mps/float32"),  # Apple silicon
    (0, True, False, "cpu/float32"),
    (1, True, True, "cuda:0/bfloat16"),  # CUDA first
])
def test_auto_picks_the_fastest_device_and_its_precision(monkeypatch, gpus, bf16, mps, want):
    machine(monkeypatch, gpus=gpus, bf16=bf16, mps=mps)
    assert resolve_placement().label == want
    assert resolve_placement("auto", "auto").label == want


def test_explicit_choices_and_the_environment(monkeypatch):
    machine(monkeypatch, gpus=2, bf16=True, mps=True)
    assert resolve_placement("cpu").label == "cpu/float32"
    assert resolve_placement("CPU", "bfloat16").label == "cpu/bfloat16"
    assert resolve_placement("cuda:1", "float16").label == "cuda:1/float16"
    assert resolve_placement("cuda").label == "cuda:0/bfloat16"
    assert resolve_placement("mps", "auto").label == "mps/float32"
    assert resolve_placement("mps", "float16").label == "mps/float16"
    monkeypatch.setenv("VGT_DEVICE", "cpu")
    monkeypatch.setenv("VGT_DTYPE", "bfloat16")
    assert resolve_placement().label == "cpu/bfloat16"
    assert resolve_placement("cuda:1").label == "cuda:1/bfloat16"  # a flag beats the environment


@pytest.mark.parametrize(("gpus", "bf16", "mps", "device", "dtype", "message"), [
    (0, True, False, "cuda", None, "no CUDA device is available"),
    (0, True, False, "cuda:0", None, "no CUDA device is available"),
    (2, True, False, "cuda:2", None, r"only 2 CUDA device\(s\) here \(cuda:0..cuda:1\)"),
    (0, True, False, "mps", None, "no Apple MPS device"),
    (0, True, False, "cpu", "float16", "float16 on the CPU is not supported"),
    (0, True, False, None, "float16", "float16 on the CPU"),  # auto lands on the CPU here
    (1, False, False, "cuda", "bfloat16", "Tesla T4.*has no bfloat16 support"),
    (0, True, False, "tpu", None, "--device must be one of auto, cpu, cuda, cuda:N, mps, not 'tpu'"),
    (0, True, False, "cuda:x", None, "--device must be one of"),
    (0, True, False, "cpu", "fp8", "--dtype must be one of auto, float32, bfloat16, float16, not 'fp8'"),
])
def test_refusals_are_one_line(monkeypatch, gpus, bf16, mps, device, dtype, message):
    machine(monkeypatch, gpus=gpus, bf16=bf16, mps=mps)
    with pytest.raises(DeviceError, match=message) as err:
        resolve_placement(device, dtype)
    assert "\n" not in str(err.value)


def test_trainer_arguments_follow_the_placement():
    from trl import GRPOConfig, SFTConfig

    cpu = trainer_device_args(CPU_FLOAT32)
    assert cpu == {"use_cpu": True, "bf16": False, "fp16": False, "gradient_checkpointing": False,
                   "activation_checkpointing": False}
    assert trainer_device_args(Placement("cpu", "bfloat16"))["bf16"] is True
    assert trainer_device_args(Placement("cuda:0", "float16")) == {"use_cpu": False, "bf16": False, "fp16": True}
    assert trainer_device_args(Placement("cuda:0", "float32")) == {"use_cpu": False, "bf16": False, "fp16": False}
    # the YAML asks for the GPU's mixed precision; an explicit CPU placement wins, as TRL needs on a CPU
    args = build_args(SFTConfig, yaml_args={"fp16": True, "gradient_checkpointing": True}, overrides={},
                      placement=Placement("cpu", "bfloat16"))
    assert (args.use_cpu, args.bf16, args.fp16, args.gradient_checkpointing) == (True, True, False, False)
    args = build_args(GRPOConfig, yaml_args={}, overrides={}, placement=CPU_FLOAT32)
    assert (args.use_cpu, args.bf16) == (True, False)  # TRL's GRPOConfig defaults to bf16=True


def red_circles() -> Image.Image:
    image = Image.new("RGB", (200, 150), "white")
    draw = ImageDraw.Draw(image)
    for x, y in ((40, 40), (120, 90)):
        draw.ellipse((x - 15, y - 15, x + 15, y + 15), fill=(220, 30, 30))
    return image


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_backend_weights_and_inputs_land_on_the_chosen_dtype(dtype):
    backend = TransformersBackend.from_pretrained(shipped_weights(), device="cpu", dtype=dtype, model_name="vgt-tiny")
    assert backend.placement == Placement("cpu", dtype)
    model = backend._model
    assert {p.dtype for p in model.parameters()} == {getattr(torch, dtype)}
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    seen: list[tuple[torch.dtype, str]] = []

    def spy(module, args, kwargs):
        if kwargs.get("pixel_values") is not None:
            seen.append((kwargs["pixel_values"].dtype, kwargs["pixel_values"].device.type))

    handle = model.model.vision_tower.register_forward_pre_hook(spy, with_kwargs=True)
    try:
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many red circles?"}]}]
        generation = backend.generate(messages, [red_circles()], max_tokens=6)
    finally:
        handle.remove()
    assert generation.completion_tokens >= 1
    assert seen and seen[0] == (getattr(torch, dtype), "cpu")


def test_vgt_ask_names_and_stores_the_placement(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("VGT_DEVICE", raising=False)
    monkeypatch.delenv("VGT_DTYPE", raising=False)
    image = tmp_path / "circles.png"
    red_circles().save(image)
    db = tmp_path / "t.db"
    result = runner.invoke(app, ["ask", str(image), "How many red circles are there?", "--db", str(db), "--json",
                                 "--dtype", "bfloat16", "--max-tokens", "64", "--max-turns", "2"])
    assert result.exit_code in (0, 1), result.output + result.stderr  # 1: the tiny policy may not answer
    out = json.loads(result.stdout)
    assert out["device"] == "cpu/bfloat16" and out["backend"] == "transformers" and out["model"] == "vgt-tiny"
    with TraceStore.open(db, create=False, readonly=True) as store:
        config = store.run(out["run_id"])["config"]
    assert (config["device"], config["dtype"]) == ("cpu", "bfloat16")

    for flags, message in ((["--device", "cuda:3"], "no CUDA device"), (["--dtype", "float16"], "float16 on the CPU"),
                           (["--device", "gpu"], "--device must be one of")):
        if flags[1].startswith("cuda") and torch.cuda.is_available():
            continue
        bad = runner.invoke(app, ["ask", str(image), "How many?", "--db", str(tmp_path / "bad.db"), *flags])
        assert bad.exit_code == 2 and message in bad.stderr and bad.stderr.count("\n") == 1
        assert not (tmp_path / "bad.db").exists()
    env = runner.invoke(app, ["ask", str(image), "How many?", "--db", str(tmp_path / "bad.db")],
                        env={"VGT_DTYPE": "float16"})
    assert env.exit_code == 2 and "float16 on the CPU" in env.stderr


def test_vgt_ask_against_a_server_needs_no_device(tmp_path: Path):
    """Nothing in-process to place (an OpenAI-compatible server and the world grounder): a GPU-only
    VGT_DEVICE in the environment is not an error there; the command fails on the unreachable server instead."""
    image = tmp_path / "circles.png"
    red_circles().save(image)
    result = runner.invoke(app, ["ask", str(image), "How many?", "--db", str(tmp_path / "t.db"), "--backend",
                                 "openai", "--model", "m", "--base-url", "http://127.0.0.1:9/v1"],
                           env={"VGT_DEVICE": "cuda:7"})
    assert result.exit_code in (1, 2) and "127.0.0.1" in result.stderr and "CUDA" not in result.stderr


def test_sft_trains_where_the_flags_say_and_records_it(tmp_path: Path):
    """A two-step SFT of the tiny Gemma3 in bfloat16 on the CPU: TRL gets use_cpu and bf16, the run says so."""
    from world_traces import store_world_traces, world_samples

    db = tmp_path / "t.db"
    with TraceStore.open(db) as store:
        store_world_traces(store, world_samples(tmp_path, "world-tally", 4))
    out = tmp_path / "sft"
    result = runner.invoke(app, ["train", "sft", "--model", "tiny", "--variant", "point", "--db", str(db),
                                 "--output-dir", str(out), "--json", "--max-steps", "2", "--eval-fraction", "0",
                                 "--device", "cpu", "--dtype", "bfloat16"])
    assert result.exit_code == 0, result.output + result.stderr
    with TraceStore.open(db, create=False, readonly=True) as store:
        config = store.run(json.loads(result.stdout)["run_id"])["config"]
    assert (config["device"], config["dtype"]) == ("cpu", "bfloat16")
    assert config["trl"]["use_cpu"] is True and config["trl"]["bf16"] is True and config["trl"]["fp16"] is False
    saved = json.loads((out / "config.json").read_text())
    assert saved["text_config"].get("dtype", saved.get("dtype")) == "bfloat16"
    bad = runner.invoke(app, ["train", "sft", "--model", "tiny", "--db", str(db), "--output-dir", str(out),
                              "--dtype", "float16"])
    assert bad.exit_code == 2 and "float16 on the CPU" in bad.stderr
