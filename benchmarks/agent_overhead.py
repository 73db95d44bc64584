"""What the ask graph and trace logging cost per model turn, next to the backend's own time.

An instant backend (scripted replies, no model) isolates the graph: LangGraph dispatch, parsing, the tool
node's bookkeeping, verification and the SQLite write. The grounder's time is measured separately and
excluded (it is the tool, not overhead). Target: <= 2% of backend time at realistic latencies, < 5 ms/turn.

Run: OMP_NUM_THREADS=1 python benchmarks/agent_overhead.py [--runs 50]
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from PIL import Image
from rich.console import Console
from rich.table import Table

from vgt_agent.backends.base import Generation, Message
from vgt_agent.graphs.ask import AskContext, run_ask
from vgt_agent.grounders.world import WorldGrounder
from vgt_agent.images import load_image
from vgt_agent.store import ImageRecord, SampleRecord, TraceStore
from vgt_agent.world.storage import load_split, make_split


class InstantBackend:
    """Replies at once: asks for the counted phrase, then answers with the number of instances returned."""

    name = "instant"
    model = "scripted"
    supports_function_calling = False

    def generate(self, messages: Sequence[Message], images: Sequence[Image.Image] = (), **_: object) -> Generation:
        last = messages[-1]
        if last["role"] != "assistant":
            question = messages[1]["content"][1]["text"]
            phrase = re.sub(r"^How many (.+?) are there\?$", r"\1", question)
            return Generation(f"<think>Find the {phrase}. <ground> {phrase} </ground>", "stop", self.name,
                              self.model, stop_sequence="</ground>", completion_tokens=12)
        n = last["content"].count(";") + 1 if "<obj>" in last["content"] else 0
        return Generation(f" There are {n}.</think> \\boxed{{{n}}}", "stop", self.name, self.model,
                          completion_tokens=10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        split = Path(tmp) / "tally"
        make_split(split, "world-tally", n=20)
        samples = [s for s in load_split(split) if s.question.startswith("How many") and "are there" in s.question]
        store = TraceStore.open(Path(tmp) / "bench.db")
        grounder, backend = WorldGrounder(), InstantBackend()
        run = store.start_run("bench", backend=backend.name, model=backend.model, grounder=grounder.name)
        per_turn: dict[bool, list[float]] = {True: [], False: []}
        for i in range(args.runs):
            sample = samples[i % len(samples)]
            image = load_image(sample.image_path)
            grounder.segment(image)  # segmentation is the tool's cost, not the graph's: warm it
            record = SampleRecord.from_sample(sample, ImageRecord.from_path(sample.image_path))
            for logged in (True, False):
                ctx = AskContext(image=image, sample=record, backend=backend, grounder=grounder,
                                 store=store if logged else None, run_id=run, attempt=i)
                start = time.perf_counter()
                state = run_ask(ctx)
                overhead = time.perf_counter() - start - state.get("model_s", 0.0) - state.get("tool_s", 0.0)
                per_turn[logged].append(overhead / state["turns"])
        store.close()
    med, unlogged = statistics.median(per_turn[True]), statistics.median(per_turn[False])
    table = Table(title=f"ask graph overhead per model turn (instant backend, world grounder, {args.runs} runs)")
    for col in ("measure", "value"):
        table.add_column(col)
    table.add_row("graph + verify + log, median per turn", f"{med * 1e3:.2f} ms")
    table.add_row("p90 per turn", f"{sorted(per_turn[True])[int(0.9 * args.runs)] * 1e3:.2f} ms")
    table.add_row("same without the store (median)", f"{unlogged * 1e3:.2f} ms")
    for latency in (0.2, 0.5, 1.0, 2.0):
        table.add_row(f"overhead at {latency:.1f} s backend latency", f"{100 * med / latency:.2f} %")
    Console().print(table)


if __name__ == "__main__":
    main()
