"""Agent traces -> token ids and loss labels, exactly as the ask loop shows them to the policy.

One sequence per trace, in the trace's turn form (`backends/turns.py`, built by its `agent_messages`, the
builder the ask loop uses):

- `turns` (the default): the chat template renders the whole conversation (system, image, question, then
  model turns as assistant messages and tool replies as user messages). Each model turn starts where the
  backend's view of that turn (the conversation before it plus the generation prompt) ends, and runs through
  its `<end_of_turn>`; those tokens are trained, everything else (prompt, replies, the next generation
  prompt) is context only. `check_views` asserts each view is a prefix of the sequence.
- `continuation` (the shipped vgt-tiny): the backend continues an assistant *prefill*, which the Gemma3
  template trims at the end, so after a tool reply "...</obj>\n" the model sees "...</obj>" and writes its
  next turn from there. The sequence is the prompt, then model turns (trained) and tool replies without their
  trailing whitespace (context only), then <end_of_turn>. Later turns do see the earlier replies' "\n" (only
  the end of the prefill is trimmed), so `newlines` keeps them in some sequences: the policy learns both views.

The image tokens keep the processor's per-token type ids (Gemma3's `token_type_ids`: it attends over them
bidirectionally in training as it does when the backend generates; Qwen-VL's `mm_token_type_ids`: its 3-D
rotary positions), and every other image input the processor returns (Qwen's `image_grid_thw`, Idefics3's
`pixel_attention_mask`) rides along with the pixels, so any family's model gets what its forward reads. A model
turn ends with the token its chat template closes an assistant message with (`turn_end_id`).
Used by `vgt train sft --variant agent` (training/agent_data.py), agent RL rollouts
(training/agent_rollout.py) and the warm-up drills.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from vgt_agent.backends.transformers_backend import template_messages
from vgt_agent.backends.turns import DEFAULT_TURN_FORM, TurnForm, agent_messages, check_turn_form
from vgt_agent.prompts import AGENT_TEXT_TOOL

IGNORE = -100
NEWLINE_P = 0.5  # share of tool replies kept with their trailing "\n" (the view later turns have)


TEXT_INPUTS = ("input_ids", "attention_mask")


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]
    images: dict[str, torch.Tensor]  # the processor's image inputs for the sequence (pixel_values, ...)
    token_types: dict[str, list[int]]  # the processor's per-token type ids (1 on image tokens), cut to input_ids
    prompt_len: int = 0  # the first view (system, image, question, generation prompt) is input_ids[:prompt_len]

    @property
    def pixel_values(self) -> torch.Tensor:
        return self.images["pixel_values"]


def image_inputs(encoded: Any) -> tuple[dict[str, torch.Tensor], dict[str, list[int]]]:
    """A processor output's image inputs (per sequence) and per-token type ids (a row as long as input_ids)."""
    length = encoded["input_ids"].shape[1]
    images: dict[str, torch.Tensor] = {}
    types: dict[str, list[int]] = {}
    for key, value in encoded.items():
        if key in TEXT_INPUTS or not isinstance(value, torch.Tensor):
            continue
        if value.dim() == 2 and value.shape == (1, length) and "type" in key:
            types[key] = value[0].tolist()
        else:
            images[key] = value
    return images, types


def turn_end_id(processor: Any) -> int:
    """The token the chat template closes a model turn with (Gemma3 <end_of_turn>, Qwen <|im_end|>, SmolVLM
    <end_of_utterance>): the first special token it writes after an assistant message; else the EOS."""
    tok = processor.tokenizer
    marker = "vgt"
    text = processor.apply_chat_template(template_messages([{"role": "user", "content": "a"},
                                                            {"role": "assistant", "content": marker}]),
                                         tokenize=False)
    text = text[0] if isinstance(text, list) else text
    special = set(tok.all_special_ids)
    after = tok(text[text.rindex(marker) + len(marker):], add_special_tokens=False)["input_ids"]
    return next((t for t in after if t in special), tok.eos_token_id)


def sample_newlines(chunks: Sequence[dict[str, str]], rng: random.Random, p: float = NEWLINE_P) -> list[bool]:
    """Which tool replies of a trace keep their trailing whitespace in its training sequence (one draw each,
    in order), so both views of an earlier reply are trained."""
    return [rng.random() < p for c in chunks if c["role"] == "tool"]


def prompt_messages(question: str, choices: Sequence[str], prefill: str | None = None,
                    system: str = AGENT_TEXT_TOOL) -> list[dict[str, Any]]:
    """The agent's first view (system, user with image + question), optionally with a continuation prefill."""
    chunks = [{"role": "assistant", "content": prefill}] if prefill else []
    return turn_messages(question, choices, chunks, "continuation", system)


def turn_messages(question: str, choices: Sequence[str], chunks: Sequence[dict[str, str]],
                  form: TurnForm = DEFAULT_TURN_FORM, system: str = AGENT_TEXT_TOOL) -> list[dict[str, Any]]:
    """What graphs/ask.py sends after `chunks`, in the given turn form; `system` is the agent's system prompt
    (said in the model's coordinate convention: `prompts.in_convention`)."""
    return agent_messages(system, question, choices, chunks, form)


def encode_prompt(processor: Any, messages: list[dict[str, Any]], image: Image.Image, continuing: bool) -> Any:
    """Tokenise a conversation as the transformers backend does: a trailing assistant message continued, else
    a generation prompt opened."""
    return processor.apply_chat_template(
        template_messages(messages), add_generation_prompt=not continuing, continue_final_message=continuing,
        tokenize=True, return_dict=True, return_tensors="pt", processor_kwargs={"images": [image.convert("RGB")]},
    )


def build_example(processor: Any, question: str, choices: Sequence[str], chunks: Sequence[dict[str, str]],
                  image: Image.Image, newlines: Sequence[bool] = (), end: bool = True,
                  form: TurnForm = DEFAULT_TURN_FORM, system: str = AGENT_TEXT_TOOL) -> Example:
    """One training sequence for a whole agent trace (model turns trained, the rest masked) in `form`;
    `end` closes it with the turn's end token (a finished trace; an RL rollout cut short by a limit has no end
    token, which is how GRPO tells it was truncated). `newlines[j]` (continuation form only) keeps the
    trailing whitespace of the j-th tool reply."""
    if check_turn_form(form) == "turns":
        return _turns_example(processor, question, choices, chunks, image, end, system)
    tok = processor.tokenizer
    prompt = encode_prompt(processor, prompt_messages(question, choices, system=system), image, continuing=False)
    ids = prompt["input_ids"][0].tolist()
    labels = [IGNORE] * len(ids)
    images, types = image_inputs(prompt)
    tools = 0
    for chunk in chunks:
        if chunk["role"] == "tool":
            keep = tools < len(newlines) and newlines[tools]
            tools += 1
            text = chunk["content"] if keep else chunk["content"].rstrip()
            piece = tok(text, add_special_tokens=False)["input_ids"]
            ids += piece
            labels += [IGNORE] * len(piece)
        else:
            piece = tok(chunk["content"], add_special_tokens=False)["input_ids"]
            ids += piece
            labels += piece
    if end:
        end_id = turn_end_id(processor)
        ids.append(end_id)
        labels.append(end_id)
    return Example(ids, labels, images, {k: v + [0] * (len(ids) - len(v)) for k, v in types.items()},
                   prompt["input_ids"].shape[1])


def _turns_example(processor: Any, question: str, choices: Sequence[str], chunks: Sequence[dict[str, str]],
                   image: Image.Image, end: bool, system: str = AGENT_TEXT_TOOL) -> Example:
    """The `turns` form: the template's rendering of the whole conversation, each model turn labelled from
    where its view ends through its turn's end token; the sequence stops at the last turn's end, before it when
    `end` is False or the last turn is a tool reply (a limit stopped the rollout, so no end token closes it)."""
    end_id = turn_end_id(processor)
    messages = turn_messages(question, choices, chunks, "turns", system)
    full = processor.apply_chat_template(template_messages(messages), add_generation_prompt=False, tokenize=True,
                                         return_dict=True, return_tensors="pt",
                                         processor_kwargs={"images": [image.convert("RGB")]})
    ids = full["input_ids"][0].tolist()
    labels = [IGNORE] * len(ids)
    prompt = _prefix_of(ids, encode_prompt(processor, messages[:2], image, continuing=False)["input_ids"][0].tolist())
    prompt_text = _rendered(processor, messages[:2])
    close = len(ids) - 1
    for i in range(2, len(messages)):
        if messages[i]["role"] != "assistant":
            continue
        n = _view_length(processor, messages[:i], image, ids, prompt, prompt_text)
        close = ids.index(end_id, n) if end_id in ids[n:] else len(ids) - 1
        labels[n: close + 1] = ids[n: close + 1]
    last = max((j for j, t in enumerate(ids) if t == end_id), default=len(ids) - 1)
    stop_at = last + 1 if messages[-1]["role"] == "assistant" and end else last  # a limit's cut: no end token
    images, types = image_inputs(full)
    return Example(ids[:stop_at], labels[:stop_at], images, {k: v[:stop_at] for k, v in types.items()}, len(prompt))


def _rendered(processor: Any, messages: list[dict[str, Any]]) -> str:
    """The chat template's text for a conversation with the generation prompt opened (no tokens, no image)."""
    text = processor.apply_chat_template(template_messages(messages), add_generation_prompt=True, tokenize=False)
    return text[0] if isinstance(text, list) else text


def _view_length(processor: Any, messages: list[dict[str, Any]], image: Image.Image, ids: list[int],
                 prompt: list[int], prompt_text: str) -> int:
    """How many of the whole conversation's tokens `ids` a model turn sees (what the backend tokenises for it),
    checked token for token. The view is the prompt (image included, tokenised by the processor once) and the
    text after it, tokenised alone: about 3x cheaper than a processor call per turn. Where the text does not
    split there, the view is tokenised whole."""
    text = _rendered(processor, messages)
    if text.startswith(prompt_text):
        tail = processor.tokenizer(text[len(prompt_text):], add_special_tokens=False)["input_ids"]
        n = len(prompt) + len(tail)
        if ids[len(prompt): n] == tail:
            return n
    return len(_prefix_of(ids, encode_prompt(processor, messages, image, continuing=False)["input_ids"][0].tolist()))


def _prefix_of(ids: list[int], view: list[int]) -> list[int]:
    """`view`, checked to be how the whole conversation's tokens `ids` begin."""
    if ids[: len(view)] != view:
        raise ValueError("the chat template does not render this conversation as a prefix of its turns")
    return view


def check_views(processor: Any, question: str, choices: Sequence[str], chunks: Sequence[dict[str, str]],
                image: Image.Image, form: TurnForm = DEFAULT_TURN_FORM) -> bool:
    """True when each model turn's context, as built here, is exactly what the backend tokenises for it
    (the backend sends `turn_messages` and continues a trailing assistant message)."""
    tools = 0
    for k, chunk in enumerate(chunks):
        if chunk["role"] == "assistant":
            newlines = [True] * max(0, tools - 1) + [False] * min(1, tools)
            ex = build_example(processor, question, choices, chunks, image, newlines, form=form)
            messages = turn_messages(question, choices, chunks[:k], form)
            view = encode_prompt(processor, messages, image, messages[-1]["role"] == "assistant")
            n = view["input_ids"].shape[1]
            if ex.input_ids[:n] != view["input_ids"][0].tolist():
                return False
            if form == "turns" and (n >= len(ex.labels) or ex.labels[n] == IGNORE or ex.labels[n - 1] != IGNORE):
                return False  # the turn's first token is trained, its view is not
        else:
            tools += 1
    return True


def stack_images(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """One batch of a per-sequence image input: concatenated on the first dimension, the others zero-padded to
    the largest (Idefics3's crops per image vary; its model skips all-zero images)."""
    shape = [max(t.shape[d] for t in tensors) for d in range(1, tensors[0].dim())]
    padded = [torch.nn.functional.pad(t, [p for d in reversed(range(1, t.dim()))
                                          for p in (0, shape[d - 1] - t.shape[d])]) for t in tensors]
    return torch.cat(padded)


def collate(batch: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch for teacher forcing (the image tokens sit in the prompt, before any padding)."""
    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    types = {key: torch.zeros((len(batch), width), dtype=torch.long) for key in batch[0].token_types}
    for i, e in enumerate(batch):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        labels[i, :n] = torch.tensor(e.labels)
        mask[i, :n] = 1
        for key, row in e.token_types.items():
            types[key][i, :n] = torch.tensor(row)
    images = {key: stack_images([e.images[key] for e in batch]) for key in batch[0].images}
    return {"input_ids": ids, "labels": labels, "attention_mask": mask, **images, **types}
