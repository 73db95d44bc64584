"""Supervised training of vgt-tiny on the teacher's agent traces: a plain torch loop, nanoGPT style.

Why a bare loop beside `vgt train sft --variant agent` (the same sequences from examples.py, through TRL's
SFTTrainer): on 2 shared CPU cores, length-bucketed batches and the system prompt computed once per batch
(`batch_loss`) waste nothing. Same model classes and processor as everything else in vgt.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from vgt_agent.tiny.examples import Example, collate


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1500
    batch_size: int = 16
    lr: float = 2e-3
    min_lr: float = 1e-4
    warmup: int = 60
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    time_budget_s: float | None = None  # stop early (with the schedule compressed) past this wall time


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Linear warmup, then cosine decay to min_lr."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, total - cfg.warmup))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def batches(examples: Sequence[Example], batch_size: int, rng: random.Random) -> list[list[Example]]:
    """Length-bucketed batches in random order: similar lengths together, so little padding is computed."""
    order = sorted(range(len(examples)), key=lambda i: (len(examples[i].input_ids), rng.random()))
    groups = [[examples[i] for i in order[j : j + batch_size]] for j in range(0, len(order), batch_size)]
    rng.shuffle(groups)
    return groups


def batch_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor], prefix_len: int = 0) -> torch.Tensor:
    """Teacher-forced loss of a batch whose rows share their first `prefix_len` tokens (no labels there).

    The shared prefix runs once (batch 1) and its keys/values are broadcast to every row: the same loss
    and gradients as the full forward (causal attention: the prefix never sees what follows), at about
    half the cost, since the system prompt is half of a vgt-tiny training sequence.
    """
    if prefix_len <= 0:
        return model(**batch).loss
    rows = batch["input_ids"].shape[0]
    cache = model(input_ids=batch["input_ids"][:1, :prefix_len], use_cache=True).past_key_values
    for layer in cache.layers:
        layer.keys = layer.keys.expand(rows, -1, -1, -1)
        layer.values = layer.values.expand(rows, -1, -1, -1)
    return model(input_ids=batch["input_ids"][:, prefix_len:], attention_mask=batch["attention_mask"],
                 pixel_values=batch["pixel_values"], token_type_ids=batch["token_type_ids"][:, prefix_len:],
                 labels=batch["labels"][:, prefix_len:], cache=cache, use_cache=True).loss


def train(
    model: torch.nn.Module,
    examples: Sequence[Example],
    cfg: TrainConfig,
    *,
    pad_id: int,
    prefix_len: int = 0,
    on_step: Callable[[int, int, float, float], None] | None = None,
) -> dict[str, float]:
    """Train in place; returns steps done, final loss (mean of the last 20 steps) and seconds.

    `prefix_len`: tokens every example shares (`shared_prefix_len`), computed once per batch."""
    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embed" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embed" not in n)]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98))
    model.train()
    started, step, losses, queue = time.perf_counter(), 0, [], []
    total = cfg.steps
    while step < total:
        if not queue:
            queue = batches(examples, cfg.batch_size, rng)
        batch = collate(queue.pop(), pad_id)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, total, cfg)
        loss = batch_loss(model, batch, prefix_len)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        step += 1
        elapsed = time.perf_counter() - started
        if cfg.time_budget_s and step == 50:  # measured speed: shrink the schedule to fit the budget
            total = min(total, max(100, int(cfg.time_budget_s / (elapsed / step))))
        if on_step is not None:
            on_step(step, total, losses[-1], elapsed)
    model.eval()
    tail = losses[-20:]
    return {"steps": step, "loss": sum(tail) / max(1, len(tail)), "seconds": time.perf_counter() - started}
