"""A backend running the VLM in-process with transformers: any `AutoModelForImageTextToText` family with a chat
template (Gemma3, Qwen2.5-VL, Qwen3-VL, SmolVLM/Idefics3 are tested on tiny checkpoints).

Used where no vLLM server exists: CPU tests with the tiny Gemma3, local debugging, and small evaluations.
It has no function calling (`supports_function_calling = False`): Gemma3 has no native tool-call format,
and inventing one here would make this backend speak a protocol vLLM never sees. The agent uses the
in-text protocol instead (`<ground> phrase </ground>` as a stop string), which both backends share.
Its turn form (`backends/turns.py`) is the one the model was trained on: what its directory's
training_info.json declares (the shipped vgt-tiny: `continuation`), else the portable `turns`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor, PreTrainedModel, TextStreamer

from vgt_agent.backends.base import (
    BackendError,
    FinishReason,
    Generation,
    Message,
    StreamCallback,
    check_images,
    continues_assistant,
    trim_at_stop,
)
from vgt_agent.backends.turns import DEFAULT_TURN_FORM, TurnForm, check_turn_form, read_turn_form
from vgt_agent.devices import Placement, resolve_placement


class _CallbackStreamer(TextStreamer):
    """TextStreamer that hands each finalised piece of text to a callback instead of printing it."""

    def __init__(self, tokenizer: Any, callback: StreamCallback) -> None:
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self._callback = callback

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        if text:
            self._callback(text)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def eos_token_ids(model: Any, processor: Any) -> list[int]:
    """Every id that ends a rollout: the tokenizer's EOS and the generation config's (Gemma3: <end_of_turn>,
    Qwen: <|im_end|>)."""
    ids = model.generation_config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    tokenizer = getattr(processor, "tokenizer", processor)
    return sorted({*ids, *([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])})


def load_vlm(name_or_path: str | Path, *, dtype: torch.dtype = torch.float32,
             device: str | None = None) -> tuple[PreTrainedModel, Any]:
    """(model, processor) from a local directory or the HF cache (the Hub only when online and not a path).

    Shared by the backend and by training, so both load a checkpoint the same way; BackendError in one line.
    A `device` other than the CPU gets the weights loaded straight onto it (no float32 copy in host memory).
    """
    placed = {"device_map": device} if device and device != "cpu" else {}
    local_only = Path(name_or_path).exists() or _offline()
    try:
        processor = AutoProcessor.from_pretrained(str(name_or_path), local_files_only=local_only)
        model = AutoModelForImageTextToText.from_pretrained(str(name_or_path), local_files_only=local_only, dtype=dtype,
                                                            **placed)
    except (OSError, ValueError) as exc:
        where = "a local directory or the Hugging Face cache" if local_only else "the Hugging Face Hub"
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackendError(f"cannot load model {str(name_or_path)!r} from {where}: {first_line}") from exc
    return model, processor


def context_tokens(model: Any, tokenizer: Any) -> int:
    """The most tokens (prompt and completion) the model reads: its position embeddings, or the tokenizer's
    model_max_length when that is smaller and set."""
    limits = [getattr(model.config.get_text_config(), "max_position_embeddings", None),
              getattr(tokenizer, "model_max_length", None)]
    known = [int(n) for n in limits if isinstance(n, int) and 0 < n < 10**7]  # unset: a 1e30 sentinel
    return min(known) if known else 10**7


def template_messages(messages: Sequence[Message]) -> list[Message]:
    """Copy messages keeping only what the chat template reads, so no pixels or extra keys leak in; text content
    becomes a list of parts, the one form every VLM family's template reads (SmolVLM's renders a plain string
    as nothing; Gemma3's and Qwen's render both alike)."""
    out: list[Message] = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            content = [{"type": "image"} if p.get("type") == "image" else dict(p) for p in content]
        else:
            content = [{"type": "text", "text": content if content is not None else ""}]
        out.append({"role": m["role"], "content": content})
    return out


class TransformersBackend:
    """`VLMBackend` over `AutoModelForImageTextToText` + `AutoProcessor`, one generation at a time."""

    name = "transformers"
    supports_function_calling = False

    def __init__(self, model: PreTrainedModel, processor: Any, *, model_name: str | None = None,
                 turn_form: str = DEFAULT_TURN_FORM) -> None:
        self.turn_form: TurnForm = check_turn_form(turn_form)
        self._model = model.eval()
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.model = model_name or getattr(model, "name_or_path", "") or type(model).__name__
        self._lock = threading.Lock()  # one generate at a time: the model is shared, and CPU cores are few
        self._eos_ids = set(eos_token_ids(model, processor))
        self.context_tokens = context_tokens(model, self.tokenizer)
        self.placement = Placement(str(model.device), str(model.dtype).removeprefix("torch."))

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | Path, *, device: str | None = None, dtype: str | torch.dtype | None = None,
        model_name: str | None = None, turn_form: str | None = None,
    ) -> TransformersBackend:
        """Load from a local directory or the HF cache; never downloads when the path exists or offline.

        `device`/`dtype` as `--device`/`--dtype` take them (None: env VGT_DEVICE/VGT_DTYPE, else auto);
        `model_name` is what results report (default: the path or id), e.g. "vgt-tiny" for shipped weights;
        `turn_form` overrides the form the model directory declares.
        """
        dtype_name = dtype if dtype is None or isinstance(dtype, str) else str(dtype).removeprefix("torch.")
        placement = resolve_placement(device, dtype_name)
        model, processor = load_vlm(name_or_path, dtype=placement.torch_dtype, device=placement.device)
        return cls(model.to(placement.device), processor, model_name=model_name or str(name_or_path),
                   turn_form=turn_form or read_turn_form(name_or_path))

    def server_modes(self) -> dict[str, str]:
        """Stops applied by the generator in-process; the model's own turn form."""
        return {"stop": "in-process", "turns": self.turn_form}

    def generate(
        self,
        messages: Sequence[Message],
        images: Sequence[Image.Image] = (),
        *,
        max_tokens: int = 512,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
        tools: list[dict] | None = None,
        stream: StreamCallback | None = None,
    ) -> Generation:
        """Greedy when temperature is 0; stops at an end token (EOS, the turn's end), a stop string, or max_tokens."""
        if tools:
            raise BackendError(
                "the transformers backend has no function calling; use the in-text <ground> protocol"
            )
        check_images(messages, images)
        started = time.perf_counter()
        stop = [s for s in stop if s]
        continuing = continues_assistant(messages)
        inputs = self.processor.apply_chat_template(
            template_messages(messages),
            add_generation_prompt=not continuing,
            continue_final_message=continuing,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            processor_kwargs={"images": [img.convert("RGB") for img in images]} if images else None,
        )
        inputs = inputs.to(self._model.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self._model.dtype)
        options: dict[str, Any] = {"max_new_tokens": max_tokens, "do_sample": temperature > 0}
        if temperature > 0:
            options["temperature"] = temperature
        else:  # released Gemma3 generation configs enable sampling (top_k=64, top_p=0.95): switch it all off
            options.update(top_k=None, top_p=None, temperature=None)
        if stop:
            options.update(stop_strings=stop, tokenizer=self.tokenizer)
        if stream is not None:
            options["streamer"] = _CallbackStreamer(self.tokenizer, stream)
        prompt_len = inputs["input_ids"].shape[1]
        if prompt_len >= self.context_tokens:  # refused before a forward pass: memory grows with the prompt
            raise BackendError(f"the prompt is {prompt_len} tokens; model {self.model} reads at most "
                               f"{self.context_tokens} (its context)")
        max_tokens = options["max_new_tokens"] = min(max_tokens, self.context_tokens - prompt_len)
        with self._lock, torch.inference_mode():
            output = self._model.generate(**inputs, **options)
        new_ids = output[0, prompt_len:].tolist()
        text, hit = trim_at_stop(self.tokenizer.decode(new_ids, skip_special_tokens=True), stop)
        ended = bool(new_ids) and new_ids[-1] in self._eos_ids
        finish: FinishReason = (
            "length" if hit is None and not ended and len(new_ids) >= max_tokens else "stop"
        )
        return Generation(
            text=text,
            finish_reason=finish,
            backend=self.name,
            model=self.model,
            stop_sequence=hit,
            prompt_tokens=prompt_len,
            completion_tokens=len(new_ids),
            latency_s=time.perf_counter() - started,
        )
