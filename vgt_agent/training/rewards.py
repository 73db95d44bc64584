"""GRPO rewards for grounded thinking, TRL-style: `reward(completions, **columns) -> list[float]`.

The paper's reward is `R = N(1.0*r_ans + 0.1*r_think + 0.1*r_gfmt + r_trunc) + 0.5*N(r_ground)`, each part
normalised across the batch before the weighted sum. TRL 1.x does exactly this shape with
`multi_objective_aggregation="normalize_then_sum"`: every reward function is normalised on its own, then
summed with `reward_weights`. So the trainer gets two weighted functions, `base_reward` (the weighted sum of
the four base components, normalised as one part) and `grounding_reward`, plus each component again with
weight 0: those add nothing to R but TRL logs every reward function (`rewards/<name>/mean|std` and the
completions table), which is how each component is logged separately. TRL normalises each part within
its prompt's group of generations (GDPO) rather than over the whole batch; inside GRPO, where advantages are
group-relative anyway, the two differ only in the scale each part gets.

The tool-calling `agent` variant is scored on its whole rollout (model turns and the grounder's replies, as
`agent_rollout.py` returns it): r_ans reads its final `\boxed{}`; r_gfmt asks for valid tags and at least one
grounding, a `<ground>` call counting as one; r_ground routes the rollout's point tags to the references, the
replies included, so it rewards asking the tool for the objects the question is about (earliest match wins:
a reply's tag is matched before the model's copy of it).

Every function is pure (same inputs, same outputs) and takes the whole batch. Each distinct completion is read
once per step between all of them (`read_completion`: `format.parse`, or just its groundings for the grounding
reward), answers are checked once through `answers.check_answer`, and grounding scores come from
`grounding_scores` with the same router `verify` uses.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

from vgt_agent.answers import check_answer
from vgt_agent.format import PAPER_SYNTAX, GroundedThought, Grounding, find_boxed, parse, read_groundings
from vgt_agent.grounding_scores import batch_grounding_scores
from vgt_agent.prompts import AGENT
from vgt_agent.reference_routing import Router
from vgt_agent.training.references import decode_references

Completion = str | Sequence[Mapping[str, Any]]
RewardFunction = Callable[..., list[float | None]]

THINK_PROBLEMS = frozenset({"unclosed_think", "unopened_think", "multiple_think"})
ANSWER_PROBLEMS = frozenset({"unclosed_boxed", "multiple_boxed", "missing_answer"})
GROUNDED_VARIANTS = ("point", "box")
SCORED_GROUNDING = (*GROUNDED_VARIANTS, AGENT)  # variants whose rollouts earn r_ground


@dataclass(frozen=True)
class RewardWeights:
    """The paper's defaults; `grounding` weighs the separately normalised grounding part."""

    answer: float = 1.0
    think: float = 0.1
    grounding_format: float = 0.1
    truncation: float = 1.0
    grounding: float = 0.5

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def completion_text(completion: Completion) -> str:
    """The text of a completion: a string, or TRL's conversational list of assistant messages."""
    if isinstance(completion, str):
        return completion
    parts = []
    for message in completion:
        content = message.get("content", "")
        if isinstance(content, str):
            parts.append(content)
        else:
            parts.extend(p.get("text") or "" for p in content if p.get("type") == "text")
    return "".join(parts)


@dataclass(eq=False)
class CompletionRead:
    """A completion as the reward functions read it: each part is read once per step, by whichever function
    needs it first (`read_completion` memoises one per distinct completion)."""

    text: str

    @cached_property
    def thought(self) -> GroundedThought:
        """The whole thought, for the format rewards."""
        return parse(self.text)

    @cached_property
    def groundings(self) -> tuple[Grounding, ...]:
        """The thought's groundings; read alone (`format.read_groundings`, a fraction of a parse) unless a
        format reward has parsed the completion already."""
        thought = self.__dict__.get("thought")
        return read_groundings(self.text) if thought is None else thought.groundings


@functools.lru_cache(maxsize=8192)
def read_completion(text: str) -> CompletionRead:
    """The memo the reward functions share, so the functions of one GRPO step read each completion once."""
    return CompletionRead(text)


@functools.lru_cache(maxsize=8192)
def _answer_correct(text: str, gold: str | int, answer_type: str, choices: tuple[str, ...]) -> bool:
    """`check_answer(...).correct`, memoised: R_base and the logged r_ans check each completion once."""
    return check_answer(text, gold, answer_type, choices).correct


def _column(values: Sequence[Any] | None, n: int, default: Any = None) -> list[Any]:
    return [default] * n if values is None else list(values)


# --- the components -------------------------------------------------------------------------------------


def answer_reward(completions: Sequence[Completion], gold_answer: Sequence[str | None],
                  answer_type: Sequence[str], choices: Sequence[Sequence[str]] | None = None,
                  **_: Any) -> list[float | None]:
    """r_ans: 1 when the `\\boxed{}` answer (or the checker's fallback) matches gold for its answer type.

    None for a row without gold (TRL then leaves it out of this part's statistics).
    """
    choices = _column(choices, len(completions), ())
    out: list[float | None] = []
    for c, gold, kind, options in zip(completions, gold_answer, answer_type, choices, strict=True):
        if gold is None or not kind:
            out.append(None)
            continue
        out.append(float(_answer_correct(completion_text(c), gold, kind, tuple(options or ()))))
    return out


def _think_ok(text: str, thought: GroundedThought) -> bool:
    codes = {p.code for p in thought.problems}
    # Without think problems, a `<think>` means exactly one closed block (`thought.think` would say the same
    # but renders the whole thought to find it).
    if codes & (THINK_PROBLEMS | ANSWER_PROBLEMS) or PAPER_SYNTAX.think_open not in text:
        return False
    boxed = find_boxed(text)
    return bool(boxed) and boxed[-1][1][0] > text.find("</think>")


def _direct_ok(text: str, thought: GroundedThought) -> bool:
    codes = {p.code for p in thought.problems}
    return not codes & ANSWER_PROBLEMS and "<think>" not in text and "</think>" not in text


def think_reward(completions: Sequence[Completion], variant: Sequence[str] | None = None,
                 **_: Any) -> list[float]:
    """r_think: 1 for the variant's shape: one closed `<think>` block then `\\boxed{answer}` (thinking
    variants), or a `\\boxed{}` answer with no thinking at all (`direct`)."""
    variants = _column(variant, len(completions))
    out = []
    for c, v in zip(completions, variants, strict=True):
        text = completion_text(c)
        thought = read_completion(text).thought
        ok = _direct_ok(text, thought) if v == "direct" else _think_ok(text, thought)
        out.append(float(ok))
    return out


def grounding_format_reward(completions: Sequence[Completion], variant: Sequence[str] | None = None,
                            **_: Any) -> list[float]:
    """r_gfmt: 1 when every `<obj>` tag is valid (well formed, in 0..1000, boxes ordered) and there is at
    least one, all of the variant's kind; for `plain`/`direct`, 1 when there are no tags at all; for `agent`,
    `<ground>` calls are part of the format and count as groundings (its replies are points)."""
    variants = _column(variant, len(completions))
    out = []
    for c, v in zip(completions, variants, strict=True):
        thought = read_completion(completion_text(c)).thought
        tag_problems = [p for p in thought.problems if p.code not in THINK_PROBLEMS | ANSWER_PROBLEMS]
        other_tags = thought.placeholders or thought.tool_requests
        if v in ("plain", "direct"):
            ok = not (tag_problems or other_tags or thought.groundings)
        elif v == AGENT:
            kinds = {g.kind for g in thought.groundings}
            ok = (bool(kinds or thought.tool_requests) and not tag_problems and not thought.placeholders
                  and kinds <= {"point"})
        else:
            kinds = {g.kind for g in thought.groundings}
            ok = bool(kinds) and not tag_problems and not other_tags and (v not in GROUNDED_VARIANTS or kinds == {v})
        out.append(float(ok))
    return out


def truncation_reward(completions: Sequence[Completion], completion_ids: Sequence[Sequence[int]] | None = None, *,
                      eos_token_ids: Sequence[int] = (), **_: Any) -> list[float]:
    """r_trunc: -1 for a rollout cut off by the length limit, i.e. one that does not end in an EOS token
    (TRL's own test for `mask_truncated_completions`); 0 otherwise, and 0 when ids are not given."""
    if completion_ids is None:
        return [0.0] * len(completions)
    eos = set(eos_token_ids)
    return [-1.0 if not ids or ids[-1] not in eos else 0.0 for ids in completion_ids]


def grounding_reward(completions: Sequence[Completion], references: Sequence[str | None], *,
                     router: Router | None = None, max_groundings: int = 32, **_: Any) -> list[float | None]:
    """r_ground: mean over the sample's reference objects of its grounding score (points: F1 of the
    one-to-one point-in-mask matching; boxes: IoU of the unions); an object no tag routes to scores 0,
    tags routed to nothing are ignored, only the first `max_groundings` tags count. None without references."""
    texts = [completion_text(c) for c in completions]
    refs = [decode_references(payload) for payload in references]
    groundings = [read_completion(t).groundings if r else () for t, r in zip(texts, refs, strict=True)]
    return batch_grounding_scores(groundings, refs, texts, router=router, max_groundings=max_groundings)


def base_reward(completions: Sequence[Completion], gold_answer: Sequence[str | None], answer_type: Sequence[str],
                choices: Sequence[Sequence[str]] | None = None, variant: Sequence[str] | None = None,
                completion_ids: Sequence[Sequence[int]] | None = None, *, weights: RewardWeights = RewardWeights(),
                eos_token_ids: Sequence[int] = (), **_: Any) -> list[float]:
    """R_base = w_ans*r_ans + w_think*r_think + w_gfmt*r_gfmt + w_trunc*r_trunc (paper: 1, 0.1, 0.1, 1).

    The grounding-format term is left out for `plain`/`direct` rows (they are not asked to ground)."""
    parts = zip(
        answer_reward(completions, gold_answer, answer_type, choices),
        think_reward(completions, variant),
        grounding_format_reward(completions, variant),
        truncation_reward(completions, completion_ids, eos_token_ids=eos_token_ids),
        _column(variant, len(completions)),
        strict=True,
    )
    return [weights.answer * (ans or 0.0) + weights.think * think
            + (0.0 if v in ("plain", "direct") else weights.grounding_format * gfmt) + weights.truncation * trunc
            for ans, think, gfmt, trunc, v in parts]


# --- what the trainer gets ------------------------------------------------------------------------------


def _named(func: Callable[..., Any], **bound: Any) -> RewardFunction:
    """`functools.partial`, which TRL names after the wrapped function (`rewards/<name>/mean`)."""
    return functools.partial(func, **bound) if bound else func


def reward_functions(variant: str, weights: RewardWeights = RewardWeights(), *, eos_token_ids: Sequence[int] = (),
                     router: Router | None = None, max_groundings: int = 32) -> list[RewardFunction]:
    """The GRPO reward functions for a variant, in the order `reward_weights` weighs them.

    base_reward and (grounded and agent variants only) grounding_reward carry R; the components follow, weighted 0,
    so TRL logs each of them. The weights of the base components live inside `base_reward`.
    """
    eos = tuple(eos_token_ids)
    funcs: list[RewardFunction] = [_named(base_reward, weights=weights, eos_token_ids=eos)]
    if variant in SCORED_GROUNDING:
        funcs += [_named(grounding_reward, router=router, max_groundings=max_groundings), answer_reward,
                  think_reward, grounding_format_reward]
    else:
        funcs += [answer_reward, think_reward]
    return [*funcs, _named(truncation_reward, eos_token_ids=eos)]


def reward_weights(variant: str, weights: RewardWeights = RewardWeights()) -> list[float]:
    """TRL's `reward_weights` for `reward_functions(variant, ...)`: 1 for R_base, the grounding weight for
    r_ground, 0 for the logged-only components."""
    if variant in SCORED_GROUNDING:
        return [1.0, weights.grounding, 0.0, 0.0, 0.0, 0.0]
    return [1.0, 0.0, 0.0, 0.0]
