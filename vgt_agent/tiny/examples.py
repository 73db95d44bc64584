"""Agent traces -> token ids and loss labels, exactly as the ask loop will show them to the policy.

Why not a plain chat SFT row: in the ask loop the backend continues an assistant *prefill*, which the
Gemma3 template trims at the end, so after a tool reply "...</obj>\\n" the model sees "...</obj>" and
writes its next turn from there. One sequence per trace reproduces every turn's view at once: prompt,
then model turns (trained) and tool replies without their trailing whitespace (context only), then
<end_of_turn>. Later turns do see the earlier replies' "\n" (only the end of the prefill is trimmed), so
`newlines` keeps them in some sequences: the policy learns both views. `check_views` asserts the first.
The image tokens keep the processor's `token_type_ids`, so Gemma3 attends over them bidirectionally in
training as it does when the backend generates (a no-op for vgt-tiny's single image token).
Used by `vgt train sft --variant agent` (training/agent_data.py) and agent RL rollouts (training/agent_rollout.py).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from vgt_agent.prompts import AGENT_TEXT_TOOL, image_question_messages

IGNORE = -100
NEWLINE_P = 0.5  # share of tool replies kept with their trailing "\n" (the view later turns have)


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]
    pixel_values: torch.Tensor  # (1, 3, H, W)
    token_type_ids: list[int]  # 1 on image tokens (the processor's), 0 elsewhere
    prompt_len: int = 0  # the first view (system, image, question, generation prompt) is input_ids[:prompt_len]


def sample_newlines(chunks: Sequence[dict[str, str]], rng: random.Random, p: float = NEWLINE_P) -> list[bool]:
    """Which tool replies of a trace keep their trailing whitespace in its training sequence (one draw each,
    in order), so both views of an earlier reply are trained."""
    return [rng.random() < p for c in chunks if c["role"] == "tool"]


def prompt_messages(question: str, choices: Sequence[str], prefill: str | None = None) -> list[dict[str, Any]]:
    """What graphs/ask.py sends: system, user (image + question), optionally the thought so far."""
    messages: list[dict[str, Any]] = image_question_messages(AGENT_TEXT_TOOL, question, choices)
    if prefill:
        messages.append({"role": "assistant", "content": prefill})
    return messages


def encode_prompt(processor: Any, messages: list[dict[str, Any]], image: Image.Image, continuing: bool) -> Any:
    return processor.apply_chat_template(
        messages, add_generation_prompt=not continuing, continue_final_message=continuing, tokenize=True,
        return_dict=True, return_tensors="pt", processor_kwargs={"images": [image.convert("RGB")]},
    )


def build_example(processor: Any, question: str, choices: Sequence[str], chunks: Sequence[dict[str, str]],
                  image: Image.Image, newlines: Sequence[bool] = (), end: bool = True) -> Example:
    """One training sequence for a whole agent trace (model turns trained, the rest masked); `newlines[j]`
    keeps the trailing whitespace of the j-th tool reply; `end` closes it with <end_of_turn> (a finished
    trace; an RL rollout cut short by a limit has no end token, which is how GRPO tells it was truncated)."""
    tok = processor.tokenizer
    prompt = encode_prompt(processor, prompt_messages(question, choices), image, continuing=False)
    ids = prompt["input_ids"][0].tolist()
    labels = [IGNORE] * len(ids)
    types = prompt["token_type_ids"][0].tolist()
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
        end_id = tok.convert_tokens_to_ids("<end_of_turn>")
        ids.append(end_id)
        labels.append(end_id)
    return Example(ids, labels, prompt["pixel_values"], types + [0] * (len(ids) - len(types)),
                   prompt["input_ids"].shape[1])


def check_views(processor: Any, question: str, choices: Sequence[str], chunks: Sequence[dict[str, str]],
                image: Image.Image) -> bool:
    """True when each model turn's context, as built here, is exactly what the backend tokenises."""
    prefill, tools = "", 0
    for chunk in chunks:
        if chunk["role"] == "assistant":
            newlines = [True] * max(0, tools - 1) + [False] * min(1, tools)
            ex = build_example(processor, question, choices, chunks, image, newlines)
            view = encode_prompt(processor, prompt_messages(question, choices, prefill), image, bool(prefill))
            if ex.input_ids[: view["input_ids"].shape[1]] != view["input_ids"][0].tolist():
                return False
        else:
            tools += 1
        prefill += chunk["content"]
    return True


def collate(batch: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch for teacher forcing (the image tokens sit in the prompt, before any padding)."""
    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    types = torch.zeros((len(batch), width), dtype=torch.long)
    for i, e in enumerate(batch):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        labels[i, :n] = torch.tensor(e.labels)
        mask[i, :n] = 1
        types[i, :n] = torch.tensor(e.token_type_ids)
    return {"input_ids": ids, "labels": labels, "attention_mask": mask,
            "pixel_values": torch.cat([e.pixel_values for e in batch]), "token_type_ids": types}
