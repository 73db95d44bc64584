"""Agent SFT with the batch's shared prompt prefix computed once: the same loss and gradients, less compute.

Why: every agent training sequence opens with the same tokens (bos, the ask loop's system prompt, the user
turn's start) up to the image, ~180 tokens: half of a vgt-tiny sequence. Under causal attention those
positions never see what follows, so their keys and values are the same in every row of a batch. The prefix
runs once (batch 1), its cache is broadcast to the rows, and only the rest runs per row. The prefix is prompt
(no labels), so the loss over the rest is the loss of the whole.

`SharedPrefixSFTTrainer` is TRL's SFTTrainer with that one change in `compute_loss`, which then takes the loss
the way transformers' `Trainer.compute_loss` does (the model's own cross-entropy, normalised as the Trainer
expects for gradient accumulation): exactly the plain torch loop vgt-tiny first trained with. TRL's own
loss path is skipped because its fused LM head also computes entropy and top-1 metrics, and without Triton
(on the CPU) it scores every position in tiles with a dozen passes over (tokens x vocabulary): ~0.2 s of a
vgt-tiny step. So agent SFT logs loss, grad norm and learning rate, not TRL's entropy/token accuracy.
Measured on 16-row batches of world-oracle traces, 1 torch thread (`benchmarks/sft_step_speed.py`): 0.68 s a
step, as fast as vgt-tiny's first hand-written loop (0.67 s), against 1.73 s for TRL's stock SFTTrainer.
The prefix is read from each batch, so any collator's rows work (nothing shared: the full forward). It ends
before the image block (`image_start_id`: Gemma3's <start_of_image>, Idefics3's <fake_token_around_image>). A
batch whose positions are computed from the whole sequence (Qwen-VL's 3-D rotary positions, signalled by
`mm_token_type_ids`) runs the full forward: a cached prefix would shift them.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import Trainer
from trl import SFTTrainer

from vgt_agent.training.agent_examples import IGNORE

IMAGE_START = "<start_of_image>"
IMAGE_OPENERS = ("boi_token", "fake_image_token", "image_token")  # processor attributes, first found wins
WHOLE_SEQUENCE_POSITIONS = ("mm_token_type_ids",)  # batch keys of models whose positions a prefix cache would shift


def image_start_id(processor: Any) -> int | None:
    """The token an image block opens with, from the processor's own attributes (None: unknown, no sharing)."""
    tokenizer = getattr(processor, "tokenizer", processor)
    for attr in IMAGE_OPENERS:
        token = getattr(processor, attr, None)
        if isinstance(token, str) and token in tokenizer.get_vocab():
            return tokenizer.convert_tokens_to_ids(token)
    return None


def shared_prefix_len(input_ids: torch.Tensor, before: int, labels: torch.Tensor | None = None) -> int:
    """How many leading tokens every row shares, cut before the first `before` token (the image: its pixels
    differ per row) and so that no label falls in the prefix or right after it (what the prefix's last
    position predicts is not computed)."""
    same = (input_ids == input_ids[:1]).all(dim=0)
    n = int(same.long().cumprod(0).sum())
    hits = (input_ids[0, :n] == before).nonzero()
    if len(hits):
        n = int(hits[0])
    if labels is not None:
        labelled = (labels[:, : n + 1] != IGNORE).any(dim=0).nonzero()
        if len(labelled):
            n = max(0, int(labelled[0]) - 1)
    return n


def backbone(model: Any) -> Any:
    """The model without its LM head (Gemma3's `Gemma3Model`), under PEFT too: what the prefix runs through."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inner.base_model


def with_shared_prefix(model: Any, batch: dict[str, torch.Tensor], n: int) -> dict[str, Any]:
    """The batch's inputs after its first `n` tokens, with their keys/values (row 0's, run once) as `cache`;
    `attention_mask` stays whole. Positions continue from the cache's length."""
    rows = batch["input_ids"].shape[0]
    cache = backbone(model)(input_ids=batch["input_ids"][:1, :n], use_cache=True).cache
    for layer in cache.layers:
        layer.keys = layer.keys.expand(rows, -1, -1, -1)
        layer.values = layer.values.expand(rows, -1, -1, -1)
    out: dict[str, Any] = {k: v[:, n:] if k in ("input_ids", "labels", "token_type_ids") else v
                           for k, v in batch.items()}
    out["cache"] = cache
    return out


class SharedPrefixSFTTrainer(SFTTrainer):
    """SFTTrainer whose loss runs each batch's shared prefix once (see the module docstring)."""

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        ids = inputs.get("input_ids")
        before = image_start_id(self.processing_class)
        if (ids is not None and ids.shape[0] > 1 and "labels" in inputs and before is not None
                and not any(key in inputs for key in WHOLE_SEQUENCE_POSITIONS)):
            n = shared_prefix_len(ids, before, inputs["labels"])
            if n > 1:
                inputs = with_shared_prefix(model, inputs, n)
        return Trainer.compute_loss(self, model, inputs, return_outputs=return_outputs,
                                    num_items_in_batch=num_items_in_batch)
