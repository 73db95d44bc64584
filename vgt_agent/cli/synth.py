"""`vgt synth --dataset NAME --via distill|agent --db DB`: a dataset into verified, grounded SFT traces.

Everything is checked before the store is touched (bad input exits 2 with one line and writes nothing).
The run id is derived from dataset, split, path and teacher, so re-running the same command resumes the
same run and skips the samples it already finished; `--shard i/n` splits the work across machines, whose
stores `vgt traces merge` joins into one run. `--workers N` runs the samples in N processes when one
interpreter's CPU is the limit (`synthesis/workers.py`); this process still commits every sample.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from vgt_agent.cli.common import command_line, console, err_console, print_json, usage_error, work_failed
from vgt_agent.cli.coords_option import CoordsOption
from vgt_agent.cli.device_options import DeviceOption, DtypeOption, placement_or_exit
from vgt_agent.cli.options import DbOption, JsonOption, open_store
from vgt_agent.vocabulary import (
    ORACLE,
    BackendName,
    CoordsName,
    Engine,
    Extractor,
    GrounderName,
    Grounding,
    GroundingPolicy,
    Protocol,
    TeacherName,
    Via,
)

if TYPE_CHECKING:  # the synthesis pipeline (LangGraph, the world, the backends) loads when `vgt synth` runs
    from vgt_agent.synthesis.batch import BatchStats
    from vgt_agent.synthesis.run import OnOutcome

EXIT_INTERRUPTED = 130


def parse_shard(spec: str | None) -> tuple[int, int] | None:
    """"i/n" -> (i, n) with 0 <= i < n; ValueError otherwise."""
    if spec is None:
        return None
    head, sep, tail = spec.partition("/")
    if not sep or not head.strip().isdigit() or not tail.strip().isdigit():
        raise ValueError(f"--shard must look like i/n (e.g. 0/4), not {spec!r}")
    i, n = int(head), int(tail)
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard {spec}: need 0 <= i < n")
    return i, n


def synth(
    dataset: str = typer.Option(..., "--dataset", help="Dataset name (e.g. world-train, tallyqa) or a world split / "
                                                       "local JSONL path."),
    split: str = typer.Option(None, "--split", help="Split (default: the dataset's)."),
    path: Path = typer.Option(None, "--path", help="Local copy of the dataset's files."),
    via: Via = typer.Option("distill", "--via", help="distill (teacher -> verify -> extract -> ground -> align) | "
                                                     "agent (the ask agent's verified traces)"),
    db: Path = DbOption,
    teacher: TeacherName | None = typer.Option(
        None, "--teacher", help="world-oracle (world data only; default there for distill; with --via agent it plays "
                                "the model in the ask agent, vgt-tiny's teacher) | model (the --backend model)."),
    backend: BackendName = typer.Option("openai", "--backend", help="openai (any OpenAI-compatible server) | "
                                                                   "transformers (in process)"),
    model: str = typer.Option(None, "--model", envvar="VGT_MODEL", help="Model name (openai) or local path."),
    base_url: str = typer.Option(None, "--base-url", envvar="VGT_BASE_URL",
                                 help="OpenAI-compatible server URL; with --engine ray, several comma-separated "
                                      "URLs are spread over the actors."),
    k: int = typer.Option(4, "--k", min=1, help="Teacher candidates per sample."),
    keep: int = typer.Option(1, "--keep", min=1, help="Verified candidates per sample taken on to grounding."),
    temperature: float = typer.Option(1.0, "--temperature", min=0.0, help="Teacher sampling temperature."),
    max_tokens: int = typer.Option(1024, "--max-tokens", min=1, help="Teacher / agent completion budget."),
    extract: Extractor | None = typer.Option(None, "--extract", help="scene (world data; default there) | llm "
                                                                     "(JSON schema)"),
    grounder: GrounderName = typer.Option("world", "--grounder", help="gold-shuffled (world data): the gold masks "
                                          "in a per-sample shuffled order like the world grounder's; same "
                                          "coordinates, ~10x faster"),
    sam3_checkpoint: str = typer.Option(None, "--sam3-checkpoint", envvar="VGT_SAM3",
                                        help="SAM3 checkpoint dir or cached hub id (default facebook/sam3)."),
    policy: GroundingPolicy | None = typer.Option(None, "--policy", help="Who drives the grounding agent: rule "
                                                  "(world data; default there) | vlm (the --backend model)."),
    grounding: Grounding = typer.Option("point", "--grounding", help="--via agent: the tool replies as a point or a "
                                                                    "box per instance."),
    protocol: Protocol = typer.Option("text", "--protocol", help="--via agent: text (<ground> tags) | function"),
    max_turns: int = typer.Option(8, "--max-turns", min=1, help="--via agent: model turns per sample."),
    concurrency: int = typer.Option(32, "--concurrency", min=1, help="Samples in flight (size it for the server)."),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes that run the samples in flight (each on "
                                                            "concurrency/N threads, with its own clients and "
                                                            "grounder; this process keeps the one store writer). "
                                                            "Raise it when the run is CPU-bound (e.g. --grounder "
                                                            "world at high concurrency); 1 runs everything here."),
    engine: Engine = typer.Option("local", "--engine", help="local (threads here, or --workers processes) | ray (Ray "
                                                         "actors on a local instance or a cluster: --ray-address)"),
    ray_address: str = typer.Option(None, "--ray-address", help="--engine ray: auto (the cluster this machine is "
                                                                "in) | ray://HOST:10001 (default: a local instance)."),
    ray_actors: int = typer.Option(2, "--ray-actors", min=1, help="--engine ray: actors, each with its own "
                                                                  "pipeline (grounder model loaded once)."),
    ray_cpus: float = typer.Option(1.0, "--ray-cpus-per-actor", min=0.0, help="--engine ray: CPUs per actor."),
    ray_gpus: float = typer.Option(0.0, "--ray-gpus-per-actor", min=0.0, help="--engine ray: GPUs per actor "
                                                                               "(e.g. 1 for SAM3 on GPU nodes)."),
    limit: int = typer.Option(None, "--limit", min=0, help="At most this many samples (after sharding)."),
    shard: str = typer.Option(None, "--shard", help="i/n: every n-th sample starting at i, for several machines."),
    run: str = typer.Option(None, "--run", help="Run name (default derived from dataset/split/via/teacher)."),
    max_attempts: int = typer.Option(3, "--max-attempts", min=1, help="Retries per model call before giving up."),
    max_error_share: float = typer.Option(0.5, "--max-error-share", min=0.0, max=1.0,
                                          help="The run fails (exit 1) when more than this share of the samples "
                                               "processed failed with an error (always when every one did)."),
    coords: CoordsName | None = CoordsOption,
    device: str = DeviceOption,
    dtype: str = DtypeOption,
    json_out: bool = JsonOption,
) -> None:
    """Synthesise verified, grounded reasoning traces for a dataset into the trace store."""
    from vgt_agent.backends import BackendError
    from vgt_agent.datasets import DatasetUnavailable, load_samples
    from vgt_agent.graphs.ask import AskLimits
    from vgt_agent.synthesis.graph import SynthSettings
    from vgt_agent.synthesis.options import SynthOptionError, check_engine, check_spec, resolve_roles
    from vgt_agent.synthesis.oracle import WorldOracleTeacher
    from vgt_agent.synthesis.ray_engine import RaySettings
    from vgt_agent.synthesis.run import PipelineSpec, build_pipeline, run_config, run_name, run_synth
    from vgt_agent.synthesis.workers import WorkerError
    from vgt_agent.synthesis.world_scene import is_world_sample

    base_urls = tuple(u.strip() for u in base_url.split(",") if u.strip()) if base_url else ()
    try:
        check_engine(engine, workers=workers, base_urls=base_urls, ray_address=ray_address, ray_gpus=ray_gpus)
    except SynthOptionError as e:
        usage_error(str(e))
    ray_settings = None
    if engine == "ray":
        try:
            import ray  # noqa: F401 - checked before anything runs
        except ImportError:
            usage_error("--engine ray needs Ray: pip install 'vgt[ray]'")
        ray_settings = RaySettings(actors=ray_actors, threads=math.ceil(concurrency / ray_actors),
                                   address=ray_address, cpus_per_actor=ray_cpus, gpus_per_actor=ray_gpus)
    base_url = base_urls[0] if base_urls else None
    try:
        shard_spec = parse_shard(shard)
        samples = list(load_samples(dataset, split, path=path, limit=limit, shard=shard_spec))
    except KeyError as e:  # str(KeyError) is the repr of its message
        usage_error(str(e.args[0]) if e.args else str(e))
    except (ValueError, FileNotFoundError, DatasetUnavailable) as e:
        usage_error(str(e))
    world = all(is_world_sample(s) for s in samples)
    try:
        roles = resolve_roles(via, world=world, dataset=samples[0].dataset if samples else dataset, teacher=teacher,
                              extract=extract, policy=policy)
    except SynthOptionError as e:
        usage_error(str(e))
    teacher, extract, policy = roles.teacher, roles.extract, roles.policy
    oracle = teacher == ORACLE
    spec = PipelineSpec(
        settings=SynthSettings(via=via, k=k, keep=keep, agent_kind=grounding, agent_protocol=protocol,
                               agent_limits=AskLimits(max_turns=max_turns, max_tool_calls=max_turns,
                                                      max_tokens=max_tokens, temperature=0.0)),
        grounder=grounder, sam3_checkpoint=sam3_checkpoint, teacher=teacher, extract=extract, policy=policy,
        backend=backend, model=model, base_url=base_url, max_attempts=max_attempts, temperature=temperature,
        max_tokens=max_tokens, coords=coords)
    try:
        check_spec(spec, world=world, workers=workers)
    except SynthOptionError as e:
        usage_error(str(e))
    if grounder == "sam3" or (spec.needs_model and backend == "transformers"):  # in-process models: place them
        placed = placement_or_exit(device, dtype)
        spec = dataclasses.replace(spec, device=placed.device, dtype=placed.dtype)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # model-loading progress is not program output
            pipeline = build_pipeline(spec)
        if via == "agent" and protocol == "function" and not pipeline.vlm.supports_function_calling:
            usage_error(f"the {backend} backend has no function calling; use --protocol text")
    except BackendError as e:
        if e.unreachable:
            work_failed(str(e))
        usage_error(str(e))
    except (ValueError, FileNotFoundError, OSError) as e:
        usage_error(str(e))
    model_name = pipeline.vlm.model if pipeline.vlm is not None else None
    if spec.needs_model:  # workers use the model this process resolved (no discovery of their own)
        spec = dataclasses.replace(spec, model=model_name)
    teacher_label = teacher if oracle else f"{backend}:{model_name}"
    name = run or run_name(samples, dataset, split, via, teacher_label)
    config = run_config(spec, teacher_label, concurrency=concurrency, workers=workers, shard=shard, limit=limit)
    config["engine"] = engine
    if ray_settings is not None:
        config["ray"] = dataclasses.asdict(ray_settings) | {"base_urls": list(base_urls)}
    store = open_store(db, create=True)
    show = not json_out and console.is_terminal
    try:
        with _progress(show) as on_outcome:
            summary = run_synth(store, spec, pipeline, samples, name=name, command=command_line(),
                                backend=ORACLE if oracle else backend,
                                model=WorldOracleTeacher.model if oracle and via == "distill" else model_name,
                                config=config, concurrency=concurrency, workers=workers, on_outcome=on_outcome,
                                max_error_share=max_error_share, ray=ray_settings, base_urls=base_urls)
    except WorkerError as e:
        work_failed(str(e))
    finally:
        store.close()
    summary["device"] = f"{spec.device}/{spec.dtype}" if spec.device else None  # in-process models only
    if json_out:
        print_json(summary)
    else:
        _print_summary(summary)
    if summary["status"] == "failed":
        work_failed(summary["message"] or "the run failed")
    if summary["status"] == "interrupted":
        err_console.print(f"interrupted: re-run the same command to resume run {name}", markup=False)
        raise typer.Exit(EXIT_INTERRUPTED)


@contextlib.contextmanager
def _progress(show: bool) -> Iterator[OnOutcome | None]:
    """The batch's progress bar as an `on_outcome` callback (None when not shown)."""
    if not show:
        yield None
        return
    started = time.perf_counter()
    columns = (TextColumn("[bold]synth[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
               TimeRemainingColumn(), TextColumn("[green]kept {task.fields[kept]}[/] · [yellow]rejected "
                                                 "{task.fields[rejected]}[/] · [red]errors {task.fields[errors]}[/]"))
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("synth", total=None, rate="", kept=0, rejected=0, errors=0)

        def update(stats: BatchStats, outcome: dict[str, Any]) -> None:
            rate = stats.processed / max(1e-9, time.perf_counter() - started)
            progress.update(task, total=stats.selected - stats.skipped, completed=stats.processed,
                            rate=f"{rate:.2f} samples/s", kept=stats.kept, rejected=stats.rejected,
                            errors=stats.errors)

        yield update


def _print_summary(s: dict[str, Any]) -> None:
    from vgt_agent.synthesis.batch import STAGES

    where = f" · device {s['device']}" if s.get("device") else ""
    table = Table(title=f"vgt synth · {s['run']} · {s['status']}{where}", show_header=True)
    table.add_column("outcome")
    table.add_column("value", justify="right")
    for label, key in (("samples selected", "selected"), ("already done (skipped)", "skipped_done"),
                       ("processed now", "processed"), ("kept", "kept"), ("rejected", "rejected"),
                       ("errors", "errors"), ("variants written", "variants")):
        table.add_row(label, str(s[key]))
    gpt = s["groundings_per_trace"]
    table.add_row("groundings per kept trace", f"{gpt:.2f}" if gpt is not None else "–")
    for title, key in (("rejected", "rejected_by_reason"), ("candidate rejected", "candidates_rejected_by_reason"),
                       ("object dropped", "dropped_objects"), ("error", "errors_by_kind")):
        for reason, n in s[key].items():
            table.add_row(f"  {title}: {reason}", str(n))
    totals = s["run_totals"]
    table.add_row("run totals (all sessions)", f"{totals['kept']} kept · {totals['rejected']} rejected · "
                                               f"{totals['errors']} errors")
    console.print(table)
    timing = Table(title="time per stage (mean per processed sample)")
    timing.add_column("stage")
    timing.add_column("seconds", justify="right")
    for stage in STAGES:
        if stage in s["seconds_per_sample_by_stage"]:
            timing.add_row(stage, f"{s['seconds_per_sample_by_stage'][stage]:.3f}")
    rate = s["samples_per_s"]
    timing.add_row("throughput", f"{rate:.2f} samples/s" if rate else "–")
    console.print(timing)
    if s["message"]:
        console.print(f"[yellow]{s['message']}[/]")
