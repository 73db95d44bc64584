"""World styles: the canonical style pinned byte for byte, the varied style's domain randomisation."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from vgt_agent.world.generate import make_sample
from vgt_agent.world.storage import make_split

# Computed before the varied style existed: the canonical world must never drift (shipped policy, tests).
CANONICAL_SAMPLES = [
    ("world-tally", 0, "63a218f1211f5b06"),
    ("world-tally", 7, "489f99b8300b9708"),
    ("world-countqa", 3, "a54199b0865f110d"),
    ("world-vsr", 2, "99caa0d9ab6006f7"),
    ("world-embspatial", 5, "afe9369fbda7a17a"),
    ("world-spatialmqa", 1, "ae41ac475ec11f38"),
    ("world-multihop", 4, "e5263ec74f18996a"),
    ("world-train", 0, "021158ebbbdbdc53"),
    ("world-train", 5, "1184e98e90c5ff79"),
]
CANONICAL_FOLDERS = [("world-countqa", "d4e42001df0dd206"), ("world-train", "aad7871785ebab22")]


@pytest.mark.parametrize(("split", "index", "digest"), CANONICAL_SAMPLES)
def test_canonical_sample_unchanged(split: str, index: int, digest: str) -> None:
    image, record = make_sample(split, index, style="canonical")
    got = hashlib.sha256(image.tobytes() + json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]
    assert got == digest


@pytest.mark.parametrize(("split", "digest"), CANONICAL_FOLDERS)
def test_canonical_folder_unchanged(tmp_path: Path, split: str, digest: str) -> None:
    out = tmp_path / split
    make_split(out, split, n=6, style="canonical")
    h = hashlib.sha256()
    for p in sorted((out / "images").iterdir()):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    h.update((out / "metadata.jsonl").read_bytes())
    assert h.hexdigest()[:16] == digest
