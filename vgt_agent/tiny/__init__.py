"""Tiny random models built in code, so training, backends and the agent run offline on a CPU."""

from vgt_agent.tiny.build import (
    DEFAULT_WORDS,
    GEMMA3_CHAT_TEMPLATE,
    SYNTAX_TOKENS,
    build_tiny_gemma3,
    build_tiny_tokenizer,
    save_tiny_gemma3,
)

__all__ = [
    "DEFAULT_WORDS",
    "GEMMA3_CHAT_TEMPLATE",
    "SYNTAX_TOKENS",
    "build_tiny_gemma3",
    "build_tiny_tokenizer",
    "save_tiny_gemma3",
]
