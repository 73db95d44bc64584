"""The VLM families people train (Gemma3, Qwen2.5-VL, Qwen3-VL, SmolVLM/Idefics3, SmolVLM2) through the real CLI
on tiny random checkpoints built in code (`tiny_families.py`: the family's real model, config and processor
classes, its released chat template and control tokens).

A random model writes garbage, so what is asserted is the plumbing: the family's template renders the agent
conversation (system, image + question, assistant turns, tool replies as user turns) and the agent training
sequence labels exactly the model's turns through the family's own turn-end token; the family's coordinate
convention is picked up from config.json; `vgt ask` runs and exits by its documented codes naming the model;
`vgt synth --via agent` runs it as the teacher; `vgt train sft --variant agent` and one `vgt train rl` step
train (finite loss, changed weights, a saved model that loads back); `vgt eval --agent` runs and stores its
traces under the model's name.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from tiny_families import FAMILIES
from typer.testing import CliRunner
from world_traces import store_oracle_agent_traces, store_world_traces

from vgt_agent.backends import TransformersBackend
from vgt_agent.backends.coord_boundary import ConventionBackend, with_convention
from vgt_agent.backends.transformers_backend import template_messages
from vgt_agent.cli.main import app
from vgt_agent.prompts import AGENT_TEXT_TOOL, format_question
from vgt_agent.store import TraceStore
from vgt_agent.store.export import iter_export_rows
from vgt_agent.training.agent_data import trace_turns
from vgt_agent.training.agent_examples import IGNORE, build_example, check_views, collate, turn_end_id, turn_messages
from vgt_agent.training.coords import model_convention
from vgt_agent.training.shared_prefix import (
    WHOLE_SEQUENCE_POSITIONS,
    image_start_id,
    shared_prefix_len,
    with_shared_prefix,
)
from vgt_agent.world.storage import load_split, make_split

runner = CliRunner()

# What each family's released template writes: the user and assistant turn openings, the image placeholder
# before the processor expands it, the token closing a model turn, and the declared coordinate convention.
EXPECTED: dict[str, dict[str, str]] = {
    "gemma3": {"user": "<start_of_turn>user\n", "assistant": "<start_of_turn>model\n", "image": "<start_of_image>",
               "end": "<end_of_turn>", "coords": "norm1000"},
    "qwen2_5_vl": {"user": "<|im_start|>user\n", "assistant": "<|im_start|>assistant\n",
                   "image": "<|vision_start|><|image_pad|><|vision_end|>", "end": "<|im_end|>",
                   "coords": "qwen2.5-vl-pixels"},
    "qwen3_vl": {"user": "<|im_start|>user\n", "assistant": "<|im_start|>assistant\n",
                 "image": "<|vision_start|><|image_pad|><|vision_end|>", "end": "<|im_end|>", "coords": "norm1000"},
    "idefics3": {"user": "User:", "assistant": "Assistant:", "image": "<image>", "end": "<end_of_utterance>",
                 "coords": "norm1000"},
    "smolvlm": {"user": "User:", "assistant": "Assistant:", "image": "<image>", "end": "<end_of_utterance>",
                "coords": "norm1000"},
}
# The inputs each family's forward reads beside input_ids/attention_mask/labels, as the agent collator batches them.
BATCH_KEYS = {
    "gemma3": {"pixel_values", "token_type_ids"},
    "qwen2_5_vl": {"pixel_values", "image_grid_thw", "mm_token_type_ids"},
    "qwen3_vl": {"pixel_values", "image_grid_thw", "mm_token_type_ids"},
    "idefics3": {"pixel_values", "pixel_attention_mask"},
    "smolvlm": {"pixel_values", "pixel_attention_mask"},
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A world split and a store of agent traces (the world-oracle teacher through the ask graph, a synth run)."""
    root = tmp_path_factory.mktemp("families")
    make_split(root / "world-tally", "world-tally", n=4)
    samples = list(load_split(root / "world-tally"))
    db = root / "traces.db"
    store_oracle_agent_traces(db, samples)
    with TraceStore.open(db, create=False, readonly=True) as store:
        rows = [r for r in iter_export_rows(store) if sum(m["role"] == "tool" for m in r["messages"] or []) >= 1]
    assert len({r["image_path"] for r in rows}) >= 2
    return {"root": root, "split": root / "world-tally", "samples": samples, "db": db, "trace": rows[0], "rows": rows}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    name = request.param
    if name == "smolvlm":
        pytest.importorskip("num2words", reason="transformers' SmolVLMProcessor imports num2words")
    return name, FAMILIES[name](tmp_path_factory.mktemp(name) / "model")


def test_the_family_template_renders_the_agent_conversation(family, world) -> None:
    name, model_dir = family
    expected = EXPECTED[name]
    backend = TransformersBackend.from_pretrained(model_dir)
    processor = backend.processor
    assert json.loads((model_dir / "config.json").read_text())["model_type"] == name
    row = world["trace"]
    chunks = trace_turns(row)
    messages = turn_messages(row["question"], row["choices"], chunks)
    text = processor.apply_chat_template(template_messages(messages), add_generation_prompt=False, tokenize=False)
    question = format_question(row["question"], tuple(row["choices"] or ()))
    def in_turn(at: int, opening: str) -> bool:  # the last turn opened before `at` is `opening`'s, still open
        others = [text.rfind(o, 0, at) for o in (expected["user"], expected["assistant"]) if o != opening]
        return text.rindex(opening, 0, at) > max(text.rfind(expected["end"], 0, at), *others)

    # the system prompt (Gemma3 folds it into the first user turn), then the image placeholder and the question
    # in the user turn, then the model's turns and the tool replies (user turns) in order
    cursor = text.index(AGENT_TEXT_TOOL) + len(AGENT_TEXT_TOOL)
    cursor = text.index(expected["image"], cursor)
    assert in_turn(cursor, expected["user"])
    cursor = text.index(question, cursor)
    assert text.count(AGENT_TEXT_TOOL) == 1
    for chunk in chunks:
        body = chunk["content"].strip()
        at = text.index(body, cursor)
        assert in_turn(at, expected["assistant"] if chunk["role"] == "assistant" else expected["user"])
        cursor = at + len(body)
    assert any(c["role"] == "tool" for c in chunks)

    # the training sequence: the model's turns (and each one's end token) are the labels, nothing else
    tok = processor.tokenizer
    end = turn_end_id(processor)
    assert tok.convert_ids_to_tokens(end) == expected["end"]
    with Image.open(row["image_path"]) as im:
        image = im.convert("RGB")
    example = build_example(processor, row["question"], row["choices"], chunks, image)
    trained = [t for t in example.labels if t != IGNORE]
    model_turns = [c["content"].strip() for c in chunks if c["role"] == "assistant"]
    assert trained.count(end) == len(model_turns) and example.input_ids[-1] == end
    runs, current = [], []
    for t in trained:
        current.append(t)
        if t == end:
            runs.append(tok.decode(current[:-1]).strip())
            current = []
    assert runs == model_turns
    assert check_views(processor, row["question"], row["choices"], chunks, image)

    # a padded batch of two traces (different images, lengths) gives each row the loss it has alone
    other = next(r for r in world["rows"] if r["image_path"] != row["image_path"])
    with Image.open(other["image_path"]) as im:
        second = build_example(processor, other["question"], other["choices"], trace_turns(other), im.convert("RGB"))
    pad = tok.pad_token_id
    batch = collate([example, second], pad)
    assert set(batch) == {"input_ids", "labels", "attention_mask"} | BATCH_KEYS[name]
    model = backend._model

    def row_losses(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            logits = model(**{k: v for k, v in inputs.items() if k != "labels"}).logits[:, :-1].float()
        labels = inputs["labels"][:, 1:]
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=IGNORE,
                                                reduction="none")
        return nll.sum(1) / (labels != IGNORE).sum(1)

    alone = torch.cat([row_losses(collate([e], pad)) for e in (example, second)])
    together = row_losses(batch)
    assert torch.isfinite(together).all() and torch.allclose(together, alone, rtol=1e-4, atol=1e-4)

    # agent SFT runs the batch's shared prompt prefix once where the family's positions allow it: the same loss
    if any(key in batch for key in WHOLE_SEQUENCE_POSITIONS):
        assert name.startswith("qwen")  # 3-D rotary positions: the full forward
    else:
        n = shared_prefix_len(batch["input_ids"], image_start_id(processor), batch["labels"])
        assert n > 100 and AGENT_TEXT_TOOL.split()[-1] in tok.decode(batch["input_ids"][0, :n])
        with torch.no_grad():
            shared, full = model(**with_shared_prefix(model, batch, n)).loss, model(**batch).loss
        assert torch.allclose(shared, full, atol=1e-5)


def test_the_family_convention_is_picked_up(family) -> None:
    """The declared convention, from config.json (training) and the loaded model (the backend boundary); a pixel
    convention's frame is exactly the image size the model's own processor resizes to (its image_grid_thw)."""
    name, model_dir = family
    trained = model_convention(str(model_dir))
    inner = TransformersBackend.from_pretrained(model_dir)
    backend = with_convention(inner)
    served = backend.convention if isinstance(backend, ConventionBackend) else trained
    assert trained.name == served.name == EXPECTED[name]["coords"]
    assert (backend is inner) == (trained.name == "norm1000")
    if trained.extent is None:
        patch = inner.processor.image_processor.patch_size
        for width, height in ((448, 448), (640, 200), (37, 301)):
            grid = inner.processor.image_processor(images=[Image.new("RGB", (width, height))])["image_grid_thw"][0]
            resized = (int(grid[2]) * patch, int(grid[1]) * patch)
            assert trained.frame(width, height) == served.frame(width, height) == resized


def _weights(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(directory / "model.safetensors")


def test_ask_train_and_eval_through_the_cli(family, world, tmp_path: Path) -> None:
    name, model_dir = family
    expected = EXPECTED[name]
    sample = world["samples"][0]
    db = tmp_path / "t.db"
    model = str(model_dir)

    # vgt ask: runs end to end, exit 0 with an answer / 1 without, the result names backend, model, convention
    ask = runner.invoke(app, ["ask", sample.image_path, sample.question, "--backend", "transformers", "--model", model,
                              "--grounder", "world", "--max-tokens", "24", "--max-turns", "2", "--json",
                              "--db", str(db)])
    assert ask.exit_code in (0, 1), ask.output + ask.stderr
    result = json.loads(ask.stdout)
    assert ask.exit_code == (0 if result["status"] == "answered" else 1)
    assert (result["backend"], result["model"], result["coords"]) == ("transformers", model, expected["coords"])
    with TraceStore.open(db, create=False, readonly=True) as store:
        run = store.run(result["run_id"])
        assert run["model"] == model and run["config"]["coords"] == expected["coords"]
        trace = store.trace(result["trace_id"])
        assert trace["model"] == model and trace["backend"] == "transformers"

    # vgt synth --via agent with the model as teacher: runs, and its traces name the model
    synth = runner.invoke(app, ["synth", "--dataset", str(world["split"]), "--teacher", "model", "--backend",
                                "transformers", "--model", model, "--via", "agent", "--limit", "1", "--max-tokens",
                                "16", "--db", str(db), "--json"])
    assert synth.exit_code == 0, synth.output + synth.stderr
    synth_run = json.loads(synth.stdout)["run_id"]
    with TraceStore.open(db, create=False, readonly=True) as store:
        assert store.run(synth_run)["model"] == model
        assert {t["model"] for t in store.traces(run=synth_run)} == {model}

    # vgt train sft --variant agent: two steps on the synth traces, in the family's convention
    sft_out = tmp_path / "sft"
    sft = runner.invoke(app, ["train", "sft", "--model", model, "--variant", "agent", "--db", str(world["db"]),
                              "--output-dir", str(sft_out), "--max-steps", "2", "--batch-size", "2",
                              "--eval-fraction", "0", "--logging-steps", "1", "--lr", "1e-3", "--json"])
    assert sft.exit_code == 0, sft.output + sft.stderr
    metrics = json.loads(sft.stdout)
    assert metrics["steps"] == 2 and math.isfinite(metrics["first_loss"]) and math.isfinite(metrics["last_loss"])
    before, after = _weights(model_dir), _weights(sft_out)
    assert before.keys() == after.keys() and any(not torch.equal(before[k], after[k]) for k in before)
    with TraceStore.open(world["db"], create=False, readonly=True) as store:
        assert store.run(metrics["run_id"])["config"]["coords"] == expected["coords"]
    reloaded = TransformersBackend.from_pretrained(sft_out)
    assert type(reloaded._model).__name__ == type(TransformersBackend.from_pretrained(model_dir)._model).__name__

    # vgt train rl: one GRPO step (agent rollouts for 0..1000 families; Qwen2.5-VL's pixels: the point variant,
    # its agent RL refused as a usage error before anything loads or is written)
    rl_out = tmp_path / "rl"

    def train_rl(variant: str, *extra: str):
        return runner.invoke(app, ["train", "rl", "--model", str(sft_out), "--variant", variant, "--db",
                                   str(world["db"]), "--output-dir", str(rl_out), "--max-steps", "1", "--batch-size",
                                   "2", "--num-generations", "2", "--max-completion-length", "16", "--logging-steps",
                                   "1", "--save-steps", "100", "--limit", "2", "--json", *extra])

    if expected["coords"] != "norm1000":
        refused = train_rl("agent")
        assert refused.exit_code == 2 and "agent RL rolls out the ask loop in 0..1000" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1 and not rl_out.exists()
    rl = train_rl("agent" if expected["coords"] == "norm1000" else "point")
    assert rl.exit_code == 0, rl.output + rl.stderr
    rl_metrics = json.loads(rl.stdout)
    assert rl_metrics["steps"] == 1 and math.isfinite(rl_metrics["train_loss"])
    assert (rl_out / "model.safetensors").is_file()
    TransformersBackend.from_pretrained(rl_out)

    # vgt eval --agent: the trained model on the world split, traces stored under its name
    ev = runner.invoke(app, ["eval", "--benchmark", str(world["split"]), "--model", str(rl_out), "--backend",
                             "transformers", "--variant", "agent", "--grounder", "world", "--samples", "1",
                             "--limit", "2", "--max-tokens", "16", "--db", str(db), "--json"])
    assert ev.exit_code == 0, ev.output + ev.stderr
    out = json.loads(ev.stdout)
    assert out["backend"] == "transformers" and out["benchmarks"]["world-tally"]["generations"] == 2
    with TraceStore.open(db, create=False, readonly=True) as store:
        run = store.run(out["run_id"])
        assert run["kind"] == "eval" and run["status"] == "done" and run["model"] == str(rl_out)
        assert run["config"]["coords"] == expected["coords"]
        traces = list(store.traces(run=out["run_id"]))
        assert len(traces) == 2 and {t["model"] for t in traces} == {str(rl_out)}


def test_chat_row_sft_on_the_released_template(family, world, tmp_path: Path) -> None:
    """`vgt train sft --variant point` (TRL's conversational VLM rows, loss on the assistant turn only) trains
    each family: TRL recognises the released template and swaps in its generation-marked training copy."""
    name, model_dir = family
    db = tmp_path / "point.db"
    with TraceStore.open(db) as store:
        store_world_traces(store, world["samples"], variants=("point",))
    out = tmp_path / "sft-point"
    sft = runner.invoke(app, ["train", "sft", "--model", str(model_dir), "--variant", "point", "--db", str(db),
                              "--output-dir", str(out), "--max-steps", "1", "--batch-size", "2", "--eval-fraction",
                              "0", "--logging-steps", "1", "--json"])
    assert sft.exit_code == 0, sft.output + sft.stderr
    metrics = json.loads(sft.stdout)
    assert metrics["steps"] == 1 and math.isfinite(metrics["first_loss"]) and metrics["train_examples"] == 4
    with TraceStore.open(db, create=False, readonly=True) as store:
        run = store.run(metrics["run_id"])
    assert run["model"] == str(model_dir) and run["config"]["coords"] == EXPECTED[name]["coords"]
    assert run["config"]["trl"]["assistant_only_loss"] is True
    TransformersBackend.from_pretrained(out)

    # LoRA on the language model's projections (the family's own module names), merged into a loadable model
    lora_out = tmp_path / "sft-lora"
    lora = runner.invoke(app, ["train", "sft", "--model", str(model_dir), "--variant", "point", "--db", str(db),
                               "--output-dir", str(lora_out), "--max-steps", "1", "--batch-size", "2",
                               "--eval-fraction", "0", "--lora", "--lora-r", "4", "--lr", "1e-2", "--json"])
    assert lora.exit_code == 0, lora.output + lora.stderr
    adapter = load_file(lora_out / "adapter" / "adapter_model.safetensors")
    assert adapter and all(".vision" not in k and ".visual." not in k for k in adapter)
    before, after = _weights(model_dir), _weights(lora_out)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.endswith("proj.weight") and "vision" not in k and "visual" not in k for k in changed)
    TransformersBackend.from_pretrained(lora_out)


def test_the_agent_sft_sequence_states_the_models_own_coordinates(family, world) -> None:
    """The system prompt of each agent training sequence (built by the SFT collator) says the coordinates in
    the family's convention: Qwen2.5-VL's pixels, 0..1000 for the others."""
    from vgt_agent.prompts import COORDINATES, coordinates_sentence, in_convention
    from vgt_agent.training.agent_data import AgentCollator
    from vgt_agent.training.agent_examples import encode_prompt

    name, model_dir = family
    convention = model_convention(str(model_dir))
    processor = TransformersBackend.from_pretrained(model_dir).processor
    system = in_convention(AGENT_TEXT_TOOL, convention)
    row = world["trace"]
    collator = AgentCollator(processor, system=system)
    example = collator.example({**row, "chunks": trace_turns(row), "newlines": [], "trace_id": row["id"]})
    messages = turn_messages(row["question"], row["choices"], [], "turns", system)
    with Image.open(row["image_path"]) as im:
        prompt = encode_prompt(processor, messages, im.convert("RGB"), continuing=False)["input_ids"][0].tolist()
    assert example.input_ids[: len(prompt)] == prompt
    text = processor.apply_chat_template(template_messages(messages), add_generation_prompt=True, tokenize=False)
    said = coordinates_sentence(convention)
    assert said in text and (name != "qwen2_5_vl" or (COORDINATES not in text and "pixels" in said))
