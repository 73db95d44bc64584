"""The reference objects a sample's groundings are scored against, carried in datasets as one JSON string.

References come from the dataset's gold objects (exact masks on the world; boxes become rectangle masks when
a dataset gives no mask) or, failing that, from the masks synthesis stored (SAM3's). A row holds them as
`{"height", "width", "objects": [{"name", "context", "rles": [...]}]}`: Arrow-friendly, and a hashable cache
key, so the G generations of one GRPO prompt (and every later epoch) decode the masks once.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from typing import Any

import numpy as np

from vgt_agent.geometry import box_to_mask, decode_rle, encode_rle
from vgt_agent.grounding_scores import ReferenceObject
from vgt_agent.reference_routing import phrase_tokens

_SIZE_WORDS = {"small", "medium", "large", "tiny", "big", "huge"}
_HOW_MANY = re.compile(r"how many\s+(.+?)(?:\s+(?:are there|can you see|do you see|are visible|in the image))?\s*\?",
                       re.IGNORECASE)


def _as_dict(gold: Any) -> dict[str, Any]:
    return asdict(gold) if is_dataclass(gold) else dict(gold)


def counted_name(names: Sequence[str], question: str = "") -> str:
    """One name for a set of counted instances: the words all their names share ('medium red star' + 'small
    red star' -> 'red star'), else the phrase the question counts ('How many shapes are not blue?'), else
    'object'."""
    token_lists = [[w for w in n.lower().split() if w not in _SIZE_WORDS] for n in names]
    shared = [w for w in token_lists[0] if all(w in t for t in token_lists[1:])] if token_lists else []
    if shared and phrase_tokens(" ".join(shared)):
        return " ".join(shared)
    match = _HOW_MANY.search(question)
    return match.group(1).strip() if match else "object"


def _rles_of(group: Sequence[dict[str, Any]], height: int, width: int) -> list[dict[str, Any]] | None:
    """Every instance's RLE (a box-only instance becomes its rectangle); None when an instance has neither."""
    rles = []
    for g in group:
        if g.get("rle"):
            rles.append(g["rle"])
        elif g.get("box") is not None:
            rles.append(encode_rle(box_to_mask(g["box"], height, width)))
        else:
            return None
    return rles


def specs_from_gold(gold_objects: Iterable[Any], height: int, width: int,
                    question: str = "") -> list[dict[str, Any]] | None:
    """Reference specs from gold objects: the counted instances form one object; others group by name.

    [] when there are no gold objects (e.g. a count of zero); None when some gold object has neither mask
    nor box, so the caller falls back to the masks synthesis stored.
    """
    golds = [_as_dict(g) for g in gold_objects]
    counted = [g for g in golds if g.get("role") == "counted"]
    groups: dict[str, list[dict[str, Any]]] = {}
    for g in golds:
        if g.get("role") != "counted":
            groups.setdefault(g["name"], []).append(g)
    specs = []
    if counted:
        rles = _rles_of(counted, height, width)
        if rles is None:
            return None
        specs.append({"name": counted_name([g["name"] for g in counted], question), "context": "counted",
                      "rles": rles})
    for name, group in groups.items():
        rles = _rles_of(group, height, width)
        if rles is None:
            return None
        specs.append({"name": name, "context": " ".join(dict.fromkeys(g.get("role") or "" for g in group)).strip(),
                      "rles": rles})
    return specs


def specs_from_masks(masks: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Reference specs from a stored trace's grounder masks (`TraceStore.trace(...)["masks"]`), by concept."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for m in masks:
        if m.get("selected", True) and m.get("rle"):
            groups.setdefault(m["concept"], []).append(m["rle"])
    return [{"name": concept, "context": "", "rles": rles} for concept, rles in groups.items()]


def references_json(specs: Sequence[Mapping[str, Any]], height: int, width: int) -> str:
    """The JSON column value for a row (compact, deterministic)."""
    payload = {"height": int(height), "width": int(width), "objects": list(specs)}
    return json.dumps(payload, separators=(",", ":"), sort_keys=True)


@functools.lru_cache(maxsize=128)
def decode_references(payload: str | None) -> tuple[ReferenceObject, ...]:
    """The ReferenceObjects of a JSON column value, decoded once per distinct value (LRU of 128 samples)."""
    if not payload:
        return ()
    data = json.loads(payload)
    height, width = int(data["height"]), int(data["width"])
    refs = []
    for obj in data.get("objects", []):
        rles = obj.get("rles") or []
        masks = np.stack([decode_rle(r) for r in rles]) if rles else np.zeros((0, height, width), dtype=bool)
        refs.append(ReferenceObject(obj["name"], masks, obj.get("context", "")))
    return tuple(refs)
