"""Grounders by name, as the CLI and batch jobs choose them: world (default), sam3, gold, gold-shuffled."""

from __future__ import annotations

from vgt_agent.devices import Placement
from vgt_agent.grounders.base import Grounder
from vgt_agent.sample import Sample
from vgt_agent.vocabulary import GROUNDERS, PER_SAMPLE

__all__ = ["GROUNDERS", "PER_SAMPLE", "make_grounder"]


def make_grounder(name: str, *, sample: Sample | None = None, sam3_checkpoint: str | None = None,
                  placement: Placement | None = None) -> Grounder:
    """The named grounder; ValueError with one line when it cannot be built from what was given.

    `placement` is where an in-process model (SAM3) runs; None resolves `--device auto --dtype auto`.
    """
    if name == "world":
        from vgt_agent.grounders.world import WorldGrounder

        return WorldGrounder()
    if name == "sam3":
        from vgt_agent.grounders.sam3 import Sam3Grounder

        where = {} if placement is None else {"device": placement.device, "dtype": placement.dtype}
        return Sam3Grounder(sam3_checkpoint or "facebook/sam3", **where)
    if name in PER_SAMPLE:
        if sample is None or not sample.meta.get("objects"):
            raise ValueError(f"the {name} grounder needs a dataset sample with gold objects (e.g. a world split "
                             "image)")
        from vgt_agent.grounders.gold import GoldGrounder
        from vgt_agent.grounders.shuffled_gold import ShuffledGoldGrounder

        return GoldGrounder(sample) if name == "gold" else ShuffledGoldGrounder(sample)
    raise ValueError(f"unknown grounder {name!r}; choose one of {', '.join(GROUNDERS)}")
