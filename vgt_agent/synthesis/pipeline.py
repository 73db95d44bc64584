"""The stage implementations of one synthesis run, and the per-sample context built from them.

Built once per run by the CLI (or a test), shared by all worker threads. What is not thread-safe is
provided per thread or per sample: the WorldGrounder's segmentation cache is unsynchronised, so each
thread gets its own; the gold grounders and the rule policy hold one sample's scene; a heavy model grounder
(SAM3) is one instance that serves all threads in shared batches (`grounders/batching.py`), or one call at a
time behind a lock when it cannot batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from PIL import Image

from vgt_agent.backends.base import VLMBackend
from vgt_agent.devices import Placement
from vgt_agent.grounders.base import Grounder, GroundingResult
from vgt_agent.grounders.batching import BatchingGrounder
from vgt_agent.grounders.factory import PER_SAMPLE, make_grounder
from vgt_agent.sample import Sample
from vgt_agent.store import ImageRecord, SampleRecord, TraceRecord
from vgt_agent.synthesis.extract import Extractor
from vgt_agent.synthesis.graph import SynthContext, SynthSettings
from vgt_agent.synthesis.grounding_agent import GroundingAgent, GroundingPolicy
from vgt_agent.synthesis.teacher import Teacher
from vgt_agent.synthesis.vlm_policy import VLMPolicy
from vgt_agent.synthesis.world_policy import WorldRulePolicy
from vgt_agent.synthesis.world_scene import WorldScene

PolicyKind = Literal["rule", "vlm"]


class _Locked:
    """One grounder shared by threads, one call at a time (a model on one device gains nothing from more)."""

    def __init__(self, grounder: Grounder) -> None:
        self.grounder = grounder
        self.name = grounder.name
        self._lock = threading.Lock()

    def ground(self, image: Image.Image, concept: str) -> GroundingResult:
        with self._lock:
            return self.grounder.ground(image, concept)


class GrounderPool:
    """The right grounder instance for a sample on the calling thread."""

    def __init__(self, name: str, *, sam3_checkpoint: str | None = None, placement: Placement | None = None) -> None:
        self.name = name
        self.sam3_checkpoint = sam3_checkpoint
        self.placement = placement  # where a model grounder (SAM3) runs; None: --device auto
        self._local = threading.local()
        self._shared: BatchingGrounder | _Locked | None = None
        self._lock = threading.Lock()

    def for_sample(self, sample: Sample) -> Grounder:
        if self.name in PER_SAMPLE:
            return make_grounder(self.name, sample=sample)
        if self.name == "world":
            if not hasattr(self._local, "grounder"):
                self._local.grounder = make_grounder("world")
            return self._local.grounder
        with self._lock:
            if self._shared is None:
                model = make_grounder(self.name, sam3_checkpoint=self.sam3_checkpoint, placement=self.placement)
                self._shared = BatchingGrounder(model) if hasattr(model, "ground_batch") else _Locked(model)
            return self._shared


@dataclass
class SynthPipeline:
    """Everything a run needs to build a sample's context."""

    settings: SynthSettings
    grounders: GrounderPool
    teacher: Teacher | None = None
    extractor: Extractor | None = None
    policy: PolicyKind = "rule"
    vlm: VLMBackend | None = None  # --via agent, and the vlm policy
    max_agent_steps: int = 12

    def context(self, sample: Sample, run_id: str, write: Callable[[list[TraceRecord]], None]) -> SynthContext:
        """The sample's context; ValueError (one line) when its image cannot be read."""
        if not sample.image_path:
            raise ValueError(f"sample {sample.id} has no image file")
        image = sample.load_image()
        record = SampleRecord.from_sample(sample, ImageRecord.from_path(sample.image_path))
        grounder = self.grounders.for_sample(sample)
        agent = None
        if self.settings.via == "distill":
            agent = GroundingAgent(grounder, self._policy(sample), max_steps=self.max_agent_steps)
        return SynthContext(sample=sample, record=record, image=image, settings=self.settings, run_id=run_id,
                            write=write, grounder=grounder, teacher=self.teacher, extractor=self.extractor,
                            agent=agent, vlm=self.vlm)

    def _policy(self, sample: Sample) -> GroundingPolicy:
        if self.policy == "rule":
            return WorldRulePolicy(WorldScene(sample))
        if self.vlm is None:
            raise ValueError("the vlm grounding policy needs a backend")
        return VLMPolicy(self.vlm)
