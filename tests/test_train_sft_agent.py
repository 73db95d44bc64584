"""`vgt train sft --variant agent`: TRL's SFTTrainer trains exactly what the tool-calling policy writes.

Real agent traces (the world-oracle teacher through the ask graph, logged by `run_split` under a synth run)
train a tiny Gemma3 through the CLI; every batch the trainer sees is checked token by token: the prompt and
every tool reply are context only (-100), the model's own turns and the closing <end_of_turn> are the labels,
and the image tokens carry the processor's token_type_ids (Gemma3's bidirectional image block, as the
backend generates with).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner
from world_traces import store_oracle_agent_traces

from vgt_agent.backends import TransformersBackend
from vgt_agent.cli.main import app
from vgt_agent.store import TraceStore
from vgt_agent.store.export import iter_export_rows
from vgt_agent.tiny.recipe import build_policy, save_policy
from vgt_agent.training.agent_data import AgentCollator, trace_turns
from vgt_agent.training.agent_examples import IGNORE, build_example, encode_prompt, prompt_messages, turn_messages
from vgt_agent.training.model import read_provenance

runner = CliRunner()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A store with 8 correct agent traces of a synth run, and a random vgt-tiny saved as a model directory."""
    from vgt_agent.world.storage import load_split, make_split

    root = tmp_path_factory.mktemp("sft-agent")
    make_split(root / "world-train", "world-train", n=8)
    samples = list(load_split(root / "world-train"))
    db = root / "traces.db"
    results = store_oracle_agent_traces(db, samples)
    assert sum(r.correct for r in results) >= 7 and all(r.state["tool_calls"] >= 1 for r in results)
    model, processor = build_policy()
    return {"db": db, "model_dir": save_policy(model, processor, root / "policy"), "processor": processor}


def _check_row(processor: Any, row: dict[str, Any], ids: list[int], labels: list[int], types: list[int],
               mask: list[int]) -> dict[str, int]:
    """One batch row against its trace, in the turns form: each model turn's view (what the backend encodes
    for it) is a prefix of the row, the turn's tokens through its <end_of_turn> are the labels, everything
    else is context; returns how many `<obj>` tokens after the prompt were labelled and how many were not."""
    tok = processor.tokenizer
    end = tok.convert_tokens_to_ids("<end_of_turn>")
    n = sum(mask)
    with Image.open(row["image_path"]) as im:
        image = im.convert("RGB")
        prompt = encode_prompt(processor, prompt_messages(row["question"], row["choices"]), image, False)
        expected = [IGNORE] * n
        for k, chunk in enumerate(row["chunks"]):
            if chunk["role"] != "assistant":
                continue
            view = encode_prompt(processor, turn_messages(row["question"], row["choices"], row["chunks"][:k]), image,
                                 False)["input_ids"][0].tolist()
            assert ids[: len(view)] == view
            close = ids.index(end, len(view))
            expected[len(view): close + 1] = ids[len(view): close + 1]
    start = prompt["input_ids"].shape[1]
    assert labels[:n] == expected and ids[n - 1] == end and labels[n - 1] == end
    assert types[:start] == prompt["token_type_ids"][0].tolist() and sum(types) == sum(types[:start]) >= 1
    assert set(labels[n:]) <= {IGNORE} and set(ids[n:]) <= {tok.pad_token_id}
    obj = tok.convert_tokens_to_ids("<obj>")
    trained = [t for t in labels if t != IGNORE]
    assert "\\boxed{" in tok.decode(trained)
    return {"labelled": trained.count(obj), "context": ids[start:n].count(obj) - trained.count(obj)}


def test_each_turn_is_trained_in_exactly_the_view_the_backend_feeds_the_model(setup: dict[str, Any]) -> None:
    """For both turn forms: at every model turn of a real agent trace, the input ids the transformers backend
    hands to `generate` are a prefix of the trace's training sequence, and the next token is the first label."""
    processor = setup["processor"]
    with TraceStore.open(setup["db"], create=False, readonly=True) as store:
        rows = [r for r in iter_export_rows(store) if sum(m["role"] == "tool" for m in r["messages"] or []) >= 2]
    row = rows[0]
    chunks = trace_turns(row)
    with Image.open(row["image_path"]) as im:
        image = im.convert("RGB")
    for form in ("turns", "continuation"):
        backend = TransformersBackend.from_pretrained(setup["model_dir"], turn_form=form)
        fed: list[list[int]] = []

        def spy(generate=backend._model.generate, fed=fed, **kw: Any) -> Any:
            fed.append(kw["input_ids"][0].tolist())
            return generate(**kw)

        backend._model.generate = spy
        tools = 0
        for k, chunk in enumerate(chunks):
            if chunk["role"] == "tool":
                tools += 1
                continue
            backend.generate(turn_messages(row["question"], row["choices"], chunks[:k], form), [image], max_tokens=1)
            newlines = [True] * max(0, tools - 1) + [False] * min(1, tools)  # this turn's view of earlier replies
            example = build_example(processor, row["question"], row["choices"], chunks, image, newlines, form=form)
            view = fed[-1]
            assert example.input_ids[: len(view)] == view, (form, k)
            assert example.labels[len(view)] != IGNORE and example.labels[len(view) - 1] == IGNORE, (form, k)
        assert len(fed) == sum(c["role"] == "assistant" for c in chunks) >= 3


@pytest.mark.slow
def test_agent_sft_trains_the_model_turns_only(setup: dict[str, Any], tmp_path: Path, monkeypatch,
                                               shared_prefix_calls: list[int]) -> None:
    seen: list[tuple[list[dict[str, Any]], dict[str, Any]]] = []
    collate = AgentCollator.__call__

    def spy(self: AgentCollator, rows: list[dict[str, Any]]) -> dict[str, Any]:
        batch = collate(self, rows)
        seen.append((rows, batch))
        return batch

    monkeypatch.setattr(AgentCollator, "__call__", spy)
    prefixes = shared_prefix_calls
    out = tmp_path / "sft-agent"
    result = runner.invoke(app, ["train", "sft", "--model", str(setup["model_dir"]), "--variant", "agent",
                                 "--db", str(setup["db"]), "--output-dir", str(out), "--max-steps", "8",
                                 "--lr", "3e-3", "--batch-size", "4", "--eval-fraction", "0.25",
                                 "--logging-steps", "1", "--save-steps", "100", "--max-minutes", "5", "--json"])
    assert result.exit_code == 0, result.output + result.stderr
    metrics = json.loads(result.stdout)

    # every batch the trainer saw (train and eval): labels on the model's turns only
    processor = setup["processor"]
    counts = {"labelled": 0, "context": 0}
    tool_objs = model_objs = 0
    for rows, batch in seen:
        assert set(batch) == {"input_ids", "labels", "attention_mask", "pixel_values", "token_type_ids"}
        for i, row in enumerate(rows):
            got = _check_row(processor, row, *(batch[k][i].tolist() for k in
                                               ("input_ids", "labels", "token_type_ids", "attention_mask")))
            counts = {k: counts[k] + got[k] for k in counts}
            model_objs += sum(c["content"].count("<obj>") for c in row["chunks"] if c["role"] == "assistant")
            tool_objs += sum(c["content"].count("<obj>") for c in row["chunks"] if c["role"] == "tool")
    assert len(seen) >= 8 and tool_objs > 0 and model_objs > 0
    assert counts == {"labelled": model_objs, "context": tool_objs}  # no tool reply's <obj> is ever a label

    # the loss falls, the run is logged, the model loads where `vgt ask` / `vgt eval` load it
    assert metrics["steps"] == 8 and metrics["train_examples"] + metrics["eval_examples"] >= 7
    assert metrics["last_loss"] < metrics["first_loss"] - 1.0
    assert metrics["eval_loss_after"] < metrics["eval_loss_before"]
    with TraceStore.open(setup["db"], create=False, readonly=True) as store:
        run = store.run(metrics["run_id"])
    assert run["kind"] == "sft" and run["status"] == "done" and run["name"] == "sft-agent"
    assert run["config"]["variant"] == "agent" and run["config"]["trl"]["assistant_only_loss"] is False
    assert [h["step"] for h in run["metrics"]["history"] if "loss" in h] == list(range(1, 9))
    # every training batch ran its shared system prompt once (SharedPrefixSFTTrainer); 8 steps fit in 5 minutes
    assert len(prefixes) >= 8 and min(prefixes) > 100
    assert run["config"]["max_minutes"] == 5 and run["metrics"]["time_budget"]["planned_steps"] == 8
    assert read_provenance(out)["variant"] == "agent" and read_provenance(out)["run_id"] == metrics["run_id"]
    backend = TransformersBackend.from_pretrained(out)
    gen = backend.generate(prompt_messages("How many red circles are there?", ()), [Image.new("RGB", (32, 32))],
                           max_tokens=4)
    assert gen.completion_tokens >= 1


@pytest.mark.parametrize(("extra", "yaml_text", "message"), [
    (["--max-length", "64"], None, "--variant agent trains whole traces"),
    ([], "assistant_only_loss: true\n", "--variant agent trains with assistant_only_loss=False"),
    ([], "remove_unused_columns: true\n", "--variant agent trains with remove_unused_columns=False"),
])
def test_agent_settings_that_would_change_the_labels_exit_2(setup: dict[str, Any], tmp_path: Path,
                                                           extra: list[str], yaml_text: str | None,
                                                           message: str) -> None:
    if yaml_text is not None:
        (tmp_path / "c.yaml").write_text(yaml_text)
        extra = [*extra, "--config", str(tmp_path / "c.yaml")]
    result = runner.invoke(app, ["train", "sft", "--model", str(setup["model_dir"]), "--variant", "agent",
                                 "--db", str(setup["db"]), "--output-dir", str(tmp_path / "never"), *extra])
    assert result.exit_code == 2 and message in result.stderr, result.output + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "never").exists()
