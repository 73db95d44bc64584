"""Grounders: concept phrase -> instances (mask, box, point, score)."""

from vgt_agent.grounders.base import Grounder, GroundingResult, Instance

__all__ = ["Grounder", "GroundingResult", "Instance"]
