"""Named splits: six benchmarks mirroring the paper's evaluation, and a train split mixing all families.

Each split has its own seed, so benchmark images are never train images; a sample is a pure function of
(split seed, index, style), see generate.make_sample. The benchmarks are drawn in the canonical style and
each has a `-varied` twin (same families and look probabilities, its own seed) in the varied style; world-train
is varied.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from vgt_agent.world.style import Look


@dataclass(frozen=True)
class SplitSpec:
    """What a split asks about and how its scenes look. Probabilities are per sample."""

    name: str
    families: tuple[str, ...]
    seed: int
    n: int
    min_objects: int
    max_objects: int
    occlusion: float = 0.0
    texture: float = 0.3
    distractors: float = 0.3
    width: int = 448
    height: int = 448
    description: str = ""
    style: str = "canonical"  # "canonical" | "varied", see style.py
    look: Look | None = None  # set per sample by generate.make_question in the varied style
    fixed_size: bool = False  # varied style: keep width x height rather than draw a size per sample


_SPLITS = (
    SplitSpec(
        "world-tally", ("count_colour_shape",), seed=1001, n=200, min_objects=1, max_objects=20,
        occlusion=0.0, texture=0.3, distractors=0.3,
        description="counting colour+shape objects among up to 20 (TallyQA-like)",
    ),
    SplitSpec(
        "world-countqa", ("count_not_colour", "count_shape"), seed=1002, n=200, min_objects=3, max_objects=16,
        occlusion=0.7, texture=0.5, distractors=0.5,
        description="harder counting: 'not X' and shape-only, with occlusion (CountQA-like)",
    ),
    SplitSpec(
        "world-vsr", ("relation_yes_no",), seed=1003, n=200, min_objects=2, max_objects=8,
        occlusion=0.2, texture=0.3, distractors=0.3,
        description="yes/no left/right/above/below between two objects (VSR-like)",
    ),
    SplitSpec(
        "world-embspatial", ("relation_choice",), seed=1004, n=200, min_objects=2, max_objects=8,
        occlusion=0.2, texture=0.3, distractors=0.3,
        description="multiple-choice dominant direction between two objects (EmbSpatial-like)",
    ),
    SplitSpec(
        "world-spatialmqa", ("closer", "larger"), seed=1005, n=200, min_objects=3, max_objects=8,
        occlusion=0.2, texture=0.3, distractors=0.3,
        description="which of two objects is closer to a third / larger (SpatialMQA-like)",
    ),
    SplitSpec(
        "world-multihop", ("kth_relation",), seed=1006, n=200, min_objects=4, max_objects=10,
        occlusion=0.2, texture=0.3, distractors=0.3,
        description="relative position of the k-th leftmost/topmost object of a kind (multi-hop)",
    ),
    SplitSpec(
        "world-exist", ("exist",), seed=1007, n=200, min_objects=1, max_objects=12,
        occlusion=0.2, texture=0.3, distractors=0.3,
        description="is there a ... / are there any ...: yes/no existence, in the words people type",
    ),
    SplitSpec(
        "world-attribute", ("attribute", "attribute_relation"), seed=1008, n=200, min_objects=3, max_objects=8,
        occlusion=0.2, texture=0.3, distractors=0.3,
        description="what colour / what shape is the largest, the only ..., the one left of ...: a word",
    ),
    SplitSpec(
        "world-phrased", ("count_phrased", "spatial_phrased"), seed=1009, n=200, min_objects=2, max_objects=14,
        occlusion=0.2, texture=0.3, distractors=0.3,
        description="counting and spatial questions reworded: count the ..., how many ... (any kind), under, bigger",
    ),
    SplitSpec(
        "world-train",
        (
            "count_colour_shape", "count_not_colour", "count_shape", "relation_yes_no", "relation_choice",
            "closer", "larger", "kth_relation", "count_phrased", "exist", "attribute", "attribute_relation",
            "spatial_phrased",
        ),
        seed=2024, n=2000, min_objects=2, max_objects=14, occlusion=0.3, texture=0.4, distractors=0.4,
        description="all question families mixed, for SFT/RL", style="varied",
    ),
)
VARIED_SEED_OFFSET = 100  # a twin's seed: its canonical split's + 100 (world-tally 1001 -> world-tally-varied 1101)


def varied_twin(spec: SplitSpec) -> SplitSpec:
    """The style-shifted twin of a canonical benchmark split: same questions and look odds, varied style."""
    return dataclasses.replace(
        spec, name=f"{spec.name}-varied", seed=spec.seed + VARIED_SEED_OFFSET, style="varied",
        description=f"{spec.description}; varied style",
    )


_TWINS = tuple(varied_twin(s) for s in _SPLITS if s.style == "canonical")
SPLITS: dict[str, SplitSpec] = {s.name: s for s in (*_SPLITS, *_TWINS)}
COUNTING_BENCHMARKS = ("world-tally", "world-countqa")
SPATIAL_BENCHMARKS = ("world-vsr", "world-embspatial", "world-spatialmqa", "world-multihop")
BENCHMARKS = COUNTING_BENCHMARKS + SPATIAL_BENCHMARKS  # the paper's six, in the canonical style


def get_split(name: str) -> SplitSpec:
    """The registered split, or KeyError listing the known names."""
    try:
        return SPLITS[name]
    except KeyError:
        raise KeyError(f"unknown split {name!r}; known splits: {', '.join(SPLITS)}") from None
