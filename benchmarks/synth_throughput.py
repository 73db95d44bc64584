"""How close `vgt synth` gets to the server-latency bound: samples/s at several concurrency levels.

A loopback OpenAI-compatible teacher (its own process) answers every request after a fixed latency with a
correct world-oracle trace; the pipeline runs in full (distill over HTTP, verify, scene extraction, the
grounding agent on the world grounder, align, filters, one SQLite transaction per sample). With m model
calls per sample, the ideal is concurrency / (m x latency). The CPU ceiling is what this machine can do
when model calls cost nothing: cores-usable / CPU-seconds per sample (measured at concurrency 1; Python
threads share one GIL, so "usable" is about one core plus what numpy/scipy run without it). The run with
the gold grounder (masks read from the scene graph, no segmentation) shows the orchestration alone.

Run: OMP_NUM_THREADS=1 python benchmarks/synth_throughput.py [--latency 0.2] [--levels 1,8,32,64]
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from vgt_agent.backends import OpenAIBackend
from vgt_agent.graphs.synth import SynthSettings
from vgt_agent.store import TraceStore
from vgt_agent.synthesis.batch import BatchRunner
from vgt_agent.synthesis.extract import SceneExtractor
from vgt_agent.synthesis.pipeline import GrounderPool, SynthPipeline
from vgt_agent.synthesis.teacher import BackendTeacher
from vgt_agent.synthesis.writer import StoreWriter
from vgt_agent.world.storage import load_split, make_split

STUB = Path(__file__).parents[1] / "tests" / "synth_stub_teacher.py"


def start_teacher(split: Path, latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, str(STUB), str(split), "--latency", str(latency)],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    if not line.startswith("ready "):
        proc.kill()
        raise RuntimeError(f"stub teacher did not start: {line!r}")
    return proc, line.split(" ", 1)[1]


class CountingBackend:
    """Delegates to a backend and counts the model calls (the ideal rate depends on calls per sample)."""

    def __init__(self, inner: OpenAIBackend) -> None:
        self.inner, self.name, self.model = inner, inner.name, inner.model
        self.supports_function_calling = inner.supports_function_calling
        self._count = itertools.count()
        self.calls = 0

    def generate(self, *args, **kwargs):
        self.calls = next(self._count) + 1
        return self.inner.generate(*args, **kwargs)


def measure(base_url: str, samples: list, grounder: str, concurrency: int, db: Path) -> dict:
    """One batch run; samples/s, model calls per sample and CPU seconds per sample."""
    backend = CountingBackend(OpenAIBackend(base_url=base_url, model="stub-vlm", timeout_s=60))
    pipeline = SynthPipeline(SynthSettings(k=1), GrounderPool(grounder), BackendTeacher(backend), SceneExtractor())
    run_id = f"bench-{grounder}-{concurrency}"
    TraceStore.open(db).start_run("synth", run_id=run_id)
    with StoreWriter(db) as writer:
        cpu = time.process_time()
        stats = BatchRunner(pipeline, writer, run_id, samples, concurrency=concurrency).run()
        cpu = time.process_time() - cpu
    if stats.errors or stats.processed != len(samples):
        raise RuntimeError(f"benchmark run failed: {stats.to_dict()}")
    return {"rate": stats.processed / stats.elapsed_s, "calls": backend.calls / stats.processed,
            "cpu_per_sample": cpu / stats.processed, "kept": stats.kept, "n": stats.processed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--levels", default="1,8,32,64")
    parser.add_argument("--grounders", default="world,gold")
    parser.add_argument("--rounds", type=float, default=3.0, help="samples per level = rounds x concurrency")
    args = parser.parse_args()
    levels = [int(v) for v in args.levels.split(",")]
    per_level = {c: max(12, int(args.rounds * c)) for c in levels}
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        split = Path(tmp) / "train"
        make_split(split, "world-train", n=max(per_level.values()))
        samples = list(load_split(split))
        proc, base_url = start_teacher(split, args.latency)
        try:
            for grounder in args.grounders.split(","):
                results = {c: measure(base_url, samples[: per_level[c]], grounder, c, Path(tmp) / f"{grounder}.db")
                           for c in levels}
                cpu = results[levels[0]]["cpu_per_sample"]
                calls = results[levels[0]]["calls"]
                table = Table(title=f"vgt synth throughput · {grounder} grounder · {args.latency * 1e3:.0f} ms per "
                                    f"model call · {calls:g} call(s) per sample · CPU {cpu * 1e3:.0f} ms/sample")
                for col in ("concurrency", "samples", "samples/s", "ideal c/(calls*latency)", "of ideal",
                            "CPU ceiling", "of min(ideal, ceiling)"):
                    table.add_column(col, justify="right")
                for c, r in results.items():
                    ideal = c / (r["calls"] * args.latency)
                    ceiling = 1.0 / cpu
                    table.add_row(str(c), str(r["n"]), f"{r['rate']:.2f}", f"{ideal:.1f}", f"{r['rate'] / ideal:.0%}",
                                  f"{ceiling:.1f}", f"{r['rate'] / min(ideal, ceiling):.0%}")
                console.print(table)
        finally:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
