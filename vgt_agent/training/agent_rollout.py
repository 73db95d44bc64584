"""GRPO rollouts of the tool-calling policy: TRL's `rollout_func` running the ask loop with the policy in training.

Each prompt TRL hands over (one per generation: its sampler repeats a prompt `num_generations` times) runs
`graphs/ask.py` as `vgt ask` would, in-text protocol and point replies: the policy, sampled with TRL's own
generation settings (temperature, top-p/k, ...) through `TransformersBackend` in the rollout's turn form
(`backends/turns.py`; `turns` unless told otherwise), writes until `</ground>`, the grounder's reply comes
back, and so on until `\\boxed{}` or a limit. TRL then trains on one token sequence per rollout, built by
`training/agent_examples.build_example` in the same form (the documented per-turn views of the ask loop):

    prompt_ids      the backend's first view: system, image, question, generation prompt
    completion_ids  model turns and tool replies as the template renders the conversation (`turns`), or
                    the replies without their trailing "\\n" inside one continued turn (`continuation`);
                    the turn's end token closes the last model turn when the model wrote it, not when a limit
                    stopped it (so TRL and r_trunc count the rollout as truncated)
    env_mask        1 on model tokens, 0 on tool-reply and template tokens (TRL leaves those out of the loss)
    logprobs        None: without vLLM TRL computes the old log-probs itself when it needs them and uses
                    sampling log-probs only for vLLM's importance-sampling correction

In the continuation form no one sequence holds every turn's view: a turn two or more replies on saw the
earlier replies' "\\n", which this sequence drops. In the turns form each
turn's view is a prefix of the sequence.
TRL builds the image inputs of the loss from the dataset prompt, so the prompt must be the agent's own
(`data.rl_prompt` with the `agent` variant): then its template and `prompt_ids` are the same tokens.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from PIL import Image

from vgt_agent.backends.turns import DEFAULT_TURN_FORM, TurnForm
from vgt_agent.graphs.ask import AskContext, AskLimits, AskState, run_ask
from vgt_agent.images import to_rgb
from vgt_agent.prompts import AGENT_TEXT_TOOL
from vgt_agent.store import ImageRecord, SampleRecord
from vgt_agent.training.agent_examples import IGNORE, build_example
from vgt_agent.training.agent_prompts import GrounderSource, image_digest, prompt_view


@dataclass(frozen=True)
class RolloutTokens:
    prompt_ids: list[int]
    completion_ids: list[int]
    env_mask: list[int]  # per completion token: 1 = the model wrote it, 0 = a tool reply


def ended(chunks: Sequence[dict[str, Any]]) -> bool:
    """True when the rollout's last turn is the model's and ended on its end token (no stop string, no limit)."""
    if not chunks or chunks[-1]["role"] != "assistant":
        return False
    last = chunks[-1]
    return last.get("finish_reason") == "stop" and last.get("stop_sequence") is None


def rollout_tokens(processor: Any, question: str, image: Image.Image, chunks: Sequence[dict[str, Any]],
                   form: TurnForm = DEFAULT_TURN_FORM) -> RolloutTokens:
    """The token sequence TRL trains on for one rollout (see the module docstring for its layout)."""
    if not chunks:
        raise RuntimeError("the rollout produced no text (did the first model turn fail?)")
    example = build_example(processor, question, (), chunks, image, end=ended(chunks), form=form)
    n = example.prompt_len
    return RolloutTokens(example.input_ids[:n], example.input_ids[n:],
                         [int(label != IGNORE) for label in example.labels[n:]])


@dataclass
class AgentRollout:
    """TRL's `rollout_func` for the agent variant. `limits` bound turns and tool calls; the token budget and
    temperature come from the trainer (`max_completion_length` counts the model's tokens, not the replies')."""

    grounders: GrounderSource
    limits: AskLimits = field(default_factory=AskLimits)
    turn_form: TurnForm = DEFAULT_TURN_FORM
    _count: itertools.count = field(default_factory=itertools.count, repr=False)

    def __call__(self, prompts: list[list[dict[str, Any]]], trainer: Any) -> dict[str, Any]:
        from trl.models import unwrap_model_for_generation

        from vgt_agent.backends.transformers_backend import TransformersBackend

        args = trainer.args
        limits = replace(self.limits, max_tokens=args.max_completion_length, temperature=args.temperature)
        processor = trainer.processing_class
        training = trainer.model.training
        with unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator,
                                         generation_kwargs=trainer.generation_kwargs,
                                         gradient_checkpointing_kwargs=args.gradient_checkpointing_kwargs) as policy:
            backend = TransformersBackend(policy, processor, model_name="policy",  # puts the policy in eval mode
                                          turn_form=self.turn_form)
            try:
                runs = [self.run(backend, prompt, limits) for prompt in prompts]
            finally:
                trainer.model.train(training)
        tokens = [rollout_tokens(processor, question, image, state.get("chunks", []), self.turn_form)
                  for question, image, state in runs]
        return {
            "prompt_ids": [t.prompt_ids for t in tokens],
            "completion_ids": [t.completion_ids for t in tokens],
            "logprobs": None,
            "env_mask": [t.env_mask for t in tokens],
            # forwarded to every reward function as columns: the turns, for rewards that tell the policy's
            # text from the grounder's, and the counts `tool_calls` logs
            "turns": [[{"role": c["role"], "content": c["content"]} for c in state.get("chunks", [])]
                      for _, _, state in runs],
            "tool_calls": [int(state.get("tool_calls", 0)) for _, _, state in runs],
        }

    def run(self, backend: Any, prompt: list[dict[str, Any]], limits: AskLimits) -> tuple[str, Image.Image, AskState]:
        """One ask-loop rollout of a prompt: (its question text, its image, the loop's final state)."""
        system, question, image = prompt_view(prompt)
        if system != AGENT_TEXT_TOOL:
            raise ValueError("an agent rollout needs the ask loop's own system prompt (agent-variant RL rows)")
        image = to_rgb(image)  # as `vgt ask` reads an image file: upright, flattened, 8-bit
        digest = image_digest(image)
        record = SampleRecord("rl", "", digest, question, ImageRecord(digest, "", *image.size))
        ctx = AskContext(image=image, sample=record, backend=backend,
                         grounder=self.grounders.for_prompt(image, question, next(self._count)),
                         kind="point", protocol="text", limits=limits)
        return question, image, run_ask(ctx)


def tool_calls(completions: Sequence[Any], tool_calls: Sequence[int] | None = None, **_: Any) -> list[float]:
    """Logged only (weight 0): how many times each rollout called the grounder (`rewards/tool_calls/mean`)."""
    return [float(n) for n in tool_calls] if tool_calls is not None else [0.0] * len(completions)
