"""How an in-text agent conversation is laid out as chat messages: the one builder every path shares.

Two forms of the same trace (model turns and the grounder's `<obj>` replies, in order):

- `turns` (portable, the default): the model's turn ends at `</ground>`, the tool's reply comes back as the
  next `user` message, and the model answers in a new assistant turn. Standard chat completions suffice, so
  any OpenAI-compatible server can serve it. The reply is a `user` message, not a `tool` one: OpenAI's `tool`
  role must answer an assistant `tool_calls` id, which the in-text protocol has not got, and templates with
  strict user/assistant alternation (Gemma3's) raise on any other role.
- `continuation`: the whole thought so far (model text and replies) is one assistant prefill the model
  continues. Needs `continue_final_message` (vLLM's extension, or the in-process backend); kept for models
  trained on it (the shipped vgt-tiny, whose weights say so in `training_info.json`).

The ask graph, the in-process backend, the SFT and RL token builders (`training/agent_examples.py`) and evaluation all
call `agent_messages`, so a policy sees the same structure wherever it runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from vgt_agent.backends.base import Message
from vgt_agent.prompts import image_question_messages

TurnForm = Literal["turns", "continuation"]
TURN_FORMS: tuple[TurnForm, ...] = ("turns", "continuation")
DEFAULT_TURN_FORM: TurnForm = "turns"
MODEL_INFO = "training_info.json"  # a vgt-trained model directory's record; its "turn_form" names its form


def check_turn_form(form: str) -> TurnForm:
    """The form, or ValueError naming the allowed ones."""
    if form not in TURN_FORMS:
        raise ValueError(f"turn form must be one of {', '.join(TURN_FORMS)}, not {form!r}")
    return form  # type: ignore[return-value]


def agent_messages(system: str, question: str, choices: Sequence[str], chunks: Sequence[Mapping[str, Any]],
                   form: TurnForm) -> list[Message]:
    """The conversation a model turn sees after `chunks` (dicts with "role": "assistant" | "tool", "content").

    `turns`: assistant and user (tool reply, stripped) messages in order; consecutive chunks of one role are
    joined. `continuation`: one assistant prefill holding every chunk's text as written.
    """
    messages: list[Message] = image_question_messages(system, question, choices)
    if not chunks:
        return messages
    if check_turn_form(form) == "continuation":
        return [*messages, {"role": "assistant", "content": "".join(str(c["content"]) for c in chunks)}]
    for chunk in chunks:
        role = "assistant" if chunk["role"] == "assistant" else "user"
        content = str(chunk["content"]) if role == "assistant" else str(chunk["content"]).strip()
        if messages[-1]["role"] == role and isinstance(messages[-1]["content"], str):
            messages[-1] = {"role": role, "content": messages[-1]["content"] + content}
        else:
            messages.append({"role": role, "content": content})
    return messages


def read_turn_form(model_dir: str | Path | None) -> TurnForm:
    """The turn form a model directory declares in its training_info.json; `turns` when it declares none."""
    if not model_dir:
        return DEFAULT_TURN_FORM
    path = Path(model_dir) / MODEL_INFO
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return DEFAULT_TURN_FORM
    form = info.get("turn_form") if isinstance(info, dict) else None
    return form if form in TURN_FORMS else DEFAULT_TURN_FORM
