"""Routing: which reference object does a generated `<obj>` tag talk about?

Grounding rewards and the agent's verification both need this. A `Router` maps each generated grounding to
a reference object (or to none) from its phrase and the text around it. The default `TextRouter` matches
normalised phrases exactly, then falls back to a fuzzy token match, using nearby context to break ties.
When several groundings route to one object, callers keep the earliest (`first_per_reference`). `VLMRouter`
asks a VLM (through any backend) instead, falling back to the text router for tags it leaves unanswered.

Routing runs for every tag of every rollout in RL, so the pure pieces (phrase tokens, token similarity, the
per-reference-set index) are memoised.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import TYPE_CHECKING, Protocol

from vgt_agent.answers import NUMBER_WORDS
from vgt_agent.format import Grounding
from vgt_agent.prompts import ROUTER_INSTRUCTIONS

if TYPE_CHECKING:
    from vgt_agent.backends.base import VLMBackend

_ARTICLES = {"a", "an", "the", "this", "that", "these", "those", "all", "each", "every", "some", "any"}
_NUMBER_WORDS = {*NUMBER_WORDS, "both", "several", "many", "few"}
_WORD = re.compile(r"[a-z0-9]+")


def singular(word: str) -> str:
    """Crude English singular, enough for object nouns (boxes -> box, circles -> circle, glasses -> glass)."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith(("ses", "xes", "zes", "ches", "shes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _content_tokens(text: str) -> tuple[str, ...]:
    words = _WORD.findall(text.lower())
    return tuple(singular(w) for w in words if w not in _ARTICLES and w not in _NUMBER_WORDS and not w.isdigit())


@functools.lru_cache(maxsize=65536)
def phrase_tokens(phrase: str) -> tuple[str, ...]:
    """Lower-cased singular content words: 'the three red circles' -> ('red', 'circle')."""
    return _content_tokens(phrase)


@dataclass(frozen=True)
class ReferenceName:
    """What a router knows of a reference object: its name and a disambiguating context."""

    name: str
    context: str = ""


class Router(Protocol):
    """Maps each grounding (with the full text it sits in) to a reference index or None."""

    def route(self, groundings: Sequence[Grounding], references: Sequence[ReferenceName],
              text: str = "") -> list[int | None]: ...


@dataclass(frozen=True)
class _ReferenceIndex:
    tokens: tuple[tuple[str, ...], ...]
    context: tuple[frozenset[str], ...]
    exact: dict[tuple[str, ...], tuple[int, ...]]
    similar: dict[tuple[tuple[str, ...], float], tuple[tuple[int, float], ...]] = field(
        default_factory=dict, compare=False, repr=False)

    def candidates(self, tokens: tuple[str, ...], min_similarity: float) -> tuple[tuple[int, float], ...]:
        """(reference, similarity) for each reference a phrase may route to: among its exact matches when it
        has several, else among all, those similar enough. Memoised per phrase: most tags repeat one."""
        key = (tokens, min_similarity)
        found = self.similar.get(key)
        if found is None:
            if len(self.similar) >= 4096:
                self.similar.clear()
            pool = self.exact.get(tokens) or range(len(self.tokens))
            found = tuple((i, s) for i in pool if (s := _similarity(tokens, self.tokens[i])) >= min_similarity)
            self.similar[key] = found
        return found


@functools.lru_cache(maxsize=1024)
def _reference_index(references: tuple[ReferenceName, ...]) -> _ReferenceIndex:
    """Tokens, context words and an exact-match table of a reference set, built once per set."""
    tokens = tuple(phrase_tokens(r.name) for r in references)
    exact: dict[tuple[str, ...], tuple[int, ...]] = {}
    for i, t in enumerate(tokens):
        if t:
            exact[t] = (*exact.get(t, ()), i)
    return _ReferenceIndex(tokens, tuple(frozenset(_content_tokens(r.context)) for r in references), exact)


@dataclass(frozen=True)
class TextRouter:
    """Normalised phrase match, then fuzzy token similarity >= `min_similarity`; context words break ties."""

    min_similarity: float = 0.6
    context_chars: int = 60

    def route(self, groundings: Sequence[Grounding], references: Sequence[ReferenceName],
              text: str = "") -> list[int | None]:
        index = _reference_index(tuple(references))
        out: list[int | None] = []
        for g in groundings:
            tokens = phrase_tokens(g.phrase)
            exact = index.exact.get(tokens, ())
            if len(exact) == 1:
                out.append(exact[0])
                continue
            candidates = index.candidates(tokens, self.min_similarity)
            best, best_score = None, 0.0
            if candidates:  # context words are read only when some reference is similar enough
                window = text[max(0, g.span[0] - self.context_chars): g.span[1] + self.context_chars]
                near = set(_content_tokens(window))
                for i, similarity in candidates:
                    score = similarity + 0.01 * len(near & index.context[i])
                    if score > best_score:
                        best, best_score = i, score
            out.append(best)
        return out


@functools.lru_cache(maxsize=65536)
def _similarity(a: tuple[str, ...], b: tuple[str, ...]) -> float:
    """Token-set Jaccard blended with character similarity, so 'red round circle' ~ 'red circle'."""
    if not a or not b:
        return 0.0
    sa, sb = set(a), set(b)
    jaccard = len(sa & sb) / len(sa | sb)
    chars = SequenceMatcher(None, " ".join(a), " ".join(b)).ratio()
    return max(jaccard, 0.5 * (jaccard + chars))


# "1: 2", "Tag 1 -> reference 2", "- 3: none": one answer per line.
_REPLY_LINE = re.compile(  # `[^\w\n]*`, not `\W*`: from every line start, `\W*` ran on over blank lines
    r"^[^\w\n]*(?:tag\s*)?(\d+)\s*(?:[:=)\].-]|->)+\s*(?:(?:ref(?:erence)?|object)?\s*#?(\d+)|(none\b|no\b|n/a\b|-))",
    re.IGNORECASE | re.MULTILINE,
)


def router_prompt(groundings: Sequence[Grounding], references: Sequence[ReferenceName], text: str,
                  context_chars: int = 80) -> str:
    """The question put to a VLM router: numbered references, then numbered tags with the text around them."""
    refs = "\n".join(f"{i + 1}. {r.name}" + (f" ({r.context})" if r.context else "") for i, r in enumerate(references))
    tags = []
    for k, g in enumerate(groundings):
        before = text[max(0, g.span[0] - context_chars): g.span[0]].replace("\n", " ")
        after = text[g.span[1]: g.span[1] + context_chars].replace("\n", " ")
        tags.append(f'{k + 1}. "{g.phrase}" in: ...{before}[TAG]{after}...')
    return f"{ROUTER_INSTRUCTIONS}\n\nReference objects:\n{refs}\n\nTags:\n" + "\n".join(tags)


def parse_router_reply(reply: str, n_groundings: int, n_references: int) -> dict[int, int | None]:
    """Tag index -> reference index (or None for "none") for every well-formed, in-range line of a reply."""
    answers: dict[int, int | None] = {}
    for m in _REPLY_LINE.finditer(reply or ""):
        tag = int(m.group(1)) - 1
        if not 0 <= tag < n_groundings or tag in answers:
            continue
        if m.group(3):
            answers[tag] = None
        elif 1 <= int(m.group(2)) <= n_references:
            answers[tag] = int(m.group(2)) - 1
    return answers


@dataclass
class VLMRouter:
    """Routes by asking a VLM, through any `VLMBackend`, which reference each tag refers to.

    One text-only request per (tags, references, context); the last `cache_size` replies are kept so the
    GRPO generations that repeat a rollout cost one call. Tags the reply leaves out, or all of them when the
    request fails (not cached: the server may come back), are routed by `fallback`.
    """

    backend: VLMBackend
    fallback: Router | None = field(default_factory=TextRouter)
    context_chars: int = 80
    max_tokens: int = 256
    cache_size: int = 4096
    _replies: dict[str, str] = field(default_factory=dict, repr=False)

    def route(self, groundings: Sequence[Grounding], references: Sequence[ReferenceName],
              text: str = "") -> list[int | None]:
        if not groundings or not references:
            return [None] * len(groundings)
        prompt = router_prompt(groundings, references, text, self.context_chars)
        reply = self._replies.get(prompt)
        if reply is None:
            from vgt_agent.backends.base import BackendError

            try:
                reply = self.backend.generate([{"role": "user", "content": prompt}], [],
                                              max_tokens=self.max_tokens, temperature=0.0).text
            except BackendError:
                reply = ""
            else:
                if len(self._replies) >= self.cache_size:
                    self._replies.pop(next(iter(self._replies)))
                self._replies[prompt] = reply
        answers = parse_router_reply(reply, len(groundings), len(references))
        missing = [k for k in range(len(groundings)) if k not in answers]
        if missing and self.fallback is not None:
            routed = self.fallback.route([groundings[k] for k in missing], references, text)
            answers.update(zip(missing, routed, strict=True))
        return [answers.get(k) for k in range(len(groundings))]


def first_per_reference(routes: Sequence[int | None], n_references: int) -> list[int | None]:
    """For each reference, the index of the earliest grounding routed to it (None when none is)."""
    return [routes.index(r) if r in routes else None for r in range(n_references)]
