"""One sample end to end, wherever it runs: on a thread of the batch runner or in a worker process.

The sample's records go to a `commit` callback: the batch runner's commits through the store writer,
a worker's collects them for the main process to commit. A sample's own failure (unreadable image,
model error, malformed output) becomes one error row, never an exception; resume redoes such samples.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vgt_agent.backends.base import BackendError
from vgt_agent.sample import Sample
from vgt_agent.store import ImageRecord, SampleRecord, TraceRecord
from vgt_agent.store.records import short_hash
from vgt_agent.synthesis.graph import run_synth
from vgt_agent.synthesis.pipeline import SynthPipeline

Commit = Callable[[str, list[TraceRecord]], None]  # (store sample id, one sample's records) -> committed


def store_sample_id(sample: Sample) -> str:
    """The id `SampleRecord.from_sample` gives this sample (what resume looks up)."""
    return SampleRecord.id_for(sample.dataset, sample.split, sample.id)


def error_record(run_id: str, sample: Sample, message: str, kind: str, backend: str | None, model: str | None
                 ) -> TraceRecord:
    """The row that records a failed sample (status "error"); resume redoes the sample."""
    try:
        image = ImageRecord.from_path(sample.image_path or "")
    except ValueError:
        path = str(sample.image_path or "")
        image = ImageRecord(short_hash("unreadable", path), path, 0, 0)
    record = SampleRecord.from_sample(sample, image)
    return TraceRecord(run_id, record, "error", "error", error=message, reason=kind, backend=backend, model=model,
                       meta={"kind": kind})


def teacher_label(pipeline: SynthPipeline) -> tuple[str | None, str | None]:
    """(backend, model) that error rows are labelled with."""
    teacher = pipeline.teacher or pipeline.vlm
    return getattr(teacher, "backend", None) or getattr(teacher, "name", None), getattr(teacher, "model", None)


def run_sample(pipeline: SynthPipeline, run_id: str, sample: Sample, commit: Commit) -> dict[str, Any]:
    """One sample end to end, its records handed to `commit`; never raises for the sample's own failures
    (they become an error row). Shared by the in-process runner and the worker processes."""
    sid = store_sample_id(sample)

    def write(records: list[TraceRecord]) -> None:
        commit(sid, records)

    try:
        ctx = pipeline.context(sample, run_id, write)
    except ValueError as e:
        return _failed(pipeline, run_id, sample, commit, str(e), "bad_sample")
    try:
        return run_synth(ctx)
    except BackendError as e:
        outcome = _failed(pipeline, run_id, sample, commit, str(e), "unreachable" if e.unreachable else "backend")
        outcome["unreachable"] = e.unreachable
        return outcome
    except Exception as e:  # noqa: BLE001 - a malformed sample or output must not end the batch
        return _failed(pipeline, run_id, sample, commit, f"{type(e).__name__}: {e}", type(e).__name__)


def _failed(pipeline: SynthPipeline, run_id: str, sample: Sample, commit: Commit, message: str, kind: str
            ) -> dict[str, Any]:
    commit(store_sample_id(sample), [error_record(run_id, sample, message, kind, *teacher_label(pipeline))])
    return {"status": "error", "kind": kind, "error": message, "reason": kind}
