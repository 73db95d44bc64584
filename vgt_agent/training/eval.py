"""`vgt eval`: accuracy over N samples and pass@N per benchmark, grounding scores where references exist.

Each generation is a trace of an `eval` run in the store (variant = the trained variant the mode asks for,
or `agent`), so an interrupted eval resumes by run id and `vgt eval report` reads everything back. Metrics
are always recomputed from the stored traces: accuracy = mean over all generations, pass@N = share of
samples with at least one correct generation out of N, grounding = mean `sample_grounding_score` against
the gold references (the reward's own scorer) over generations of samples that have references.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from vgt_agent.answers import check_answer
from vgt_agent.backends.base import BackendError, VLMBackend
from vgt_agent.devices import Placement
from vgt_agent.format import parse
from vgt_agent.grounding_scores import ReferenceObject, reference_matches
from vgt_agent.images import load_image
from vgt_agent.prompts import VARIANT_PROMPTS, image_question_messages
from vgt_agent.reference_routing import Router
from vgt_agent.sample import Sample
from vgt_agent.store import GroundingRecord, SampleRecord, TraceRecord, TraceStore
from vgt_agent.training.data import image_record
from vgt_agent.training.references import decode_references, references_json, specs_from_gold
from vgt_agent.vocabulary import AGENT, VARIANTS

MODES = ("direct", "think", "point", "box")
MODE_VARIANT = {"direct": "direct", "think": "plain", "point": "point", "box": "box"}
MODE_LABELS = {"direct": "Direct answer", "think": "Non-grounded thinking", "point": "Point", "box": "Box"}

Progress = Callable[[str, int, int], None]  # (benchmark, done, total)


class EvalError(ValueError):
    """An eval that cannot start as asked (one line, for the CLI's exit 2)."""


def eval_mode(variant: str, grounding: str | None = None) -> tuple[str, bool]:
    """(mode, agent) of an eval of `variant` (`vocabulary.VARIANTS`): the agent's mode is its tool replies'
    `grounding` (point by default); the other variants write their own groundings, so take none."""
    if variant == AGENT:
        return grounding or "point", True
    if grounding is not None:
        raise EvalError(f"--grounding is the form of the agent's tool replies; --variant {variant} writes its own")
    modes = {v: m for m, v in MODE_VARIANT.items()}
    if variant not in modes:
        raise EvalError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    return modes[variant], False


@dataclass(frozen=True)
class EvalSpec:
    """What to evaluate and how; `samples` generations per question at `temperature` (paper: 4 at 1.0)."""

    benchmarks: tuple[str, ...]
    mode: str = "point"
    samples: int = 4
    temperature: float = 1.0
    limit: int | None = None
    max_tokens: int = 1024
    agent: bool = False
    grounder: str = "world"
    sam3_checkpoint: str | None = None
    workers: int = 1
    max_groundings: int = 32
    placement: Placement | None = None  # where the in-process models (VLM, SAM3) run, as --device/--dtype resolved


@dataclass
class Benchmark:
    """One benchmark's samples with their stored records and gold references."""

    name: str
    group: str
    samples: list[Sample]
    records: list[SampleRecord]
    references: list[tuple[ReferenceObject, ...]]


def benchmark_key(sample: Sample) -> str:
    """The benchmark a sample belongs to: its dataset, or for the embedded world its split."""
    return sample.split if sample.dataset == "world" else sample.dataset


def benchmark_group(name: str) -> str:
    """counting | spatial | other, from the dataset registry."""
    from vgt_agent.datasets import DATASETS

    spec = DATASETS.get(name)
    return spec.kind if spec is not None and spec.kind in ("counting", "spatial") else "other"


def load_benchmarks(names: Sequence[str], limit: int | None) -> list[Benchmark]:
    """Every named benchmark's samples (a registry name or a world/local folder); EvalError if one is missing."""
    from vgt_agent.datasets import DatasetUnavailable, load_samples

    out = []
    for name in names:
        try:
            samples = list(load_samples(name, limit=limit))
        except (DatasetUnavailable, FileNotFoundError, ValueError, KeyError) as e:
            raise EvalError(f"benchmark {name!r}: {str(e).strip().splitlines()[0]}") from e
        if not samples:
            raise EvalError(f"benchmark {name!r} has no samples")
        records, references = [], []
        for s in samples:
            try:
                image = image_record(s)
            except ValueError as e:
                raise EvalError(f"benchmark {name!r}: {e}") from e
            records.append(SampleRecord.from_sample(s, image))
            specs = specs_from_gold(s.gold_objects, image.height, image.width, s.question) or []
            references.append(decode_references(references_json(specs, image.height, image.width)))
        key = benchmark_key(samples[0])
        out.append(Benchmark(key, benchmark_group(key), samples, records, references))
    return out


def messages_for(sample: Sample, mode: str) -> list[dict[str, Any]]:
    """System prompt of the mode's variant, then the image and the question with its options."""
    return image_question_messages(VARIANT_PROMPTS[MODE_VARIANT[mode]], sample.question, sample.choices)


def score_completion(text: str, refs: Sequence[ReferenceObject], *, router: Router | None = None,
                     max_groundings: int = 32) -> tuple[float | None, list[GroundingRecord]]:
    """The sample grounding score of a completion (None without references) and its groundings as records,
    each with its score when it is the grounding that counts for a reference object."""
    groundings = parse(text).groundings
    scored: dict[int, tuple[float, bool]] = {}
    score = None
    if refs:
        matches = reference_matches(groundings, refs, text, router=router, max_groundings=max_groundings)
        scored = {g: (s.score, s.verified) for g, s in matches if g is not None}
        score = float(np.mean([s.score for _, s in matches]))
    records = [GroundingRecord(g.phrase, g.kind, [list(c) for c in g.coords], "model",
                               scored[i][1] if i in scored else None, scored[i][0] if i in scored else None, g.span)
               for i, g in enumerate(groundings)]
    return score, records


def _generate(backend: VLMBackend, sample: Sample, record: SampleRecord,
              spec: EvalSpec) -> tuple[str, str, dict[str, float], int]:
    image = load_image(record.image.path)
    started = time.perf_counter()
    gen = backend.generate(messages_for(sample, spec.mode), [image], max_tokens=spec.max_tokens,
                           temperature=spec.temperature)
    return gen.text, gen.finish_reason, {"total_s": time.perf_counter() - started}, gen.completion_tokens


def _trace(run_id: str, bench: Benchmark, i: int, attempt: int, spec: EvalSpec, backend: VLMBackend,
           result: tuple[str, str, dict[str, float], int] | BaseException,
           router: Router | None) -> TraceRecord:
    sample, record = bench.samples[i], bench.records[i]
    variant = MODE_VARIANT[spec.mode]
    if isinstance(result, BaseException):
        return TraceRecord(run_id, record, variant, status="error", attempt=attempt, error=str(result),
                           backend=backend.name, model=backend.model, meta={"benchmark": bench.name})
    text, finish, timings, tokens = result
    check = check_answer(text, sample.answer, sample.answer_type, sample.choices)
    score, groundings = score_completion(text, bench.references[i], router=router, max_groundings=spec.max_groundings)
    verified = [g.verified for g in groundings if g.verified is not None]
    return TraceRecord(
        run_id, record, variant, attempt=attempt,
        messages=[*messages_for(sample, spec.mode), {"role": "assistant", "content": text}],
        completion=text, answer=check.predicted if check.predicted is not None else check.extracted,
        answer_source=check.source, correct=check.correct, reason=finish,
        verified_fraction=float(np.mean(verified)) if verified else None, backend=backend.name, model=backend.model,
        timings=timings, groundings=groundings,
        meta={"benchmark": bench.name, "grounding_score": score, "completion_tokens": tokens, "mode": spec.mode})


def _done(store: TraceStore, run_id: str) -> set[tuple[str, int]]:
    return {(r["sample_id"], r["attempt"]) for r in store.traces(run=run_id) if r["status"] != "error"}


def run_eval(store: TraceStore, backend: VLMBackend, spec: EvalSpec, benchmarks: list[Benchmark], run_id: str, *,
             router: Router | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Generate what the run is missing (all of it, or the rest after an interruption), then its metrics.

    A backend that cannot be reached raises BackendError (the run can be resumed); a request that fails
    otherwise becomes an error trace, which counts as wrong and is generated again on resume.
    """
    done = _done(store, run_id)
    for bench in benchmarks:
        todo = [(i, a) for i in range(len(bench.samples)) for a in range(spec.samples)
                if (bench.records[i].id, a) not in done]
        total, finished = len(bench.samples) * spec.samples, len(bench.samples) * spec.samples - len(todo)
        if progress:
            progress(bench.name, finished, total)
        if spec.agent:
            grounders: dict[str, Any] = {}
            for i, a in todo:
                _ask(store, backend, spec, bench, i, a, run_id, grounders)
                finished += 1
                if progress:
                    progress(bench.name, finished, total)
            continue
        pool = ThreadPoolExecutor(max_workers=max(1, spec.workers))
        try:
            futures = {(i, a): pool.submit(_generate, backend, bench.samples[i], bench.records[i], spec)
                       for i, a in todo}
            for (i, a), future in futures.items():  # in order; the store is written from this thread only
                try:
                    result: Any = future.result()
                except BackendError as e:
                    if not e.unreachable:
                        result = e  # one failed request: an error trace, counted wrong, retried on resume
                    else:  # a dead server ends the run (resumable), not N error traces
                        raise
                store.put_trace(_trace(run_id, bench, i, a, spec, backend, result, router))
                finished += 1
                if progress:
                    progress(bench.name, finished, total)
        except BaseException:  # Ctrl-C, SIGTERM, a dead server: stop at once, not after the requests in flight
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
    return eval_metrics(store, run_id, benchmarks, spec.samples, router=router, max_groundings=spec.max_groundings)


def _ask(store: TraceStore, backend: VLMBackend, spec: EvalSpec, bench: Benchmark, i: int, attempt: int,
         run_id: str, grounders: dict[str, Any]) -> None:
    """Agent mode: the ask graph answers (calling the grounder) and logs its own trace. The gold grounders
    are per sample; others are built once."""
    from vgt_agent.graphs.ask import AskContext, AskLimits, run_ask
    from vgt_agent.grounders.factory import PER_SAMPLE, make_grounder

    sample = bench.samples[i]
    if spec.grounder in PER_SAMPLE or spec.grounder not in grounders:
        grounders[spec.grounder] = make_grounder(spec.grounder, sample=sample, sam3_checkpoint=spec.sam3_checkpoint,
                                                     placement=spec.placement)
    grounder = grounders[spec.grounder]
    image = load_image(bench.records[i].image.path)
    ctx = AskContext(image=image, sample=bench.records[i], backend=backend, grounder=grounder,
                     kind="box" if spec.mode == "box" else "point", store=store, run_id=run_id, variant="agent",
                     attempt=attempt, limits=AskLimits(max_tokens=spec.max_tokens, temperature=spec.temperature))
    run_ask(ctx)


def eval_metrics(store: TraceStore, run_id: str, benchmarks: list[Benchmark], samples: int, *,
                 router: Router | None = None, max_groundings: int = 32) -> dict[str, Any]:
    """Per benchmark, from the run's stored traces: acc, pass@N, grounding, and format statistics."""
    where: dict[str, tuple[Benchmark, int]] = {r.id: (b, i) for b in benchmarks for i, r in enumerate(b.records)}
    rows = [r for r in store.traces(run=run_id) if r["sample_id"] in where]
    out: dict[str, Any] = {}
    for bench in benchmarks:
        mine = [r for r in rows if where[r["sample_id"]][0] is bench]
        by_sample: dict[str, list[bool]] = {}
        grounding, tokens = [], []
        for r in mine:
            by_sample.setdefault(r["sample_id"], []).append(bool(r["correct"]))
            refs = bench.references[where[r["sample_id"]][1]]
            if refs and r["status"] == "ok":
                grounding.append(score_completion(r["completion"] or "", refs, router=router,
                                                  max_groundings=max_groundings)[0])
            if isinstance((r.get("meta") or {}).get("completion_tokens"), int):
                tokens.append(r["meta"]["completion_tokens"])
        n = len(mine)
        out[bench.name] = {
            "group": bench.group, "samples": len(by_sample), "generations": n, "k": samples,
            "acc": float(np.mean([c for cs in by_sample.values() for c in cs])) if n else None,
            "pass@k": float(np.mean([any(cs) for cs in by_sample.values()])) if by_sample else None,
            "grounding": float(np.mean(grounding)) if grounding else None,
            "boxed_rate": float(np.mean([r["answer_source"] == "boxed" for r in mine])) if n else None,
            "truncated_rate": float(np.mean([r["reason"] in ("length", "max_tokens") for r in mine])) if n else None,
            "errors": sum(r["status"] == "error" for r in mine),
            "mean_completion_tokens": float(np.mean(tokens)) if tokens else None,
        }
    return {"benchmarks": out}


def run_config(spec: EvalSpec, label: str, stage: str, provenance: dict[str, Any] | None) -> dict[str, Any]:
    """What an eval run records as its config (`vgt eval report` reads label, stage, mode and agent back)."""
    return {"label": label, "stage": stage, "mode": spec.mode, "agent": spec.agent,
            "benchmarks": list(spec.benchmarks), "samples": spec.samples, "temperature": spec.temperature,
            "limit": spec.limit, "max_tokens": spec.max_tokens, "grounder": spec.grounder if spec.agent else None,
            "provenance": provenance, **(spec.placement.as_dict() if spec.placement else {})}


def default_label(mode: str, agent: bool, provenance: dict[str, Any] | None) -> tuple[str, str]:
    """(row label, stage) for the report: Base for untrained models, else mode · SFT / RL [+ r_ground]."""
    name = MODE_LABELS[mode] + (" (agent)" if agent else "")
    if provenance is None:
        return ("Base" if mode == "direct" and not agent else f"Base · {name}"), "base"
    if provenance.get("stage") == "rl":
        grounded = (provenance.get("reward_weights") or {}).get("grounding", 0) > 0 and mode in ("point", "box")
        return (f"{name} · RL + r_ground", "rl+ground") if grounded else (f"{name} · RL", "rl")
    return f"{name} · SFT", "sft"
