"""TRL-ready datasets from the trace store (or straight from a dataset, for RL).

SFT: one conversational row per stored trace of the target variant (`point`, `box`, `plain` = non-grounded
thinking) under that variant's system prompt, or `direct`: one row per traced sample whose target is just
`\\boxed{gold}`, or `agent`: one row per tool-calling trace, trained on the policy's own turns only, as the
ask loop shows them (see `training/agent_data.py`).
RL: one prompt per sample, with the gold answer, its type, the options, and the reference
objects the grounding reward scores against (gold masks where the dataset has them, else the masks synthesis
stored). Train and eval are split by image hash, so no image is on both sides however many questions it has.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vgt_agent.format.coord_text import from_canonical_text
from vgt_agent.geometry.conventions import CANONICAL, Convention
from vgt_agent.home import vgt_home
from vgt_agent.prompts import AGENT, AGENT_TEXT_TOOL, VARIANT_PROMPTS, format_question, in_convention
from vgt_agent.sample import Sample
from vgt_agent.store import ImageRecord, SampleRecord, TraceStore
from vgt_agent.store.export import conversation, to_sft_dataset
from vgt_agent.training.references import references_json, specs_from_gold, specs_from_masks
from vgt_agent.vocabulary import VARIANTS

SYSTEM_PROMPTS: dict[str, str] = {**VARIANT_PROMPTS, AGENT: AGENT_TEXT_TOOL}
"""System prompt per SFT variant: `agent` is what `graphs/ask.py` sends with the in-text tool protocol."""


class DataError(ValueError):
    """The store or dataset cannot give the asked-for training data (one line, for the CLI's exit 2)."""


def check_variant(variant: str, allowed: tuple[str, ...] = VARIANTS) -> str:
    if variant not in allowed:
        raise DataError(f"unknown variant {variant!r}; expected one of {', '.join(allowed)}")
    return variant


def direct_completion(row: dict[str, Any]) -> str:
    """The `direct` target: the gold answer alone, boxed."""
    return f"\\boxed{{{row['gold_answer']}}}"


def user_text(row: dict[str, Any]) -> str:
    return format_question(row["question"], tuple(row.get("choices") or ()))


def trace_rows(store: TraceStore, variant: str, *, run: str | None = None, dataset: str | None = None,
               verified_only: bool = True) -> list[dict[str, Any]]:
    """The stored traces an SFT set is made of: status ok, of the variant, correct answers only when
    `verified_only`; for `direct`, one row per traced sample with a gold answer (the target is the gold);
    for `agent`, only traces of synthesis runs (never eval or ask logs, which may be benchmark samples)."""
    check_variant(variant)
    direct = variant == "direct"
    rows = list(store.traces(run=run, dataset=dataset, variant=None if direct else variant,
                             correct=True if verified_only and not direct else None, status="ok"))
    if variant == AGENT:  # `vgt ask` and agent-mode evals log "agent" traces too: train on synthesis only
        rows = [r for r in rows if r["run_kind"] == "synth"]
    if direct:
        by_sample: dict[str, dict[str, Any]] = {}
        for r in rows:
            if r["gold_answer"] is not None:
                by_sample.setdefault(r["sample_id"], r)
        rows = list(by_sample.values())
    return rows


def sft_dataset(store: TraceStore, variant: str, *, run: str | None = None, dataset: str | None = None,
                verified_only: bool = True, seed: int = 0, convention: Convention = CANONICAL):
    """A dataset for TRL's SFTTrainer: conversational VLM rows (`images`, `messages`, ids), or for `agent` the
    trace rows `agent_data.AgentCollator` turns into the ask loop's views (`seed` draws their reply newlines).
    Coordinates are written in the trained model's `convention`."""
    rows = trace_rows(store, variant, run=run, dataset=dataset, verified_only=verified_only)
    if not rows:
        what = ", ".join(f"{k}={v}" for k, v in (("run", run), ("dataset", dataset)) if v)
        raise DataError(f"no {'verified ' if verified_only and variant != 'direct' else ''}{variant} traces "
                        f"in {store.path}"
                        + (f" for {what}" if what else "") + "; run `vgt synth` first or relax the filters")
    if variant == AGENT:
        from vgt_agent.training.agent_data import agent_dataset  # torch: only when training agents

        return agent_dataset(rows, seed, convention)
    target = direct_completion if variant == "direct" else (lambda r: r["completion"])
    system = in_convention(SYSTEM_PROMPTS[variant], convention)
    return to_sft_dataset(store, system_prompt=system, rows=rows, question=user_text,
                          completion=lambda r: from_canonical_text(target(r), convention, r["width"], r["height"]))


# --- splitting by image ---------------------------------------------------------------------------------


def image_bucket(image_hash: str, seed: int = 0) -> float:
    """A stable pseudo-random number in [0, 1) per image: the same image always falls on the same side."""
    digest = hashlib.sha256(f"{seed}:{image_hash}".encode()).hexdigest()
    return int(digest[:15], 16) / 16**15


def split_by_image(ds: Any, eval_fraction: float, seed: int = 0) -> tuple[Any, Any | None]:
    """(train, eval) with every image wholly on one side; eval is None when `eval_fraction` is 0.

    A small set whose hashes all land on the train side still gets one eval image (if it has two or more).
    """
    if not 0.0 <= eval_fraction < 1.0:
        raise DataError(f"eval fraction must be in [0, 1), got {eval_fraction}")
    if eval_fraction == 0.0:
        return ds, None
    hashes = sorted(set(ds["image_hash"]))
    held = {h for h in hashes if image_bucket(h, seed) < eval_fraction}
    if not held and len(hashes) > 1:
        held = {min(hashes, key=lambda h: image_bucket(h, seed))}
    if len(held) == len(hashes):
        held.discard(max(hashes, key=lambda h: image_bucket(h, seed)))
    flags = [h in held for h in ds["image_hash"]]
    train = ds.select([i for i, f in enumerate(flags) if not f])
    held_out = ds.select([i for i, f in enumerate(flags) if f])
    return train, (held_out if len(held_out) else None)


# --- RL prompts -----------------------------------------------------------------------------------------


def rl_prompt(question: str, choices: Iterable[str], variant: str) -> list[dict[str, Any]]:
    """System (the variant's prompt) + user (image, question with options): what the policy is asked."""
    return conversation(format_question(question, tuple(choices)), "",
                        SYSTEM_PROMPTS[check_variant(variant)])[:-1]


def _rl_row(variant: str, *, question: str, choices: Iterable[str], gold: str | None, answer_type: str | None,
            image_path: str, image_hash: str, sample_id: str, dataset: str, references: str, width: int,
            height: int) -> dict[str, Any]:
    return {"prompt": rl_prompt(question, choices, variant), "image": image_path, "gold_answer": gold,
            "answer_type": answer_type, "choices": list(choices), "variant": variant, "references": references,
            "sample_id": sample_id, "image_hash": image_hash, "dataset": dataset, "width": width, "height": height}


def _sample_meta(store: TraceStore, sample_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Sample id -> its stored meta (gold objects live there; `traces()` rows do not carry it)."""
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(sample_ids), 500):
        chunk = sample_ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for row in store.db.query(f"select id, meta from samples where id in ({marks})", chunk):
            out[row["id"]] = json.loads(row["meta"]) if row["meta"] else {}
    return out


def rl_rows_from_store(store: TraceStore, variant: str, *, run: str | None = None,
                       dataset: str | None = None) -> list[dict[str, Any]]:
    """One RL prompt per sample that has traces under the filters; references from the sample's gold
    objects, else from the masks stored with its traces."""
    check_variant(variant)
    by_sample: dict[str, list[dict[str, Any]]] = {}
    for r in store.traces(run=run, dataset=dataset):
        if r["gold_answer"] is not None and r["answer_type"]:
            by_sample.setdefault(r["sample_id"], []).append(r)
    metas = _sample_meta(store, list(by_sample))
    rows = []
    for sample_id, traces in by_sample.items():
        first = traces[0]
        meta = metas.get(sample_id, {})
        specs = None
        if "gold_objects" in meta:
            specs = specs_from_gold(meta["gold_objects"], first["height"], first["width"], first["question"])
        if specs is None:
            specs = next((s for t in traces if (s := specs_from_masks((store.trace(t["id"]) or {}).get("masks", [])))),
                         [])
        rows.append(_rl_row(variant, question=first["question"], choices=first.get("choices") or [],
                            gold=first["gold_answer"], answer_type=first["answer_type"],
                            image_path=first["image_path"], image_hash=first["image_hash"], sample_id=sample_id,
                            dataset=first["dataset"], references=references_json(specs, first["height"],
                                                                                 first["width"]),
                            width=first["width"], height=first["height"]))
    return rows


def image_record(sample: Sample) -> ImageRecord:
    """The sample's image as a stored-image record; an embedded image is written once under
    `$VGT_HOME/images/<dataset>/<sha256>.png` so traces can point at a file."""
    if sample.image_path and Path(sample.image_path).is_file():
        return ImageRecord.from_path(sample.image_path)
    if sample.image is None:
        raise DataError(f"sample {sample.id}: image {sample.image_path or '(none)'} is not on disk")
    buffer = io.BytesIO()
    sample.image.convert("RGB").save(buffer, format="PNG")
    data = buffer.getvalue()
    path = vgt_home() / "images" / sample.dataset / f"{hashlib.sha256(data).hexdigest()}.png"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return ImageRecord.from_path(path)


def rl_rows_from_samples(samples: Iterable[Sample], variant: str) -> list[dict[str, Any]]:
    """One RL prompt per dataset sample, references from its gold objects (no store needed)."""
    check_variant(variant)
    rows = []
    for sample in samples:
        image = image_record(sample)
        specs = specs_from_gold(sample.gold_objects, image.height, image.width, sample.question) or []
        rows.append(_rl_row(variant, question=sample.question, choices=sample.choices, gold=sample.answer,
                            answer_type=sample.answer_type, image_path=image.path, image_hash=image.hash,
                            sample_id=SampleRecord.from_sample(sample, image).id, dataset=sample.dataset,
                            references=references_json(specs, image.height, image.width), width=image.width,
                            height=image.height))
    return rows


def rl_dataset(rows: list[dict[str, Any]], convention: Convention = CANONICAL):
    """A `datasets.Dataset` for GRPOTrainer: conversational `prompt` + `image`, and the reward columns. The
    system prompts speak of coordinates in the trained model's `convention`."""
    import datasets

    if not rows:
        raise DataError("no RL prompts: no sample with a gold answer matched")
    if convention != CANONICAL:
        def said(message: dict[str, Any]) -> dict[str, Any]:
            return {**message, "content": [{**p, "text": in_convention(p["text"], convention)} if p.get("text")
                                           else p for p in message["content"]]}

        rows = [{**r, "prompt": [said(m) for m in r["prompt"]]} for r in rows]
    text = datasets.Value("string")
    features = datasets.Features({
        "prompt": [{"role": text, "content": [{"type": text, "text": text}]}],
        "image": datasets.Image(),
        "gold_answer": text, "answer_type": text, "choices": datasets.Sequence(text), "variant": text,
        "references": text, "sample_id": text, "image_hash": text, "dataset": text,
        "width": datasets.Value("int32"), "height": datasets.Value("int32"),  # the frame of convention rewards
    })
    return datasets.Dataset.from_dict({k: [r[k] for r in rows] for k in features}, features=features)
