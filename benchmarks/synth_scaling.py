"""How `vgt synth` scales out: samples/s on 1, 2, 4, ... Ray actors beside the local engine, and the one writer.

A loopback OpenAI-compatible teacher (its own process) answers every request after a fixed latency with a
correct world-oracle trace; the full pipeline runs (distill over HTTP, verify, extract, the grounding agent
on the world grounder, align, one SQLite transaction per sample on the driver). Each level keeps
`--per-actor` samples in flight per actor; the local engine runs the same total concurrency on threads of
one process. The ideal is in-flight / (calls per sample x latency): what the server latency allows.

The last table is the driver's single SQLite writer alone: pre-computed samples committed one transaction
each, samples/s. Past that rate a cluster needs sharded stores (`--shard i/n` into one store per driver,
then `vgt traces merge`): with N actors each finishing r samples/s, the writer is the bottleneck once
N x r exceeds it.

Run: OMP_NUM_THREADS=1 python benchmarks/synth_scaling.py [--latency 0.2] [--actors 1,2,4] [--per-actor 8]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import ray
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from synth_throughput import make_pipeline, start_teacher  # noqa: E402

from vgt_agent.store import TraceRecord, TraceStore  # noqa: E402
from vgt_agent.synthesis.batch import BatchRunner  # noqa: E402
from vgt_agent.synthesis.ray_engine import RaySampleWorkers, RaySettings  # noqa: E402
from vgt_agent.synthesis.sample_run import run_sample  # noqa: E402
from vgt_agent.synthesis.writer import StoreWriter  # noqa: E402
from vgt_agent.world.storage import load_split, make_split  # noqa: E402

CALLS_PER_SAMPLE = 1  # k=1 distill: one teacher call per sample (the extraction reads the scene graph)


def run_batch(db: Path, run_id: str, samples: list, base_url: str, concurrency: int,
              workers: RaySampleWorkers | None) -> float:
    """Samples/s of one batch (the pool, if any, is started before timing)."""
    TraceStore.open(db).start_run("synth", run_id=run_id)
    with StoreWriter(db) as writer:
        stats = BatchRunner(make_pipeline(base_url, "world"), writer, run_id, samples, concurrency=concurrency,
                            workers=workers).run()
    if stats.errors or stats.processed != len(samples):
        raise RuntimeError(f"benchmark run failed: {stats.to_dict()}")
    return stats.processed / stats.elapsed_s


def writer_rate(db: Path, samples: list, base_url: str, n: int) -> tuple[float, int]:
    """Samples/s the one writer commits, with the records of real samples (each committed under new ids)."""
    pipeline = make_pipeline(base_url, "world")
    records: list[list[TraceRecord]] = []
    for sample in samples[:20]:
        run_sample(pipeline, "probe", sample, lambda sid, recs: records.append(recs))
    store = TraceStore.open(db)
    for i in range(n // len(records) + 1):
        store.start_run("synth", run_id=f"writer-{i}")
    store.close()
    started = time.perf_counter()
    with StoreWriter(db) as writer:
        for i in range(n):
            recs, run_id = records[i % len(records)], f"writer-{i // len(records)}"
            writer.write_sample(run_id, f"writer-{i}", [dataclasses.replace(r, run_id=run_id) for r in recs])
    return n / (time.perf_counter() - started), sum(len(r) for r in records) // len(records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--actors", default="1,2,4")
    parser.add_argument("--per-actor", type=int, default=8, help="samples in flight per actor")
    parser.add_argument("--rounds", type=float, default=4.0, help="samples per level = rounds x in-flight")
    args = parser.parse_args()
    levels = [int(v) for v in args.actors.split(",")]
    console = Console(width=max(130, Console().width))
    cores = os.cpu_count() or 1
    console.print(f"{cores} CPU cores, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    ray.init(num_cpus=max(cores, max(levels)), include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR, runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    out = Table(title=f"vgt synth scaling · world grounder · {args.latency * 1e3:.0f} ms per model call · "
                      f"{args.per_actor} in flight per actor")
    for col in ("engine", "actors", "in flight", "samples", "samples/s", "ideal", "of ideal", "vs 1 actor"):
        out.add_column(col, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        n_max = int(args.rounds * args.per_actor * max(levels))
        split = Path(tmp) / "train"
        make_split(split, "world-train", n=n_max)
        samples = list(load_split(split))
        proc, base_url = start_teacher(split, args.latency)
        try:
            first = None
            for actors in levels:
                in_flight = args.per_actor * actors
                batch = samples[: int(args.rounds * in_flight)]
                ideal = in_flight / (CALLS_PER_SAMPLE * args.latency)
                local = run_batch(Path(tmp) / f"local-{actors}.db", f"local-{actors}", batch, base_url, in_flight,
                                  None)
                out.add_row("local", "-", str(in_flight), str(len(batch)), f"{local:.1f}", f"{ideal:.0f}",
                            f"{local / ideal:.0%}", "")
                settings = RaySettings(actors=actors, threads=args.per_actor, cpus_per_actor=cores / max(levels))
                with RaySampleWorkers([functools.partial(make_pipeline, base_url, "world")], settings) as pool:
                    rate = run_batch(Path(tmp) / f"ray-{actors}.db", f"ray-{actors}", batch, base_url, in_flight,
                                     pool)
                first = first or rate
                out.add_row("ray", str(actors), str(in_flight), str(len(batch)), f"{rate:.1f}", f"{ideal:.0f}",
                            f"{rate / ideal:.0%}", f"{rate / first:.2f}x")
            console.print(out)
            rate, traces = writer_rate(Path(tmp) / "writer.db", samples, base_url, n=400)
            writer = Table(title="the driver's one SQLite writer (one transaction per sample)")
            for col in ("traces per sample", "samples/s", "traces/s"):
                writer.add_column(col, justify="right")
            writer.add_row(str(traces), f"{rate:.0f}", f"{rate * traces:.0f}")
            console.print(writer)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            ray.shutdown()


if __name__ == "__main__":
    main()
