"""The per-sample synthesis graph: teacher traces in, verified grounded SFT variants out.

    distill -> verify -> extract -> ground -> align -> store        (--via distill)
    agent -> store                                                   (--via agent: the ask graph itself)

distill asks the teacher for K candidates; verify keeps the right, well-formed ones; extract lists the
objects the first `keep` of them need; ground runs the grounding agent per object and rejects candidates
whose stated counts disagree with what it selected; align inserts placeholders and fills point and box
variants, then filters them; store writes the sample, every candidate, the kept variants and the masks in
one transaction. The agent path runs the compiled ask graph (same nodes as `vgt ask`) with a model backend
or the world-oracle rule, keeps its verified tool-calling trace as the "agent" variant (in-text protocol),
and rewrites its tool calls into inline groundings (the `--kind` variant, point or box) and a "plain" one.
Pixels stay in the context; state holds text, RLE and numbers.
"""

from __future__ import annotations

import functools
import operator
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Literal, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from PIL import Image

from vgt_agent.backends.base import BackendError, Generation, VLMBackend
from vgt_agent.format import strip_groundings
from vgt_agent.graphs.ask import AskContext, AskLimits, chunks_text, run_ask
from vgt_agent.grounders.base import Grounder
from vgt_agent.sample import Sample
from vgt_agent.store import SampleRecord, TraceRecord
from vgt_agent.synthesis.agent_path import agent_verdict, rewrite_agent_trace
from vgt_agent.synthesis.align import align
from vgt_agent.synthesis.extract import ExtractionError, Extractor
from vgt_agent.synthesis.filters import MAX_DRIFT, drifted, malformed
from vgt_agent.synthesis.grounding_agent import GroundingAgent
from vgt_agent.synthesis.objects import Candidate, Grounded, NeededObject, Verdict
from vgt_agent.synthesis.records import agent_records, distill_records
from vgt_agent.synthesis.teacher import Teacher
from vgt_agent.synthesis.verify import verify_candidate

Via = Literal["distill", "agent"]


def _merge(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    out = dict(a or {})
    for key, value in (b or {}).items():
        out[key] = out.get(key, 0.0) + value
    return out


@dataclass(frozen=True)
class SynthSettings:
    """Knobs of one synthesis run (shared by every sample)."""

    via: Via = "distill"
    k: int = 4  # teacher candidates per sample
    keep: int = 1  # verified candidates taken on to grounding
    max_drift: float = MAX_DRIFT
    agent_kind: Literal["point", "box"] = "point"
    agent_protocol: Literal["text", "function"] = "text"
    agent_limits: AskLimits = field(default_factory=AskLimits)


@dataclass
class SynthContext:
    """One sample's run: the sample, its pixels, the stage implementations, and how to commit it."""

    sample: Sample
    record: SampleRecord
    image: Image.Image
    settings: SynthSettings
    run_id: str
    write: Callable[[list[TraceRecord]], None]  # commits one sample's records in one transaction
    grounder: Grounder
    teacher: Teacher | None = None
    extractor: Extractor | None = None
    agent: GroundingAgent | None = None
    vlm: VLMBackend | None = None  # --via agent: the model the ask graph runs


class SynthState(TypedDict, total=False):
    sample_id: str
    candidates: list[dict[str, Any]]
    verdicts: list[dict[str, Any]]
    used: list[int]  # verified candidates taken on to extraction
    objects: dict[str, list[dict[str, Any]]]  # candidate index -> needed objects
    grounded: dict[str, list[dict[str, Any]]]  # candidate index -> grounding outcomes
    rejections: dict[str, str]  # candidate index -> reason, for used candidates that fell out later
    dropped: Annotated[list[dict[str, Any]], operator.add]  # objects left untagged: candidate, name, reason
    variants: list[dict[str, Any]]  # {"candidate", "variant", "text"}
    agent: dict[str, Any]  # --via agent: what the ask run produced
    timings: Annotated[dict[str, float], _merge]
    outcome: dict[str, Any]


def _timed(stage: str, started: float) -> dict[str, dict[str, float]]:
    return {"timings": {f"{stage}_s": time.perf_counter() - started}}


def distill(state: SynthState, runtime: Runtime[SynthContext]) -> dict[str, Any]:
    """K candidate traces from the teacher (a BackendError propagates to the batch runner)."""
    ctx, start = runtime.context, time.perf_counter()
    candidates = ctx.teacher.candidates(ctx.sample, ctx.image, ctx.settings.k)
    return {"candidates": [c.to_dict() for c in candidates], **_timed("distill", start)}


def verify(state: SynthState, runtime: Runtime[SynthContext]) -> dict[str, Any]:
    """Answer check and prose checks per candidate; the first `keep` verified ones go on."""
    ctx, start = runtime.context, time.perf_counter()
    verdicts = [verify_candidate(Candidate(**c), ctx.sample) for c in state["candidates"]]
    used = [i for i, v in enumerate(verdicts) if v.ok][: ctx.settings.keep]
    return {"verdicts": [asdict(v) for v in verdicts], "used": used, **_timed("verify", start)}


def extract(state: SynthState, runtime: Runtime[SynthContext]) -> dict[str, Any]:
    """The objects each used candidate's reasoning needs."""
    ctx, start = runtime.context, time.perf_counter()
    objects, rejections = {}, dict(state.get("rejections", {}))
    for i in state.get("used", []):
        candidate, verdict = Candidate(**state["candidates"][i]), Verdict(**state["verdicts"][i])
        try:
            found = ctx.extractor.extract(ctx.sample, candidate, verdict.predicted)
        except ExtractionError:
            rejections[str(i)] = ExtractionError.reason
            continue
        if not found:
            rejections[str(i)] = "no_objects"
            continue
        objects[str(i)] = [o.to_dict() for o in found]
    return {"objects": objects, "rejections": rejections, **_timed("extract", start)}


def ground(state: SynthState, runtime: Runtime[SynthContext]) -> dict[str, Any]:
    """Run the grounding agent per object; a stated count the masks contradict rejects the candidate."""
    ctx, start = runtime.context, time.perf_counter()
    cache: dict[tuple, Grounded] = {}
    grounded, rejections, dropped = {}, dict(state.get("rejections", {})), []
    ctx.agent.prefetch(ctx.image, [NeededObject.from_dict(d) for items in state.get("objects", {}).values()
                                   for d in items])
    for key, items in state.get("objects", {}).items():
        outcomes = []
        for obj in (NeededObject.from_dict(d) for d in items):
            cache_key = (obj.name.lower(), obj.context, obj.role, obj.scene_ids)
            if cache_key not in cache:
                cache[cache_key] = ctx.agent.run(ctx.image, obj)
            g = cache[cache_key]
            outcomes.append(Grounded(obj, g.status, g.masks, g.steps, g.reason))
        counted = [g for g in outcomes if g.object.count is not None]
        inconsistent = [g for g in counted if g.status != "unresolved" and len(g.selected) != g.object.count]
        if inconsistent or any(g.status == "unresolved" for g in counted):
            rejections[key] = "inconsistent_count" if inconsistent else "unresolved_count"
        for g in outcomes:
            reason = _drop_reason(g)
            if reason:
                dropped.append({"candidate": int(key), "object": g.object.name, "reason": reason})
        grounded[key] = [g.to_dict() for g in outcomes]
    return {"grounded": grounded, "rejections": rejections, "dropped": dropped, **_timed("ground", start)}


def _drop_reason(g: Grounded) -> str | None:
    """Why an object will carry no tag: unresolved by the agent, or not found though the trace needs it."""
    if g.status == "unresolved":
        return "unresolved"
    if g.object.singular and len(g.selected) > 1:
        return "ambiguous"
    if g.object.singular and not g.selected:
        return "not_found"
    return None


def align_node(state: SynthState, runtime: Runtime[SynthContext]) -> dict[str, Any]:
    """Placeholders into each surviving candidate, filled as point and box variants, then filtered."""
    ctx, start = runtime.context, time.perf_counter()
    rejections, variants, dropped = dict(state.get("rejections", {})), [], []
    width, height = ctx.image.size
    for key, items in state.get("grounded", {}).items():
        if key in rejections:
            continue
        outcomes = [Grounded.from_dict(d) for d in items]
        usable = [g if _drop_reason(g) is None else Grounded(g.object, "unresolved", g.masks, g.steps, g.reason)
                  for g in outcomes]
        text = state["candidates"][int(key)]["text"]
        alignment = align(text, usable, width, height)
        dropped += [{"candidate": int(key), "object": usable[i].object.name, "reason": "unmentioned"}
                    for i in alignment.unmentioned]
        needs_tags = any(g.status == "selected" and g.selected for g in usable)
        reason = "no_groundings" if needs_tags and not alignment.mentions else None
        if reason is None and all(g.status != "selected" for g in usable) and not all(
                g.status == "none" and g.object.count == 0 for g in usable):
            reason = "no_groundings"  # nothing resolved: there is nothing to supervise with
        for kind, variant in alignment.variants.items():
            reason = reason or malformed(variant, kind) or drifted(text, variant, ctx.settings.max_drift)
        if reason:
            rejections[key] = reason
            continue
        variants.append({"candidate": int(key), "variant": "plain", "text": text})
        tags = [m.object_index for m in alignment.mentions]
        variants += [{"candidate": int(key), "variant": kind, "text": variant, "tags": tags}
                     for kind, variant in alignment.variants.items()]
    return {"variants": variants, "rejections": rejections, "dropped": dropped, **_timed("align", start)}


class _ErrorTap:
    """Delegates to a backend and keeps its last BackendError: the ask state keeps only the message, and the
    batch runner needs the `unreachable` flag to tell a dead server from one failed sample."""

    def __init__(self, vlm: VLMBackend) -> None:
        self.vlm = vlm
        self.name, self.model = vlm.name, vlm.model
        self.supports_function_calling = vlm.supports_function_calling
        self.error: BackendError | None = None

    def server_modes(self) -> dict[str, str]:
        """The wrapped backend's stop and turn modes (`backends.base.backend_modes`)."""
        from vgt_agent.backends.base import backend_modes

        return backend_modes(self.vlm)

    def generate(self, *args: Any, **kwargs: Any) -> Generation:
        try:
            return self.vlm.generate(*args, **kwargs)
        except BackendError as e:
            self.error = e
            raise


def agent(state: SynthState, runtime: Runtime[SynthContext]) -> dict[str, Any]:
    """The ask graph on this sample (no logging of its own), then the inline rewrite of its tool calls."""
    ctx, start = runtime.context, time.perf_counter()
    s = ctx.settings
    ask_ctx = AskContext(image=ctx.image, sample=ctx.record, backend=ctx.vlm, grounder=ctx.grounder,
                         kind=s.agent_kind, protocol=s.agent_protocol, limits=s.agent_limits, store=None)
    tap = _ErrorTap(ctx.vlm)
    ask_ctx.backend = tap
    result = run_ask(ask_ctx)
    if tap.error is not None and tap.error.unreachable:
        raise tap.error  # a dead server is the batch's problem, not this sample's
    rewritten = rewrite_agent_trace(result.get("chunks", []))
    reason = agent_verdict(result, rewritten)
    keep = {k: result.get(k) for k in ("chunks", "tool_masks", "groundings", "answer", "answer_source", "correct",
                                      "verified_fraction", "stop_reason", "error", "turns", "tool_calls", "tokens",
                                      "problems", "model_s", "tool_s")}
    plain = strip_groundings(rewrite_agent_trace(result.get("chunks", []), inline=False))
    variants = []
    if not reason:
        if s.agent_protocol == "text":  # the tool-calling trace itself, as the ask loop shows it to the model
            variants.append({"candidate": 0, "variant": "agent", "text": chunks_text(result["chunks"])})
        variants += [{"candidate": 0, "variant": s.agent_kind, "text": rewritten},
                     {"candidate": 0, "variant": "plain", "text": plain}]
    return {"agent": {**keep, "rewritten": rewritten, "reason": reason}, "variants": variants,
            **_timed("agent", start)}


def store(state: SynthState, runtime: Runtime[SynthContext]) -> dict[str, Any]:
    """Every record of the sample in one transaction, then the outcome the batch runner counts."""
    ctx, start = runtime.context, time.perf_counter()
    timings = dict(state.get("timings", {}))
    if ctx.settings.via == "agent":
        records, outcome = agent_records(ctx, state, timings)
    else:
        records, outcome = distill_records(ctx, state, timings)
    ctx.write(records)
    elapsed = time.perf_counter() - start
    outcome["timings"] = {**timings, "store_s": elapsed}
    return {"outcome": outcome, **_timed("store", start)}


def _first(state: SynthState, runtime: Runtime[SynthContext]) -> str:
    return "agent" if runtime.context.settings.via == "agent" else "distill"


@functools.cache
def build_synth_graph():
    """The compiled per-sample graph; run it with `run_synth(ctx)`."""
    graph = StateGraph(SynthState, context_schema=SynthContext)
    for name, node in (("distill", distill), ("verify", verify), ("extract", extract), ("ground", ground),
                       ("align", align_node), ("agent", agent), ("store", store)):
        graph.add_node(name, node)
    graph.add_conditional_edges(START, _first, {"agent": "agent", "distill": "distill"})
    for a, b in (("distill", "verify"), ("verify", "extract"), ("extract", "ground"), ("ground", "align"),
                 ("align", "store"), ("agent", "store"), ("store", END)):
        graph.add_edge(a, b)
    return graph.compile()


def run_synth(ctx: SynthContext) -> dict[str, Any]:
    """Synthesise one sample; returns its outcome (status, reasons, counts, timings)."""
    started = time.perf_counter()
    final = build_synth_graph().invoke({"sample_id": ctx.sample.id}, context=ctx)
    outcome = final["outcome"]
    outcome["timings"]["total_s"] = time.perf_counter() - started
    return outcome
