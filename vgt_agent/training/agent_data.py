"""The `agent` SFT set: each synthesis trace trained exactly as the ask loop shows it to the policy.

Why not a chat row: the policy writes only its own turns (the grounder writes the `<obj>` replies), and each
turn must be trained in the exact view the backend gives it, in the turn form the policy will be served in
(`backends/turns.py`: `turns` by default). `agent_examples.build_example` makes the sequence that reproduces
every turn's view (model turns labelled; prompt, tool replies and template tokens -100). This module
feeds it to TRL's SFTTrainer: a dataset of trace rows (question, options, image path, the turns, which replies
keep their trailing "\\n") and a collator that builds and pads the sequences per batch, the way TRL's own VLM
collator processes images per batch instead of storing pixels (a Gemma3 image is ~10 MB of floats). Each
row's sequence is the same every epoch (its newlines are drawn once), so the collator keeps the built ones up
to a memory budget: vgt-tiny's (one 32 px image) all fit, so after the first epoch, or after the lengths that
length-grouped batching asks for, a batch costs a padding copy instead of ~10 ms a row of templating.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch

from vgt_agent.backends.turns import DEFAULT_TURN_FORM, TurnForm, check_turn_form
from vgt_agent.format.coord_text import from_canonical_text
from vgt_agent.geometry.conventions import CANONICAL, Convention
from vgt_agent.images import load_image
from vgt_agent.prompts import AGENT_TEXT_TOOL
from vgt_agent.store.export import trace_columns
from vgt_agent.training.agent_examples import Example, build_example, collate, sample_newlines
from vgt_agent.training.data import DataError

TURN_ROLES = ("assistant", "tool")
CACHE_BYTES = 512 * 2**20  # built sequences kept per collator (vgt-tiny: ~15 kB each)


def trace_turns(row: dict[str, Any]) -> list[dict[str, str]]:
    """A stored agent trace's model turns and tool replies in order; a trace stored without its turns is one
    model turn (its completion)."""
    turns = [{"role": m["role"], "content": m["content"]} for m in row.get("messages") or []
             if m.get("role") in TURN_ROLES]
    return turns or [{"role": "assistant", "content": row["completion"]}]


def agent_dataset(rows: list[dict[str, Any]], seed: int = 0, convention: Convention = CANONICAL):
    """A `datasets.Dataset` of trace rows for `AgentCollator`, with the ids `split_by_image` and the run record
    use. Which replies keep their "\\n" is drawn once per trace from (seed, trace id): the same on resume.
    Model turns and tool replies show their coordinates in the trained model's `convention`."""
    import datasets  # heavy: only when training

    missing = [r["image_path"] for r in rows if not Path(r["image_path"]).is_file()]
    if missing:
        raise DataError(f"{len(missing)} traced image(s) are no longer on disk, e.g. {missing[0]}")
    turns = [[{**t, "content": from_canonical_text(t["content"], convention, r["width"], r["height"])}
              for t in trace_turns(r)] for r in rows]
    text = datasets.Value("string")
    features = datasets.Features({
        "question": text, "choices": datasets.Sequence(text), "image_path": text,
        "chunks": [{"role": text, "content": text}], "newlines": datasets.Sequence(datasets.Value("bool")),
        "trace_id": text, "sample_id": text, "image_hash": text, "variant": text, "gold_answer": text,
        "answer_type": text,
    })
    return datasets.Dataset.from_dict({
        "question": [r["question"] for r in rows],
        "choices": [list(r.get("choices") or ()) for r in rows],
        "image_path": [r["image_path"] for r in rows],
        "chunks": turns,
        "newlines": [sample_newlines(t, random.Random(f"{seed}/{r['id']}")) for r, t in zip(rows, turns, strict=True)],
        **trace_columns(rows),
    }, features=features)


class AgentCollator:
    """SFTTrainer's `data_collator` for agent rows: each row's training sequence, right-padded into a batch
    (`input_ids`, `labels`, `attention_mask`, `pixel_values`, `token_type_ids`). Built sequences are kept
    (by trace and newlines) while they take less than `cache_bytes`; `turn_form` is the form they are built in,
    `system` the system prompt they start with."""

    def __init__(self, processor: Any, cache_bytes: int = CACHE_BYTES, turn_form: TurnForm = DEFAULT_TURN_FORM,
                 system: str = AGENT_TEXT_TOOL) -> None:
        self.processor = processor
        self.system = system  # the agent's system prompt, in the trained model's coordinate convention
        self.turn_form = check_turn_form(turn_form)
        tok = processor.tokenizer
        self.pad_id: int = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.cache_bytes = cache_bytes
        self._cache: dict[tuple[str, tuple[bool, ...]], Example] = {}
        self._cached_bytes = 0

    def example(self, row: dict[str, Any]) -> Example:
        key = (row["trace_id"], tuple(row["newlines"]))
        if key in self._cache:
            return self._cache[key]
        image = load_image(row["image_path"])  # upright RGB, as the ask loop saw it
        example = build_example(self.processor, row["question"], row["choices"], row["chunks"], image,
                                row["newlines"], form=self.turn_form, system=self.system)
        size = sum(t.nbytes for t in example.images.values()) + 3 * 8 * len(example.input_ids)
        if self._cached_bytes + size <= self.cache_bytes:
            self._cache[key] = example
            self._cached_bytes += size
        return example

    def length(self, row: dict[str, Any]) -> int:
        """Tokens in the row's sequence: what length-grouped batching sorts by."""
        return len(self.example(row).input_ids)

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return collate([self.example(r) for r in rows], self.pad_id)
