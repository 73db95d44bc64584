"""vgt-tiny's pretraining: copying points, then drills of every decision the world's questions need.

Why: the policy's thoughts copy points out of the tool's replies (`1 <obj> stars | [686, 724] </obj> 2 ...`)
and decide over them (`x: 381 vs 550, so left`, `3 to 8 is 5`, `[53, 897] vs [525, 680]: other`). A
randomly initialised 1.2 M-parameter Gemma3 does not learn to copy from agent traces alone; Gemma3-4B-IT
has induction heads from pretraining, vgt-tiny gets them in stage 1, where every target token is a copy and
they form abruptly. Stage 2 then drills each decision as often as it takes, where the teacher's traces hold
each family's decision only a few thousand times (docs/vgt-tiny.md has the measurements).

- stage 1, copy: a few random filler words, then a tool reply `<obj> <word>s | [x, y]; ... </obj>` with
  1-`short_points` random points; the target is the world-oracle's own count listing of it (`count_listing`).
  Until the first digit after `[` is `copy_target` right.
- stage 2, drills (`tiny/drills.py`): whole agent traces of every world question family over random tool
  replies, the oracle's own turns, built as the agent SFT set builds a trace (`training/agent_examples.py`), with a
  blank picture, each family drawn as often as its held-out drills are still wrong (`family_weights`). Until
  every family's held-out drills are `drill_target` right token for token (teacher-forced: then greedy
  decoding writes the same trace), or `max_steps`, or the `minutes` budget.
Only the model's tokens are trained (a batch's rows in length-sorted chunks: `by_length`); held-out checks run
every `check_every` steps.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vgt_agent.world.palette import BACKGROUNDS

if TYPE_CHECKING:
    import torch

Report = Callable[[int, int, str], None]  # (step, max_steps, info), as StepLogger reports


@dataclass(frozen=True)
class WarmupConfig:
    max_steps: int = 8000
    minutes: float | None = None  # wall-time budget: the warm-up stops at the first step past it
    batch: int = 16
    lr: float = 2e-3
    warmup_steps: int = 60
    decay_share: float = 0.2  # the last share of the steps (or of the minutes) anneals lr to min_lr_ratio x lr
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    check_every: int = 100
    copy_target: float = 0.95  # held-out first-digit accuracy that ends stage 1
    drill_target: float = 0.95  # held-out drills right to the token, in every family, that end stage 2
    weight_floor: float = 0.2  # a family's share of drills is 1 - its held-out exact share, at least this
    micro_batches: int = 4  # a batch's rows, sorted by length, run in this many chunks (less padding, same loss)
    held_out: int = 64  # stage-1 copy examples; drills of each family: held_out // 4
    short_points: int = 5  # stage 1: copy lists of at most this many points until copying forms
    filler_words: tuple[int, int] = (10, 30)  # words before the reply (60-120: copying formed 750 steps later)
    seed: int = 0


def _points(rng: random.Random, n: int) -> list[tuple[int, int]]:
    return [(rng.randint(0, 1000), rng.randint(0, 1000)) for _ in range(n)]


def _filler(rng: random.Random, words: Sequence[str], cfg: WarmupConfig) -> str:
    return " ".join(rng.choice(words) for _ in range(rng.randint(*cfg.filler_words)))


def copy_example(rng: random.Random, words: Sequence[str], cfg: WarmupConfig) -> tuple[str, str]:
    """(context, target): filler words and a tool reply listing 1-`short_points` random points; the target
    lists them as the oracle does."""
    from vgt_agent.backends.world_oracle import count_listing  # these load with a warm-up, not with its config
    from vgt_agent.format import render_tool_result

    phrase = rng.choice(words) + "s"
    points = _points(rng, rng.randint(1, cfg.short_points))
    reply = render_tool_result(phrase, "point", points)
    return f"{_filler(rng, words, cfg)} {reply} ", count_listing(phrase, "point", points)


def encode(tokenizer: Any, pairs: Sequence[tuple[str, str]]) -> dict[str, torch.Tensor]:
    """Right-padded ids, mask and labels (target tokens only), each row opening with <bos>."""
    import torch

    from vgt_agent.training.agent_examples import IGNORE

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


def drill_batch(processor: Any, rng: random.Random, n: int, family: str | None = None,
                weights: dict[str, float] | None = None) -> dict[str, torch.Tensor]:
    """n drills (of one family, or each of a family drawn by `weights`, default even) as a padded agent SFT
    batch."""
    from PIL import Image

    from vgt_agent.tiny.drills import FAMILIES, drill, drill_example
    from vgt_agent.training.agent_examples import collate

    names = [family] * n if family else rng.choices(tuple(FAMILIES), [(weights or {}).get(f, 1.0) for f in FAMILIES],
                                                     k=n)
    blank = Image.new("RGB", (64, 64), BACKGROUNDS[0])
    examples = [drill_example(processor, drill(rng, name), blank, rng) for name in names]
    return collate(examples, processor.tokenizer.pad_token_id)


def family_weights(exact: dict[str, float], floor: float) -> dict[str, float]:
    """Drill more of what is not yet learnt: each family's weight is the share of its held-out drills still
    wrong, at least `floor` (a learnt family keeps being drilled, so it is not forgotten)."""
    return {f: max(floor, 1.0 - e) for f, e in exact.items()}


def forward(model: Any, batch: dict[str, torch.Tensor], image_start: int) -> Any:
    """The model on a batch, its rows' shared prompt prefix (a drill batch's system prompt: 2/3 of each row)
    run once, as agent SFT does (`training/shared_prefix.py`): the same loss, about half the compute."""
    from vgt_agent.training.shared_prefix import shared_prefix_len, with_shared_prefix

    n = shared_prefix_len(batch["input_ids"], image_start, batch["labels"])
    return model(**(with_shared_prefix(model, batch, n) if n > 1 else batch))


def by_length(batch: dict[str, torch.Tensor], chunks: int) -> list[dict[str, torch.Tensor]]:
    """The batch's rows sorted by length in `chunks` groups, each cut to its own longest row: a drill batch mixes
    a 12-point count (~650 tokens) with a yes/no (~260), so one padded batch computes about twice the tokens it
    has."""
    import torch

    width = batch["input_ids"].shape[1]
    lengths = batch["attention_mask"].sum(1)
    groups = []
    for rows in torch.argsort(lengths, stable=True).chunk(chunks):
        cut = int(lengths[rows].max())
        groups.append({k: v[rows][:, :cut] if v.dim() == 2 and v.shape[1] == width else v[rows]
                       for k, v in batch.items()})
    return groups


def backward(model: Any, batch: dict[str, torch.Tensor], image_start: int, chunks: int) -> float:
    """Gradients of the batch's mean token loss, accumulated over its rows in length-sorted chunks (each chunk's
    mean loss weighted by its share of the trained tokens: the same gradient as one pass); returns the loss."""
    from vgt_agent.training.agent_examples import IGNORE

    groups = by_length(batch, chunks) if chunks > 1 else [batch]
    trained = [int((g["labels"][:, 1:] != IGNORE).sum()) for g in groups]
    total, loss = max(1, sum(trained)), 0.0
    for group, n in zip(groups, trained, strict=True):
        if n:
            part = forward(model, group, image_start).loss * (n / total)
            part.backward()
            loss += part.item()
    return loss


def _predicted(model: Any, batch: dict[str, torch.Tensor], image_start: int
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Teacher-forced: (prediction, label, is-trained) per position (of the rows after a shared prefix)."""
    import torch

    from vgt_agent.training.agent_examples import IGNORE

    with torch.no_grad():
        out = forward(model, batch, image_start)
    labels = batch["labels"][:, -out.logits.shape[1]:][:, 1:]
    return out.logits[:, :-1].argmax(-1), labels, labels != IGNORE


def next_token_accuracy(model: Any, batch: dict[str, torch.Tensor], after: int, image_start: int) -> float:
    """Share of trained positions right after the token `after` that are predicted (after `[`: a copied
    point's first digit)."""
    pred, labels, trained = _predicted(model, batch, image_start)
    at = trained & (batch["input_ids"][:, -pred.shape[1] - 1:-1] == after)
    return float(((pred == labels) & at).sum()) / max(int(at.sum()), 1)


def exact_share(model: Any, batch: dict[str, torch.Tensor], image_start: int) -> float:
    """Share of rows whose every trained token is predicted (greedy decoding would write the whole trace)."""
    pred, labels, trained = _predicted(model, batch, image_start)
    return float(((pred == labels) | ~trained).all(dim=1).float().mean())


def lr_factor(cfg: WarmupConfig, step: int, elapsed: float) -> float:
    """Warm up, hold, then anneal (warmup-stable-decay): the run's length is not known ahead when the wall-time
    budget ends it, and the stable phase lets copying form at full lr. Progress is the further along of steps
    and minutes; over its last `decay_share` lr falls by a cosine to `min_lr_ratio`."""
    done = step / cfg.max_steps
    if cfg.minutes:
        done = max(done, elapsed / (cfg.minutes * 60))
    into_decay = min(1.0, max(0.0, (done - (1 - cfg.decay_share)) / cfg.decay_share)) if cfg.decay_share else 0.0
    anneal = cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * into_decay))
    return min(1.0, step / cfg.warmup_steps) * anneal


def _drills_shown(exact: dict[str, float]) -> str:
    """'drills right 41% (worst closer 6%)': short enough for a progress bar's line."""
    worst = min(exact, key=exact.__getitem__)
    return f"drills right {sum(exact.values()) / len(exact):.0%} (worst {worst} {exact[worst]:.0%})"


def warm_up(model: Any, processor: Any, words: Sequence[str], cfg: WarmupConfig = WarmupConfig(),
            report: Report | None = None) -> dict[str, Any]:
    """Train `model` in place: stage 1 copying, stage 2 drills; returns steps, the step stage 2 began, the
    last loss, the held-out accuracies, the last drill weights and seconds."""
    import torch

    from vgt_agent.tiny.drills import FAMILIES
    from vgt_agent.training.shared_prefix import IMAGE_START

    tokenizer = processor.tokenizer
    rng = random.Random(cfg.seed)
    bracket = tokenizer.convert_tokens_to_ids("[")
    image_start = tokenizer.convert_tokens_to_ids(IMAGE_START)
    copies = encode(tokenizer, [copy_example(rng, words, cfg) for _ in range(cfg.held_out)])
    drills = {f: drill_batch(processor, rng, max(1, cfg.held_out // 4), f) for f in FAMILIES}
    copy_accuracy, exact = 0.0, dict.fromkeys(drills, 0.0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.98), weight_decay=cfg.weight_decay)
    started, step, loss, stage_2_from = time.perf_counter(), 0, float("nan"), None
    deadline = started + cfg.minutes * 60 if cfg.minutes else float("inf")
    model.train()
    while step < cfg.max_steps and min(exact.values()) < cfg.drill_target and time.perf_counter() < deadline:
        step += 1
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * lr_factor(cfg, step, time.perf_counter() - started)
        if stage_2_from is None:
            batch = encode(tokenizer, [copy_example(rng, words, cfg) for _ in range(cfg.batch)])
        else:
            batch = drill_batch(processor, rng, cfg.batch, weights=family_weights(exact, cfg.weight_floor))
        loss = backward(model, batch, image_start, cfg.micro_batches)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        if step % cfg.check_every == 0:
            model.eval()
            if stage_2_from is None:
                copy_accuracy = next_token_accuracy(model, copies, bracket, image_start)
                stage_2_from = step if copy_accuracy >= cfg.copy_target else None
            else:
                exact = {f: exact_share(model, held, image_start) for f, held in drills.items()}
            model.train()
        if report:
            report(step, cfg.max_steps, f"loss {loss:.3f} · " + (f"copy {copy_accuracy:.0%}" if stage_2_from is None
                                                                  else _drills_shown(exact)))
    model.eval()
    return {"steps": step, "stage_2_from": stage_2_from, "loss": loss, "copy_accuracy": copy_accuracy,
            "drill_exact": exact, "drill_weights": family_weights(exact, cfg.weight_floor),
            "seconds": time.perf_counter() - started}
