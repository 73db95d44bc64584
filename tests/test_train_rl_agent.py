"""`vgt train rl --variant agent`: GRPO over rollouts of the ask loop, from the shipped vgt-tiny (which calls the
grounder), so the rollouts hold real tool replies: the tokens TRL trains on, the mask that keeps the replies out
of the loss, the reward on the final answer, the saved model and the run in the store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner
from vgt_cli import vgt
from world_traces import store_world_traces, world_samples

from vgt_agent.answers import check_answer
from vgt_agent.backends import TransformersBackend
from vgt_agent.grounders.world import WorldGrounder
from vgt_agent.prompts import AGENT_TEXT_TOOL, format_question
from vgt_agent.store import ImageRecord, SampleRecord, TraceStore
from vgt_agent.tiny.recipe import WEIGHTS_DIR, shipped_weights
from vgt_agent.training import agent_rollout
from vgt_agent.training.agent_prompts import GoldSource, prompt_view
from vgt_agent.training.agent_rollout import rollout_tokens
from vgt_agent.training.data import rl_rows_from_samples
from vgt_agent.training.model import read_provenance

pytestmark = pytest.mark.skipif(shipped_weights() is None, reason="the shipped vgt-tiny weights are not installed")
runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list, Path]:
    """A store with traces of two counting and two spatial world samples (their prompts are what RL asks),
    the samples, and the folder of their splits."""
    root = tmp_path_factory.mktemp("rl-agent")
    samples = world_samples(root, "world-tally", 2) + world_samples(root, "world-vsr", 2)
    db = root / "traces.db"
    with TraceStore.open(db) as store:
        store_world_traces(store, samples)
    return db, samples, root


@pytest.fixture
def rollouts(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every rollout batch TRL asks for during a run, with what the trainer would template for its prompts."""
    seen: list[dict[str, Any]] = []
    real = agent_rollout.AgentRollout.__call__

    def spy(self, prompts, trainer):
        out = real(self, prompts, trainer)
        templated = [trainer.processing_class.apply_chat_template(p, add_generation_prompt=True, tokenize=True,
                                                                  return_dict=True)["input_ids"][0] for p in prompts]
        seen.append({"prompts": prompts, "templated": templated, "out": out})
        return out

    monkeypatch.setattr(agent_rollout.AgentRollout, "__call__", spy)
    return seen


def _rl(*args: str):
    return vgt("train", "rl", "--json", "--variant", "agent", "--logging-steps", "1", "--save-steps", "100",
               "--num-generations", "2", *args)


def _runs(mask: list[int], ids: list[int], value: int) -> list[list[int]]:
    """The maximal runs of ids whose mask equals value, in order."""
    runs: list[list[int]] = []
    for i, (m, t) in enumerate(zip(mask, ids, strict=True)):
        if m == value:
            if i == 0 or mask[i - 1] != value:
                runs.append([])
            runs[-1].append(t)
    return runs


def test_grpo_on_tool_calling_rollouts(world, rollouts, tmp_path: Path) -> None:
    db, samples, _ = world
    out = tmp_path / "rl-agent"
    result = _rl("--model", str(WEIGHTS_DIR), "--db", str(db), "--output-dir", str(out), "--max-steps", "2",
                 "--batch-size", "4", "--max-completion-length", "128")
    assert result.exit_code == 0, result.output + result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["steps"] == 2 and metrics["prompts"] == 4

    tok = TransformersBackend.from_pretrained(WEIGHTS_DIR).tokenizer
    end = tok.convert_tokens_to_ids("<end_of_turn>")
    gold = {format_question(s.question, s.choices): s for s in samples}
    assert len(rollouts) == 2  # one generation batch per step: 2 prompts x 2 generations
    expected_answer_means = []
    for batch in rollouts:
        out_ = batch["out"]
        assert len(batch["prompts"]) == len(out_["completion_ids"]) == 4 and out_["logprobs"] is None
        scores = []
        for prompt, templated, prompt_ids, ids, mask, turns in zip(
                batch["prompts"], batch["templated"], out_["prompt_ids"], out_["completion_ids"], out_["env_mask"],
                out_["turns"], strict=True):
            # the prompt is the backend's first view, token for token what TRL templates (its image inputs line up)
            assert prompt_ids == templated
            assert len(mask) == len(ids) and set(mask) <= {0, 1}
            replies = [t["content"] for t in turns if t["role"] == "tool"]
            model = [t["content"] for t in turns if t["role"] == "assistant"]
            assert replies, turns  # vgt-tiny grounds before it answers
            # env_mask is 0 on exactly the tool replies, each a user turn of the template (the turns form) ...
            last_is_model = turns[-1]["role"] == "assistant"
            context = ["\n<start_of_turn>user\n" + r.strip() for r in replies]  # a last reply: no end token
            context = [c + "<end_of_turn>\n<start_of_turn>model\n" if j < len(model) - 1 or last_is_model else c
                       for j, c in enumerate(context)]
            assert [tok.decode(r) for r in _runs(mask, ids, 0)] == context
            # ... and 1 on exactly the model's turns, each closed by <end_of_turn>, the last only when it answered
            closed = ids[-1] == end and last_is_model
            model_runs = _runs(mask, ids, 1)
            assert [tok.decode(r) for r in model_runs] == [
                *(m.strip() + "<end_of_turn>" for m in model[:-1]),
                model[-1].strip() + ("<end_of_turn>" if closed or not last_is_model else "")]
            # r_ans reads the final answer against the prompt's gold
            system, question, _ = prompt_view(prompt)
            sample = gold[question]
            scores.append(float(check_answer(model[-1], sample.answer, sample.answer_type, sample.choices).correct))
        assert sum(out_["tool_calls"]) >= 4
        expected_answer_means.append(sum(scores) / len(scores))

    with TraceStore.open(db, create=False, readonly=True) as store:
        run = store.run(metrics["run_id"])
    assert run["kind"] == "rl" and run["status"] == "done" and run["name"] == "rl-agent"
    assert run["config"]["variant"] == "agent" and run["config"]["grounder"] == "world"
    steps = [h for h in run["metrics"]["history"] if "reward" in h]
    assert len(steps) == 2
    assert [h["rewards/answer_reward/mean"] for h in steps] == pytest.approx(expected_answer_means)
    assert all(h["rewards/tool_calls/mean"] >= 1 for h in steps)
    assert all(h["rewards/grounding_format_reward/mean"] > 0 for h in steps)
    assert run["config"]["trl"]["reward_weights"] == [1.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0]

    provenance = read_provenance(out)
    assert provenance["stage"] == "rl" and provenance["variant"] == "agent" and provenance["grounder"] == "world"
    assert (out / "model.safetensors").is_file()
    TransformersBackend.from_pretrained(out)


def test_gold_grounder_from_a_world_split(world, rollouts, tmp_path: Path) -> None:
    """`--grounder gold` with prompts from a world split: the sample's scene graph answers the tool calls."""
    split = world[2] / "world-vsr"
    result = _rl("--model", str(WEIGHTS_DIR), "--samples-from", str(split), "--db", str(tmp_path / "fresh.db"),
                 "--output-dir", str(tmp_path / "gold"), "--max-steps", "1", "--batch-size", "2",
                 "--grounder", "gold", "--max-completion-length", "96")
    assert result.exit_code == 0, result.output + result.stderr
    with TraceStore.open(tmp_path / "fresh.db", create=False, readonly=True) as store:
        assert store.run(json.loads(result.stdout)["run_id"])["config"]["grounder"] == "gold"
    turns = [t for batch in rollouts for rollout in batch["out"]["turns"] for t in rollout]
    assert any(t["role"] == "tool" and "<obj>" in t["content"] for t in turns)


def test_gold_source_finds_the_prompts_sample_by_its_pixels(world) -> None:
    """The gold grounder of a rollout is the sample its prompt shows: with the world split's scene graph it
    grounds what the world grounder would; from references alone only the objects as the question names them."""
    _, samples, _ = world
    rows = rl_rows_from_samples(samples, "agent")
    sample = next(s for s in samples if s.question == "Is the large green square below the green circle?")
    row = next(r for r in rows if r["sample_id"] == SampleRecord.from_sample(
        sample, ImageRecord.from_path(sample.image_path)).id)
    system, question, _ = prompt_view(row["prompt"][:1] + [_with_image(row["prompt"][1], sample.load_image())])
    assert system == AGENT_TEXT_TOOL and question == format_question(sample.question, sample.choices)
    image = sample.load_image()
    with_scene = GoldSource(rows, samples).for_prompt(image, question, 0)
    world_points = sorted(i.point for i in WorldGrounder().ground(image, "large green circle"))
    assert sorted(i.point for i in with_scene.ground(image, "large green circle")) == world_points != []
    references_only = GoldSource(rows).for_prompt(image, question, 0)
    assert len(references_only.ground(image, "green circle")) == 1
    assert len(references_only.ground(image, "large green circle")) == 0


def _with_image(user: dict[str, Any], image: Any) -> dict[str, Any]:
    """The user message as TRL hands it to the rollout: the image inside its image part."""
    return {**user, "content": [{**p, "image": image} if p["type"] == "image" else p for p in user["content"]]}


def test_a_rollout_cut_by_a_limit_has_no_end_token() -> None:
    """Truncated rollouts end without <end_of_turn>, so TRL and r_trunc see them as truncated."""
    processor = TransformersBackend.from_pretrained(WEIGHTS_DIR).processor
    from PIL import Image

    image = Image.new("RGB", (64, 64), "grey")
    turns = [{"role": "assistant", "content": "<think> <ground> red circle </ground>", "finish_reason": "stop",
              "stop_sequence": "</ground>"},
             {"role": "tool", "content": "\nNo red circle found.\n"},
             {"role": "assistant", "content": "total 0 </think> \\boxed{0}", "finish_reason": "stop",
              "stop_sequence": None}]
    end = processor.tokenizer.convert_tokens_to_ids("<end_of_turn>")
    question = "How many red circles?"
    answered = rollout_tokens(processor, question, image, turns)
    assert answered.completion_ids[-1] == end and answered.env_mask[-1] == 1
    cut = rollout_tokens(processor, question, image, [*turns[:2], {**turns[2], "finish_reason": "length"}])
    assert cut.completion_ids == answered.completion_ids[:-1] and cut.env_mask == answered.env_mask[:-1]
    capped = rollout_tokens(processor, question, image, turns[:2])  # stopped after a reply (a tool-call limit)
    assert capped.completion_ids[-1] != end and capped.env_mask[-1] == 0


def test_agent_rl_refuses_bad_options(world, tmp_path: Path) -> None:
    db = world[0]
    for extra, message in ((["--grounder", "sam9"], "Invalid value for '--grounder'"),
                           (["--use-vllm"], "--variant agent rolls out the tool loop in process")):
        result = _rl("--model", str(WEIGHTS_DIR), "--db", str(db), "--output-dir", str(tmp_path / "never"), *extra)
        assert result.exit_code == 2 and message in result.stderr, (extra, result.stderr)
