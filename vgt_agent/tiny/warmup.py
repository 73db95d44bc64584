"""vgt-tiny's pretraining: copying and comparing coordinates, the two skills a grounded thought is made of.

Why: the policy's thoughts copy points out of the tool's replies (`1 <obj> stars | [686, 724] </obj> 2 ...`)
and compare them (`x: 381 vs 550, so left`), and copying is what a random-init 1.2 M-parameter Gemma3 did not
learn from the agent traces: after 5,000 SFT steps on 12k traces the first digit after `[` was at chance on
held-out traces (teacher-forced), and the free-running policy copied 0 of 93 vsr coordinate pairs right.
Gemma3-4B-IT gets induction heads from pretraining; vgt-tiny gets them here. On a task where every target
token is a copy, they form abruptly after ~750-1,300 steps (loss ~0.55 -> 0.01); started from them, SFT on the
same traces predicted the held-out first digit 65% right after 250 steps (11% from random init), and the
free-running policy copied 100 of 100 vsr pairs right.

Two kinds of example, random words as filler (about the agent system prompt's length) and random points:
- copy: a tool reply `<obj> <word>s | [x, y]; ... </obj>` with 1-12 points (the world's counts go to 12);
  the target is the world-oracle's own count listing of it (`count_listing`);
- compare: a relation word, then two one-point replies; the target is the oracle's decision on that word's
  axis (`relation_text`: `y: 52 vs 343, so above.`).
Only targets are trained. Stage 1 copies lists of at most `short_points` (5) until copying forms (mixing in long lists
and comparisons from the start, copying had not formed after 2,000 steps); stage 2 mixes comparisons with
lists of 1-12 points. The loop stops once fixed held-out batches of each kind are `target` right (the first
digit after `[` of each copied point; the word after `so`), checked every `check_every` steps, or at
`max_steps`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from vgt_agent.backends.world_oracle import count_listing, relation_text
from vgt_agent.format import render_tool_result

if TYPE_CHECKING:
    import torch

Report = Callable[[int, int, str], None]  # (step, max_steps, info), as StepLogger reports


@dataclass(frozen=True)
class WarmupConfig:
    max_steps: int = 2300
    batch: int = 16
    lr: float = 2e-3
    warmup_steps: int = 60
    weight_decay: float = 0.01
    check_every: int = 100
    target: float = 0.95  # held-out copy and comparison accuracy that ends the warm-up
    held_out: int = 64  # examples of each kind
    max_points: int = 12
    short_points: int = 5  # stage 1: copy lists of at most this many points until copying forms
    compare_share: float = 0.5  # stage 2: this share of comparisons, copies of 1..max_points
    filler_words: tuple[int, int] = (60, 120)  # about the length of the agent's system prompt
    seed: int = 0


def _points(rng: random.Random, n: int) -> list[tuple[int, int]]:
    return [(rng.randint(0, 1000), rng.randint(0, 1000)) for _ in range(n)]


def _filler(rng: random.Random, words: Sequence[str], cfg: WarmupConfig) -> str:
    return " ".join(rng.choice(words) for _ in range(rng.randint(*cfg.filler_words)))


def copy_example(rng: random.Random, words: Sequence[str], cfg: WarmupConfig) -> tuple[str, str]:
    """(context, target): filler words and a tool reply listing random points; the target lists them."""
    phrase = rng.choice(words) + "s"
    points = _points(rng, rng.randint(1, cfg.max_points))
    reply = render_tool_result(phrase, "point", points)
    return f"{_filler(rng, words, cfg)} {reply} ", count_listing(phrase, "point", points)


def compare_example(rng: random.Random, words: Sequence[str], cfg: WarmupConfig) -> tuple[str, str]:
    """(context, target): filler, a relation word and two one-point replies; the target compares the points
    on that word's axis as the oracle does."""
    word = rng.choice(("left", "right", "above", "below"))
    axis = 0 if word in ("left", "right") else 1
    a, b = _points(rng, 2)
    replies = " ".join(render_tool_result(rng.choice(words), "point", [p]) for p in (a, b))
    return f"{_filler(rng, words, cfg)} {word} {replies} ", relation_text(axis, a[axis], b[axis], "whole")[0] + "."


def short_copy_example(rng: random.Random, words: Sequence[str], cfg: WarmupConfig) -> tuple[str, str]:
    """A copy example of at most `short_points` points (stage 1)."""
    return copy_example(rng, words, replace(cfg, max_points=cfg.short_points))


def example(rng: random.Random, words: Sequence[str], cfg: WarmupConfig) -> tuple[str, str]:
    """A stage-2 example: a comparison with probability `compare_share`, else a copy of 1..max_points."""
    return (compare_example if rng.random() < cfg.compare_share else copy_example)(rng, words, cfg)


def encode(tokenizer: Any, pairs: Sequence[tuple[str, str]]) -> dict[str, torch.Tensor]:
    """Right-padded ids, mask and labels (target tokens only), each row opening with <bos>."""
    import torch

    from vgt_agent.tiny.examples import IGNORE

    rows = []
    for context, target in pairs:
        head = [tokenizer.bos_token_id] + tokenizer(context, add_special_tokens=False)["input_ids"]
        rows.append((head, tokenizer(target, add_special_tokens=False)["input_ids"]))
    width = max(len(h) + len(t) for h, t in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full_like(ids, IGNORE)
    mask = torch.zeros_like(ids)
    for i, (head, tail) in enumerate(rows):
        n = len(head) + len(tail)
        ids[i, :n] = torch.tensor(head + tail)
        labels[i, len(head):n] = torch.tensor(tail)
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def next_token_accuracy(model: Any, batch: dict[str, torch.Tensor], after: int) -> float:
    """Share of target positions right after the token `after` that are predicted (after `[`: a copied point's
    first digit; after `so`: the comparison's word)."""
    import torch

    from vgt_agent.tiny.examples import IGNORE

    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    pred, labels = logits[:, :-1].argmax(-1), batch["labels"][:, 1:]
    at = (labels != IGNORE) & (batch["input_ids"][:, :-1] == after)
    return float(((pred == labels) & at).sum()) / max(int(at.sum()), 1)


def warm_up(model: Any, tokenizer: Any, words: Sequence[str], cfg: WarmupConfig = WarmupConfig(),
            report: Report | None = None) -> dict[str, Any]:
    """Train `model` in place on copying and comparing; returns steps, last loss, both held-out accuracies
    and seconds."""
    import torch

    rng = random.Random(cfg.seed)
    checks = {name: (encode(tokenizer, [make(rng, words, cfg) for _ in range(cfg.held_out)]),
                     tokenizer.convert_tokens_to_ids(after))
              for name, make, after in (("short copy", short_copy_example, "["), ("copy", copy_example, "["),
                                        ("compare", compare_example, "▁so"))}
    accuracy = dict.fromkeys(checks, 0.0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.98), weight_decay=cfg.weight_decay)
    started, step, loss, stage_2_from = time.perf_counter(), 0, float("nan"), None
    model.train()
    while step < cfg.max_steps and min(accuracy.values()) < cfg.target:
        step += 1
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * min(1.0, step / cfg.warmup_steps)
        make = short_copy_example if stage_2_from is None else example
        out = model(**encode(tokenizer, [make(rng, words, cfg) for _ in range(cfg.batch)]))
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        loss = out.loss.item()
        if step % cfg.check_every == 0:
            model.eval()
            accuracy = {name: next_token_accuracy(model, batch, after) for name, (batch, after) in checks.items()}
            model.train()
            if stage_2_from is None and accuracy["short copy"] >= cfg.target:
                stage_2_from = step
        if report:
            report(step, cfg.max_steps, f"loss {loss:.3f} · " + " · ".join(f"{k} {v:.0%}" for k, v in accuracy.items()))
    model.eval()
    return {"steps": step, "stage_2_from": stage_2_from, "loss": loss, "short_copy_accuracy": accuracy["short copy"],
            "copy_accuracy": accuracy["copy"], "compare_accuracy": accuracy["compare"],
            "seconds": time.perf_counter() - started}
