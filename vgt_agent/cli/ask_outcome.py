"""How one `vgt ask` run ended, in words: answered, no answer (and why), refused (and what to use instead),
failed. The human view, `--json` and the store's run status all read it from here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from vgt_agent.graphs.ask import AskLimits

Status = Literal["answered", "no_answer", "refused", "failed"]

REAL_MODEL_HINT = ("for other images and questions ask a real model: --base-url URL --model NAME --grounder sam3 "
                   "(README: Real models)")


@dataclass(frozen=True)
class Outcome:
    """The run's status, its stop reason from the agent loop, and a reason a person can read (None when
    answered)."""

    status: Status
    stop_reason: str | None
    reason: str | None


def run_outcome(state: dict[str, Any], limits: AskLimits) -> Outcome:
    """Answered only with a `\\boxed{}` answer; a run that stopped without one says why."""
    stop = state.get("stop_reason")
    if state.get("error"):
        return Outcome("failed", stop, str(state["error"]))
    if state.get("answer") is not None and state.get("answer_source") == "boxed":
        return Outcome("answered", stop, None)
    why = {
        "repeated_call": "the model asked the grounder for the same phrase again instead of answering",
        "max_tokens": f"the model used its whole --max-tokens budget ({limits.max_tokens}) before writing "
                      "\\boxed{}",
        "max_turns": f"the model used all {limits.max_turns} turns (--max-turns) without writing \\boxed{{}}",
        "max_tool_calls": f"the model made {limits.max_tool_calls} grounder calls (--max-tool-calls) without "
                          "writing \\boxed{}",
    }.get(stop or "", "the model finished without writing its answer in \\boxed{}")
    if state.get("answer") is not None:
        why += f" (its last answer-like words, {state['answer']!r}, are not taken as the answer)"
    return Outcome("no_answer", stop, why)


def refusal(scope_reason: str, *, tiny: bool, world_grounder: bool) -> Outcome:
    """A question or image the embedded models cannot handle: no number, the reason, and the way out."""
    who = " and ".join(n for n, used in (("the embedded vgt-tiny policy", tiny),
                                         ("the world grounder", world_grounder)) if used)
    verb = "understand" if tiny and world_grounder else "understands"
    return Outcome("refused", None, f"{scope_reason}. {who[0].upper()}{who[1:]} only {verb} the shapes world; "
                                    f"{REAL_MODEL_HINT}")
