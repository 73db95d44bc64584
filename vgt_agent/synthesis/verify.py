"""Verification: a teacher candidate is kept only when it is complete, plain prose and right.

Answer checking is the deterministic per-type checker every reward and metric uses (`answers`), so a trace
kept here would also score as correct in evaluation.
"""

from __future__ import annotations

from vgt_agent.answers import check_answer
from vgt_agent.format import parse
from vgt_agent.sample import Sample
from vgt_agent.synthesis.filters import repetitive
from vgt_agent.synthesis.objects import Candidate, Verdict


def verify_candidate(candidate: Candidate, sample: Sample) -> Verdict:
    """Verdict with the first reason that applies: truncated, tags_in_trace, repetitive, no_answer, wrong_answer."""
    text = candidate.text
    check = check_answer(text, sample.answer, sample.answer_type, sample.choices)
    base = {"predicted": check.predicted, "answer_source": check.source, "correct": check.correct}
    if candidate.finish_reason == "length":
        return Verdict(False, "truncated", **base)
    thought = parse(text)
    if thought.groundings or thought.placeholders or thought.tool_requests:
        return Verdict(False, "tags_in_trace", **base)  # the teacher must write prose; tags come from masks
    reason = repetitive(text)
    if reason:
        return Verdict(False, reason, **base)
    if check.predicted is None:
        return Verdict(False, "no_answer", **base)
    if not check.correct:
        return Verdict(False, "wrong_answer", **base)
    return Verdict(True, None, **base)
