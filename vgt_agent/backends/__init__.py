"""VLM backends behind one interface (`VLMBackend.generate(messages, images, ...) -> Generation`).

- `OpenAIBackend`: any OpenAI-compatible server (vLLM, SGLang, llama.cpp, Ollama, `transformers serve`);
  stop strings server- or client-side, the turn form the server allows, function calling, streaming,
  bounded retries and timeouts, one-line errors.
- `TransformersBackend`: the model in-process (tiny Gemma3 in tests, local checkpoints); in-text protocol
  only. Both are imported lazily: using the OpenAI backend never loads torch or transformers, and importing the
  interface (`base`) loads neither openai nor torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vgt_agent.backends.base import BackendError, Generation, Message, ToolCall, VLMBackend

if TYPE_CHECKING:
    from vgt_agent.backends.openai_backend import OpenAIBackend
    from vgt_agent.backends.transformers_backend import TransformersBackend

__all__ = [
    "BackendError",
    "Generation",
    "Message",
    "OpenAIBackend",
    "ToolCall",
    "TransformersBackend",
    "VLMBackend",
    "make_backend",
]


def __getattr__(name: str) -> Any:
    if name == "OpenAIBackend":
        from vgt_agent.backends.openai_backend import OpenAIBackend

        return OpenAIBackend
    if name == "TransformersBackend":
        from vgt_agent.backends.transformers_backend import TransformersBackend

        return TransformersBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_backend(kind: str, model: str | None = None, *, timeout_s: float | None = None, **options: Any
                 ) -> VLMBackend:
    """Build a backend by name: "openai" (model/base_url/api_key from args or env; `timeout_s` per request,
    else $VGT_TIMEOUT, else the batch default) or "transformers" (model = a local directory or a cached hub id;
    no network, so no timeout)."""
    if kind == "openai":
        from vgt_agent.backends.openai_backend import OpenAIBackend

        return OpenAIBackend(model=model, timeout_s=timeout_s, **options)
    if kind == "transformers":
        if not model:
            raise BackendError("the transformers backend needs model= (a local directory or a cached hub id)")
        from vgt_agent.backends.transformers_backend import TransformersBackend

        return TransformersBackend.from_pretrained(model, **options)
    raise BackendError(f"unknown backend {kind!r}; expected 'openai' or 'transformers'")
