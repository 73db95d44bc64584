"""Seconds per agent-SFT step on vgt-tiny: `SharedPrefixSFTTrainer` (what `vgt train sft --variant agent` runs)
against TRL's stock SFTTrainer (full forward, its fused LM-head loss), on the same 16-row batches.

The traces are real: `vgt synth --via agent --teacher world-oracle --grounder gold-shuffled` over a fresh
world-train split. Both trainers get the same length-bucketed batches in the same order (the dataset laid out
batch by batch, read sequentially), vgt-tiny's SFT recipe and one torch thread; the first step (warm-up) is
left out, and the configurations alternate over rounds, so a busy machine slows them alike.

Run: OMP_NUM_THREADS=1 python benchmarks/sft_step_speed.py [--samples 320] [--steps 20] [--rounds 2]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from transformers import TrainerCallback
from trl import SFTTrainer
from typer.testing import CliRunner

from vgt_agent.cli.main import app
from vgt_agent.store import TraceStore
from vgt_agent.tiny.recipe import SFT_ARGS, build_policy
from vgt_agent.training.agent_data import AgentCollator
from vgt_agent.training.data import sft_dataset
from vgt_agent.training.sft import SFTJob, sft_config
from vgt_agent.training.shared_prefix import SharedPrefixSFTTrainer
from vgt_agent.world.storage import make_split


class Stamps(TrainerCallback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.times.append(time.perf_counter())


def traces(tmp: Path, samples: int) -> Any:
    """The agent rows of a small world-oracle synth run."""
    make_split(tmp / "world-train", "world-train", n=samples)
    result = CliRunner().invoke(app, ["synth", "--dataset", str(tmp / "world-train"), "--via", "agent", "--teacher",
                                      "world-oracle", "--grounder", "gold-shuffled", "--db", str(tmp / "t.db"),
                                      "--json"])
    assert result.exit_code == 0, result.output
    with TraceStore.open(tmp / "t.db") as store:
        return sft_dataset(store, "agent")


def batches(lengths: list[int], size: int, steps: int) -> list[list[int]]:
    """Length-bucketed batches in random order, as vgt-tiny's recipe groups them."""
    rng = random.Random(0)
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], rng.random()))
    groups = [order[j : j + size] for j in range(0, len(order) - size + 1, size)]
    rng.shuffle(groups)
    return groups[:steps]


def seconds_per_step(trainer_cls: type, ds: Any, processor: Any, collator: AgentCollator, groups: list[list[int]],
                     out: Path) -> float:
    model, _ = build_policy(0)
    recipe = {k: v for k, v in SFT_ARGS.items() if k not in ("max_steps", "train_sampling_strategy")}
    job = SFTJob(model="vgt-tiny", variant="agent", output_dir=out, yaml_args=recipe,
                 trl_args={"max_steps": len(groups), "train_sampling_strategy": "sequential", "logging_steps": 1000,
                           "save_strategy": "no", "disable_tqdm": True})
    stamps = Stamps()
    trainer_cls(model=model, processing_class=processor, args=sft_config(job), data_collator=collator,
                train_dataset=ds.select([i for g in groups for i in g]), callbacks=[stamps]).train()
    return statistics.median(b - a for a, b in zip(stamps.times[1:], stamps.times[2:], strict=False))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=320)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        ds = traces(Path(tmp), args.samples)
        _, processor = build_policy(0)
        collator = AgentCollator(processor)
        lengths = [collator.length(row) for row in ds]  # builds (and caches) every sequence, as training does
        groups = batches(lengths, SFT_ARGS["per_device_train_batch_size"], args.steps)
        configs = {"SharedPrefixSFTTrainer (vgt train sft --variant agent)": SharedPrefixSFTTrainer,
                   "TRL SFTTrainer (full forward, fused-head loss)": SFTTrainer}
        results: dict[str, list[float]] = {name: [] for name in configs}
        for _ in range(args.rounds):
            for name, cls in configs.items():
                results[name].append(seconds_per_step(cls, ds, processor, collator, groups, Path(tmp) / "out"))
    table = Table(title=f"agent SFT on vgt-tiny: {len(ds)} traces, {len(groups)} batches of 16, 1 torch thread")
    for col in ("trainer", "s/step (median per round)", "mean padded width"):
        table.add_column(col)
    width = statistics.mean(max(lengths[i] for i in g) for g in groups)
    for name, values in results.items():
        table.add_row(name, " / ".join(f"{v:.3f}" for v in values), f"{width:.0f}")
    Console().print(table)


if __name__ == "__main__":
    main()
