"""The trained model's coordinate convention in training: SFT targets shown in it, RL rewards read back from it.

Stored traces hold canonical 0..1000 (`geometry/conventions.py`). A model that writes another convention
(Qwen2.5-VL's resized-image pixels, by its family, or `--coords`) is taught its own: SFT rows rewrite every
`<obj>` coordinate of the model's turns and the tool replies into it, and GRPO rewards rewrite its
completions back to 0..1000 before scoring, per row's image size. Canonical models pass through untouched.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vgt_agent.format.coord_text import to_canonical_text
from vgt_agent.geometry.conventions import CANONICAL, Convention, convention_for, fitted


def model_convention(model: str, coords: str | None = None) -> Convention:
    """`coords` if given, else the convention of the model directory's family (`config.json` model_type);
    canonical when the config cannot be read (a hub id not in the cache yet: loading it will say why). A pixel
    convention's frame is the model's own image processor's (`conventions.fitted`)."""
    model_type = None
    config = Path(model) / "config.json"
    if config.is_file():
        model_type = json.loads(config.read_text()).get("model_type")
    else:
        try:
            from transformers import AutoConfig

            model_type = AutoConfig.from_pretrained(model).model_type
        except (OSError, ValueError):
            model_type = None
    convention = convention_for(model_type, coords)
    return convention if convention.extent is not None else fitted(convention, image_processor_config(model))


def image_processor_config(model: str) -> dict[str, Any] | None:
    """The model's image processor settings (None when they cannot be read): the frame of a pixel convention."""
    try:
        from transformers import AutoImageProcessor

        return AutoImageProcessor.from_pretrained(model).to_dict()
    except (OSError, ValueError):
        return None


def canonical_rewards(funcs: Sequence[Callable[..., Any]], convention: Convention) -> list[Callable[..., Any]]:
    """Each reward function reading completions rewritten to 0..1000 with the row's `width`/`height`; the
    functions keep their names (TRL logs `rewards/<name>`)."""
    if convention == CANONICAL:
        return list(funcs)
    from vgt_agent.training.rewards import completion_text

    def wrap(func: Callable[..., Any]) -> Callable[..., Any]:
        def reward(completions: Sequence[Any], width: Sequence[int], height: Sequence[int], **columns: Any) -> Any:
            texts = [to_canonical_text(completion_text(c), convention, w, h)
                     for c, w, h in zip(completions, width, height, strict=True)]
            return func(texts, width=width, height=height, **columns)

        name = getattr(func, "__name__", None) or getattr(getattr(func, "func", None), "__name__", "reward")
        reward.__name__ = reward.__qualname__ = name
        return reward

    return [wrap(f) for f in funcs]
