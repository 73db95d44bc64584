"""One `vgt synth` run, for the command and for pipelines that chain it (`vgt repro tiny`).

What the command does once its input is checked: build the pipeline from plain values (`PipelineSpec`, from
which worker processes rebuild it), name the run (the same command names the same run, so a re-run resumes
it and skips finished samples), run the batch through one store writer (in `workers` processes when asked),
and record the outcome on the run. The CLI adds the checks, the progress bar and the printed summary.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vgt_agent.backends import make_backend
from vgt_agent.backends.base import VLMBackend
from vgt_agent.backends.coord_boundary import with_convention
from vgt_agent.backends.world_oracle import NAME as ORACLE
from vgt_agent.backends.world_oracle import WorldOracleBackend
from vgt_agent.devices import Placement, resolve_placement
from vgt_agent.sample import Sample
from vgt_agent.store import TraceStore
from vgt_agent.store.records import short_hash
from vgt_agent.synthesis.batch import BatchRunner, BatchStats
from vgt_agent.synthesis.extract import LLMExtractor, SceneExtractor
from vgt_agent.synthesis.graph import SynthSettings
from vgt_agent.synthesis.options import check_engine, check_spec
from vgt_agent.synthesis.oracle import WorldOracleTeacher
from vgt_agent.synthesis.pipeline import GrounderPool, SynthPipeline
from vgt_agent.synthesis.ray_engine import RaySampleWorkers, RaySettings
from vgt_agent.synthesis.teacher import BackendTeacher
from vgt_agent.synthesis.teacher_prompts import EXTRACT_SCHEMA
from vgt_agent.synthesis.workers import SampleWorkers
from vgt_agent.synthesis.world_scene import is_world_sample
from vgt_agent.synthesis.writer import StoreWriter

OnOutcome = Callable[[BatchStats, dict[str, Any]], None]


@dataclass(frozen=True)
class PipelineSpec:
    """What a run's stages are, as plain values: worker processes rebuild the pipeline from it (clients,
    models and grounders cannot be pickled)."""

    settings: SynthSettings
    grounder: str
    sam3_checkpoint: str | None
    teacher: str  # world-oracle | model
    extract: str  # scene | llm
    policy: str  # rule | vlm
    backend: str
    model: str | None
    base_url: str | None
    max_attempts: int
    temperature: float
    max_tokens: int
    device: str | None = None  # where in-process models run, as resolved by --device/--dtype (None: auto)
    dtype: str | None = None
    coords: str | None = None  # the model's coordinate convention (`--coords`; None: its family's)

    @property
    def placement(self) -> Placement | None:
        """The resolved placement of in-process models (a transformers backend, SAM3), None when there are none."""
        if self.grounder != "sam3" and not (self.needs_model and self.backend == "transformers"):
            return None
        return resolve_placement(self.device, self.dtype)

    @property
    def oracle_agent(self) -> bool:
        """--via agent with a world-oracle playing the model."""
        return self.settings.via == "agent" and self.teacher == ORACLE

    @property
    def needs_model(self) -> bool:
        via = self.settings.via
        return ((via == "agent" and not self.oracle_agent) or (via == "distill" and self.teacher == "model")
                or self.extract == "llm" or self.policy == "vlm")


def build_pipeline(spec: PipelineSpec) -> SynthPipeline:
    """The run's pipeline; BackendError, ValueError or OSError when a model backend cannot be made."""
    vlm = extractor_vlm = None
    if spec.needs_model:
        vlm, extractor_vlm = _backends(spec.backend, spec.model, spec.base_url, spec.max_attempts,
                                       spec.extract == "llm", spec.placement)
        vlm = with_convention(vlm, spec.coords)  # the extractor reads text only: no coordinates to convert
    if spec.oracle_agent:  # the rule plays the model: text and tool replies
        vlm = WorldOracleBackend(kind=spec.settings.agent_kind)
    via = spec.settings.via
    if via == "distill" and spec.teacher == ORACLE:
        teacher = WorldOracleTeacher()
    elif via == "distill":
        teacher = BackendTeacher(vlm, temperature=spec.temperature, max_tokens=spec.max_tokens)
    else:
        teacher = None
    pool = GrounderPool(spec.grounder, sam3_checkpoint=spec.sam3_checkpoint, placement=spec.placement)
    return SynthPipeline(spec.settings, pool,
                         teacher=teacher, extractor=SceneExtractor() if spec.extract == "scene" else
                         LLMExtractor(extractor_vlm), policy=spec.policy, vlm=vlm)


def _backends(kind: str, model: str | None, base_url: str | None, max_attempts: int, structured: bool,
              placement: Placement | None = None) -> tuple[VLMBackend, VLMBackend]:
    """The model backend, and the one extraction uses (on an OpenAI server: with the JSON schema enforced)."""
    if kind == "openai":
        options: dict[str, Any] = {"base_url": base_url, "max_attempts": max_attempts}
        vlm = make_backend("openai", model, **options)
        if not structured:
            return vlm, vlm
        extra = {"structured_outputs": {"json": EXTRACT_SCHEMA}}
        return vlm, make_backend("openai", vlm.model, **options, extra_body=extra)
    vlm = make_backend(kind, model, **(placement.as_dict() if placement else {}))
    return vlm, vlm


def run_config(spec: PipelineSpec, teacher: str, *, concurrency: int, workers: int, shard: str | None = None,
               limit: int | None = None) -> dict[str, Any]:
    """What a synth run records as its config."""
    s = spec.settings
    return {"via": s.via, "teacher": teacher, "k": s.k, "keep": s.keep, "extract": spec.extract, "coords": spec.coords,
            "policy": spec.policy, "grounder": spec.grounder, "temperature": spec.temperature,
            "max_tokens": spec.max_tokens, "concurrency": concurrency, "workers": workers, "shard": shard,
            "limit": limit, "kind": s.agent_kind, "protocol": s.agent_protocol,
            **(spec.placement.as_dict() if spec.placement else {})}


def run_name(samples: list[Sample], dataset: str, split: str | None, via: str, teacher: str) -> str:
    """The default run name: same command, same run (the sample selection is left out, so shards and
    limits extend one run)."""
    if samples:
        dataset, split = samples[0].dataset, samples[0].split
    return f"synth/{dataset}/{split or '-'}/{via}/{teacher}"


def run_id_for(name: str) -> str:
    """The run id of a run name: a re-run of the same command resumes the same run."""
    return "synth-" + short_hash("synth-run", name)[:12]


def run_totals(store: TraceStore, run_id: str) -> dict[str, int]:
    """Samples of the run in the store, over every session: kept, rejected, failed."""
    by_sample: dict[str, set[tuple[str, str]]] = {}
    traces = 0  # every row: a sample's several attempts of one variant (candidates) are one (variant, status)
    for sid, variant, status in store.db.execute(
            "select sample_id, variant, status from traces where run_id = ?", [run_id]):
        by_sample.setdefault(sid, set()).add((variant, status))
        traces += 1
    kept = sum(1 for rows in by_sample.values() if ("plain", "ok") in rows)
    failed = sum(1 for rows in by_sample.values() if all(status == "error" for _, status in rows))
    return {"samples": len(by_sample), "kept": kept, "rejected": len(by_sample) - kept - failed, "errors": failed,
            "traces": traces}


def run_synth(store: TraceStore, spec: PipelineSpec, pipeline: SynthPipeline, samples: list[Sample], *, name: str,
              backend: str, model: str | None, config: dict[str, Any], command: str | None = None,
              concurrency: int = 32, workers: int = 1, on_outcome: OnOutcome | None = None,
              max_error_share: float = 0.5, ray: RaySettings | None = None,
              base_urls: tuple[str, ...] = ()) -> dict[str, Any]:
    """Run (or resume) the synth run `name` over `samples` and record it in the store; returns its summary
    (`status` done | interrupted | failed, with `message`). A session in which every processed sample
    failed, or more than `max_error_share` of them, ends `failed`: its kept traces stay, but the run did not
    do its work. With `ray`, the samples run on Ray actors (`ray_engine`), spread over `base_urls` when
    several model servers are given; otherwise here, or in `workers` processes. KeyboardInterrupt marks the
    run interrupted and propagates; workers that cannot start raise WorkerError before the store is touched.
    Options that cannot run together raise SynthOptionError first (`options.py`)."""
    check_engine("ray" if ray is not None else "local", workers=workers, base_urls=base_urls)
    check_spec(spec, world=all(is_world_sample(s) for s in samples), workers=workers)
    run_id = run_id_for(name)
    with contextlib.ExitStack() as stack:
        pool = None
        if ray is not None:
            specs = [dataclasses.replace(spec, base_url=url) for url in base_urls] or [spec]
            pool = stack.enter_context(RaySampleWorkers([functools.partial(build_pipeline, s) for s in specs], ray))
        elif workers > 1:
            pool = stack.enter_context(SampleWorkers(functools.partial(build_pipeline, spec), processes=workers,
                                                     threads=math.ceil(concurrency / workers)))
        store.start_run("synth", run_id=run_id, name=name, command=command, backend=backend, model=model,
                        grounder=spec.grounder, config=config)
        done = store.finished_sample_ids(run_id)
        try:
            with StoreWriter(store.path) as writer:
                runner = BatchRunner(pipeline, writer, run_id, samples, done=done, concurrency=concurrency,
                                     workers=pool, on_outcome=on_outcome)
                stats = runner.run()
        except KeyboardInterrupt:
            store.end_run(run_id, status="interrupted")
            raise
    status = {None: "done", "interrupted": "interrupted"}.get(stats.stopped, "failed")
    if status == "done" and stats.processed and (stats.errors == stats.processed
                                                  or stats.errors > max_error_share * stats.processed):
        kinds = ", ".join(f"{kind} {n}" for kind, n in stats.errors_by.most_common())
        status, stats.message = "failed", f"{stats.errors} of {stats.processed} samples failed ({kinds})"
    summary = {"run_id": run_id, "run": name, "db": str(store.path), "status": status, **stats.to_dict(),
               "run_totals": run_totals(store, run_id)}
    store.end_run(run_id, status=status, error=stats.message if status == "failed" else None, metrics=summary)
    return summary
