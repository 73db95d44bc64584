"""Stored traces for training/eval tests, built from world samples' gold masks (no `vgt synth` needed).

Each sample gets point, box and plain variants of one templated thought, the way synthesis stores them:
the same reasoning, with tags on the reference objects (points = mask interior maxima, boxes = tight boxes),
or stripped of them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vgt_agent.format import render_grounding, strip_groundings
from vgt_agent.geometry import decode_rle, mask_to_box, mask_to_point, norm_from_pixel_box, norm_from_pixel_point
from vgt_agent.sample import Sample
from vgt_agent.store import GroundingRecord, ImageRecord, SampleRecord, TraceRecord, TraceStore
from vgt_agent.training.references import specs_from_gold
from vgt_agent.world.storage import load_split, make_split


def world_samples(root: Path, split: str = "world-tally", n: int = 6) -> list[Sample]:
    """The first `n` samples of a world split, generated into `root/split`."""
    out = root / split
    if not out.exists():
        make_split(out, split, n=n)
    return list(load_split(out))


def tag(name: str, rles: list[dict], kind: str, height: int, width: int) -> str:
    """A correct tag for a reference object: one point or box per instance mask."""
    coords = []
    for rle in rles:
        mask = decode_rle(rle)
        if kind == "point":
            col, row = mask_to_point(mask)
            coords.append(norm_from_pixel_point(col + 0.5, row + 0.5, width, height))
        else:
            coords.append(norm_from_pixel_box(mask_to_box(mask), width, height))
    return render_grounding(name, kind, coords)


def thought(sample: Sample, kind: str | None) -> str:
    """`<think>` naming each reference object (grounded when `kind` is given), then the boxed gold answer."""
    width, height = sample.meta["width"], sample.meta["height"]
    specs = specs_from_gold(sample.gold_objects, height, width, sample.question) or []
    parts = ["<think>I look at the image."]
    for spec in specs:
        grounded = tag(spec["name"], spec["rles"], kind or "point", height, width)
        parts.append(f" I find the {grounded}.")
    parts.append(f" So the answer is {sample.answer}.</think> \\boxed{{{sample.answer}}}")
    text = "".join(parts)
    return text if kind else strip_groundings(text)


def store_world_traces(store: TraceStore, samples: list[Sample], run_id: str = "synth-test",
                       variants: tuple[str, ...] = ("point", "box", "plain")) -> str:
    """Write one correct trace per sample and variant under a finished run; returns the run id."""
    store.start_run("synth", run_id=run_id, grounder="gold")
    for sample in samples:
        record = SampleRecord.from_sample(sample, ImageRecord.from_path(sample.image_path))
        for variant in variants:
            text = thought(sample, None if variant == "plain" else variant)
            groundings = [GroundingRecord("x", variant, [[1, 1]])] if variant != "plain" else []
            store.put_trace(TraceRecord(run_id, record, variant, completion=text, answer=sample.answer,
                                        answer_source="boxed", correct=True, groundings=groundings))
    store.end_run(run_id)
    return run_id


def random_masks(rng: np.random.Generator, n: int, size: int = 64) -> np.ndarray:
    rr, cc = np.mgrid[:size, :size]
    masks = np.zeros((n, size, size), dtype=bool)
    for k in range(n):
        cy, cx = rng.uniform(10, size - 10, 2)
        masks[k] = (rr - cy) ** 2 + (cc - cx) ** 2 <= 16
    return masks


def store_oracle_agent_traces(db: Path, samples: list[Sample]) -> list:
    """A synth run of agent traces in `db`: the world-oracle playing the model in the ask graph, with the world
    grounder's masks read from the scene graph and shuffled; returns each sample's `RunResult`."""
    from vgt_agent.backends.world_oracle import WorldOracleBackend
    from vgt_agent.grounders.shuffled_gold import ShuffledGoldGrounder
    from vgt_agent.tiny.agent_runs import run_split

    oracle = WorldOracleBackend()
    with TraceStore.open(db) as store:
        run_id = store.start_run("synth", backend=oracle.name, model=oracle.model, grounder="gold-shuffled")
        results = list(run_split(oracle, samples, grounder_for=ShuffledGoldGrounder, store=store, run_id=run_id))
        store.end_run(run_id)
    return results
