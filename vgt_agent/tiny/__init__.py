"""Tiny random models built in code, so training, backends and the agent run offline on a CPU.

The builders load on first use (torch, transformers), so importing a `vgt_agent.tiny` module that needs none
of them (the recipe's numbers, for the CLI's defaults) stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_BUILD = ("DEFAULT_WORDS", "GEMMA3_CHAT_TEMPLATE", "SYNTAX_TOKENS", "build_tiny_gemma3", "build_tiny_tokenizer",
          "save_tiny_gemma3")

__all__ = list(_BUILD)


def __getattr__(name: str) -> Any:
    if name in _BUILD:
        return getattr(import_module("vgt_agent.tiny.build"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
