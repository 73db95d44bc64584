"""The WorldGrounder's shared passes over an image's regions give what the one-region code gives, value for
value (`shapefit_many` against `shapefit`), and its cache hits only on the same pixels."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vgt_agent.grounders import shapefit, shapefit_many
from vgt_agent.grounders import world as world_grounder
from vgt_agent.grounders.world import WorldGrounder
from vgt_agent.world.storage import load_split, make_split

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flat_shapes import draw_scene  # noqa: E402


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Image.Image]:
    root = tmp_path_factory.mktemp("splits")
    out = []
    for split, n in (("world-countqa", 6), ("world-countqa-varied", 4), ("world-tally", 3)):
        make_split(root / split, split, n=n)
        out += [sample.load_image().convert("RGB") for sample in load_split(root / split)]
    rng = np.random.default_rng(3)
    return out + [draw_scene(rng)[0].convert("RGB") for _ in range(4)]


def _pending(image: Image.Image) -> list:
    components = WorldGrounder()._segmentation(image).components
    return [(c, c.colour_of) for c in components]


def _same_evidence(a: shapefit.Evidence, b: shapefit.Evidence) -> bool:
    arrays = all(np.array_equal(getattr(a, f), getattr(b, f)) and getattr(a, f).dtype == getattr(b, f).dtype
                 for f in ("inside", "outline", "outside"))
    return arrays and (a.area, a.centroid, a.occluded) == (b.area, b.centroid, b.occluded)


def test_stacked_evidence_and_extents_are_each_regions_own(images: list[Image.Image]) -> None:
    touching = 0
    for image in images:
        pending = _pending(image)
        jobs = world_grounder._fit_jobs(pending)
        for (c, colour_of), job in zip(pending, jobs, strict=True):
            pad = world_grounder._PAD
            (r0, c0), (bh, bw) = c.corner, c.pixels.shape
            region = np.zeros((bh + 2 * pad, bw + 2 * pad), dtype=bool)
            region[pad:-pad, pad:-pad] = c.pixels
            window = world_grounder._window(colour_of, r0 - pad, c0 - pad, region.shape, fill=world_grounder._OUTSIDE)
            spacing = world_grounder._spacing(min(shapefit.size_radii(min(colour_of.shape)).values()), (bh, bw))
            alone = shapefit.evidence(region, world_grounder._hidden(c.index, window), (r0 - pad, c0 - pad), spacing)
            assert _same_evidence(job.ev, alone)
            assert job.extent == world_grounder._extent(alone.outline)
            touching += job.ev.occluded
    assert touching >= 5  # the touching and partly hidden regions are among them


def test_fitting_together_gives_each_regions_own_fits(images: list[Image.Image]) -> None:
    hidden = 0
    for image in images:
        jobs = world_grounder._fit_jobs(_pending(image))
        together = shapefit_many.fit_many(jobs)
        for job, fits in zip(jobs, together, strict=True):
            assert fits == shapefit.fit_shapes(job.ev, job.extent, job.bounds, job.wider)
            hidden += job.ev.occluded and bool(fits) and fits[0].center != job.ev.centroid
    assert hidden >= 2  # some regions went through the search over hidden parts


def test_the_cache_hits_only_on_the_same_pixels() -> None:
    image = Image.new("RGB", (200, 120), (230, 230, 225))
    image.paste((220, 30, 30), (40, 30, 90, 80))
    grounder = WorldGrounder()
    first = grounder.segment(image)
    assert grounder.segment(image.copy()) == first and grounder.segmentations == 1
    # The same size and the same sampled bytes (the cache key), other pixels: segmented anew.
    drawn = image.copy()
    drawn.paste((30, 30, 220), (120, 30, 170, 80))
    data = bytearray(drawn.tobytes())
    data[:: world_grounder._KEY_STRIDE] = image.tobytes()[:: world_grounder._KEY_STRIDE]
    other = Image.frombytes("RGB", image.size, bytes(data))
    assert other.tobytes() != image.tobytes()
    regions = grounder.segment(other)
    assert grounder.segmentations == 2 and sorted(r.colour for r in regions) == ["blue", "red"]
    assert grounder.segment(image)[0].colour == "red" and grounder.segmentations == 3  # the entry was replaced
