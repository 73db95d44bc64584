"""What one synthesised sample becomes in the trace store, and the outcome the batch runner counts.

Rows per sample (all written in one transaction): every teacher candidate (variant "candidate", attempt =
its index, status ok / rejected with the reason), and for each kept candidate its "plain", "point" and
"box" variants (same attempt, parent = the candidate) with groundings and the masks they came from. The
candidate row's meta keeps the extracted objects, the grounding agent's transcripts, dropped objects and
the list of variants written, so a reader can check the sample is complete.

`--via agent` writes the raw ask run as the candidate and, when kept: "agent" (the tool-calling trace,
completion exactly as `graphs/ask.py chunks_text` gives it, messages = the question then the model turns
and tool replies; in-text protocol only), the self-grounded rewrite under its kind ("point" or "box"), and
"plain".
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from vgt_agent.format import parse
from vgt_agent.graphs.ask import chunks_text
from vgt_agent.store import GroundingRecord, MaskRecord, TraceRecord
from vgt_agent.synthesis.objects import Candidate, Grounded, Verdict

if TYPE_CHECKING:
    from vgt_agent.synthesis.graph import SynthContext, SynthState


def _conversation(question: str, text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": text}]


def _tag_records(text: str, tags: list[int], outcomes: list[Grounded], grounder: str
                 ) -> tuple[list[GroundingRecord], list[MaskRecord]]:
    """Groundings of a filled variant, and every mask the agent saw for its candidate (selected or not)."""
    groundings, masks = [], []
    for j, (g, index) in enumerate(zip(parse(text).groundings, tags, strict=True)):
        selected = outcomes[index].selected
        score = sum(m.score for m in selected) / len(selected) if selected else None
        groundings.append(GroundingRecord(g.phrase, g.kind, [list(c) for c in g.coords], "synth", True, score,
                                          g.span))
        masks += [MaskRecord(m.phrase, m.rle, list(m.box), list(m.point), m.score, grounder, j, True)
                  for m in selected]
    tagged = set(tags)
    for i, outcome in enumerate(outcomes):
        masks += [MaskRecord(m.phrase, m.rle, list(m.box), list(m.point), m.score, grounder, None, False)
                  for m in outcome.masks if not (m.selected and i in tagged)]
    return groundings, masks


def distill_records(ctx: SynthContext, state: SynthState, timings: dict[str, float]
                    ) -> tuple[list[TraceRecord], dict[str, Any]]:
    """Candidate rows and kept variant rows of a distilled sample, and its outcome."""
    candidates = [Candidate(**c) for c in state.get("candidates", [])]
    verdicts = [Verdict(**v) for v in state.get("verdicts", [])]
    rejections, variants = state.get("rejections", {}), state.get("variants", [])
    grounded = {int(k): [Grounded.from_dict(d) for d in v] for k, v in state.get("grounded", {}).items()}
    kept = sorted({v["candidate"] for v in variants})
    written = [f"{v['variant']}:{v['candidate']}" for v in variants]
    question = ctx.sample.question
    grounder = ctx.grounder.name
    policy = getattr(getattr(ctx.agent, "policy", None), "name", None)
    extractor = getattr(ctx.extractor, "name", None)
    records, by_index, reasons = [], {}, []
    dropped = [d for d in state.get("dropped", []) if d["candidate"] in kept]
    for i, (c, v) in enumerate(zip(candidates, verdicts, strict=True)):
        if i in kept:
            status, reason = "ok", None
        elif v.ok and str(i) not in rejections:
            status, reason = "ok", "unused"  # verified, beyond --keep
        else:
            status, reason = "rejected", v.reason or rejections.get(str(i))
            reasons.append(reason)
        meta = {"finish_reason": c.finish_reason, "teacher": c.meta, "extractor": extractor, "policy": policy,
                "objects": state.get("objects", {}).get(str(i)),
                "grounding": [{"object": g.object.name, "status": g.status, "steps": list(g.steps),
                               "selected": [m.id for m in g.selected]} for g in grounded.get(i, [])],
                "dropped": [d for d in state.get("dropped", []) if d["candidate"] == i],
                "variants": written}
        record = TraceRecord(ctx.run_id, ctx.record, "candidate", status, i, _conversation(question, c.text), c.text,
                             v.predicted, v.answer_source, v.correct, reason=reason, backend=c.backend, model=c.model,
                             timings={"teacher_s": c.latency_s, **timings}, meta=meta)
        by_index[i] = record
        records.append(record)
    groundings_per_trace = []
    for v in variants:
        i, kind = v["candidate"], v["variant"]
        parent, c, verdict = by_index[i], candidates[i], verdicts[i]
        groundings, masks = ([], []) if kind == "plain" else _tag_records(v["text"], v["tags"], grounded[i], grounder)
        if kind == "box":
            groundings_per_trace.append(len(groundings))
        records.append(TraceRecord(
            ctx.run_id, ctx.record, kind, "ok", i, _conversation(question, v["text"]), v["text"], verdict.predicted,
            verdict.answer_source, True, backend=c.backend, model=c.model,
            grounder=None if kind == "plain" else grounder, timings=timings, groundings=groundings, masks=masks,
            parent_id=parent.id, meta={"kind": kind, "policy": policy, "extractor": extractor,
                                       "tag_objects": [grounded[i][t].object.to_dict() for t in v.get("tags", [])]}))
    outcome = {
        "status": "kept" if kept else "rejected",
        "reason": None if kept else _sample_reason(verdicts, state),
        "candidate_reasons": reasons, "variants": len(variants), "groundings": groundings_per_trace,
        "dropped": dict(Counter(d["reason"] for d in dropped)),
    }
    return records, outcome


def _sample_reason(verdicts: list[Verdict], state: SynthState) -> str:
    """The reason of the furthest any candidate got: a late-stage rejection says more than a wrong answer."""
    rejections = state.get("rejections", {})
    for i in state.get("used", []):
        if str(i) in rejections:
            return rejections[str(i)]
    if not verdicts:
        return "no_candidates"
    return Counter(v.reason for v in verdicts if v.reason).most_common(1)[0][0]


def agent_records(ctx: SynthContext, state: SynthState, timings: dict[str, float]
                  ) -> tuple[list[TraceRecord], dict[str, Any]]:
    """The raw ask trace as the candidate; when kept, the tool-calling trace ("agent"), its self-grounded
    rewrite ("point" / "box") and "plain"."""
    a = state["agent"]
    chunks = a.get("chunks") or []
    reason, error = a.get("reason"), a.get("error")
    status = "error" if error else ("rejected" if reason else "ok")
    vlm, grounder = ctx.vlm, ctx.grounder.name
    tool_masks = a.get("tool_masks") or []
    groundings = [GroundingRecord(g["phrase"], g["kind"], g["coords"], g["source"], g.get("verified"), g.get("score"),
                                  tuple(g["span"])) for g in a.get("groundings") or []]
    masks = [MaskRecord(m["concept"], m["rle"], m["box"], m["point"], m["score"], grounder) for m in tool_masks]
    written = [f"{v['variant']}:0" for v in state.get("variants", [])]
    meta = {k: a.get(k) for k in ("stop_reason", "turns", "tool_calls", "tokens", "problems", "verified_fraction")}
    meta.update(protocol=ctx.settings.agent_protocol, kind=ctx.settings.agent_kind, variants=written)
    candidate = TraceRecord(
        ctx.run_id, ctx.record, "candidate", status, 0, [{"role": c["role"], "content": c["content"]} for c in chunks],
        chunks_text(chunks), a.get("answer"), a.get("answer_source"), a.get("correct"),
        a.get("verified_fraction"), None if status == "ok" else reason, error, vlm.name, vlm.model, grounder,
        {**timings, "model_s": a.get("model_s") or 0.0, "tool_s": a.get("tool_s") or 0.0}, groundings, masks,
        meta=meta)
    records = [candidate]
    per_trace = []
    tool_index = {g.phrase.lower(): j for j, g in reversed(list(enumerate(groundings))) if g.source == "tool"}
    for v in state.get("variants", []):
        if v["variant"] == "agent":
            records.append(TraceRecord(
                ctx.run_id, ctx.record, "agent", "ok", 0,
                [{"role": "user", "content": ctx.sample.question}, *candidate.messages], v["text"], a.get("answer"),
                a.get("answer_source"), True, a.get("verified_fraction"), backend=vlm.name, model=vlm.model,
                grounder=grounder, timings=timings, groundings=groundings,
                masks=[MaskRecord(m.concept, m.rle, m.box, m.point, m.score, grounder,
                                  tool_index.get(m.concept.lower())) for m in masks],
                parent_id=candidate.id, meta={"kind": ctx.settings.agent_kind, "protocol": "text"}))
            continue
        inline = [] if v["variant"] == "plain" else [
            GroundingRecord(g.phrase, g.kind, [list(c) for c in g.coords], "inline", True, None, g.span)
            for g in parse(v["text"]).groundings]
        phrase_index = {g.phrase.lower(): j for j, g in reversed(list(enumerate(inline)))}
        inline_masks = [] if v["variant"] == "plain" else [
            MaskRecord(m["concept"], m["rle"], m["box"], m["point"], m["score"], grounder,
                       phrase_index.get(m["concept"].lower())) for m in tool_masks]
        if v["variant"] != "plain":
            per_trace.append(len(inline))
        records.append(TraceRecord(
            ctx.run_id, ctx.record, v["variant"], "ok", 0, _conversation(ctx.sample.question, v["text"]), v["text"],
            a.get("answer"), a.get("answer_source"), True, backend=vlm.name, model=vlm.model,
            grounder=None if v["variant"] == "plain" else grounder, timings=timings, groundings=inline,
            masks=inline_masks, parent_id=candidate.id, meta={"kind": ctx.settings.agent_kind}))
    kept = bool(state.get("variants"))
    outcome = {"status": "error" if error else ("kept" if kept else "rejected"),
               "reason": None if kept else (reason or "error"), "error": error,
               "candidate_reasons": [] if kept else [reason or "error"], "variants": len(state.get("variants", [])),
               "groundings": per_trace, "dropped": {}}
    return records, outcome
