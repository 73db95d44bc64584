"""The tokenizer vocabulary of vgt-tiny, built by vgt from the world's own words and the agent's text.

Why: a word-level vocabulary over exactly what the policy reads and writes (the agent system prompt, the
world's question templates and the wordings people type, its colours/shapes/sizes, the teacher's reasoning
words) makes every word one token and every digit one token, so the sequences a 2-core CPU has to train on
stay short.
"""

from __future__ import annotations

import re

from vgt_agent.backends.tiny_gemma3 import DEFAULT_WORDS
from vgt_agent.prompts import AGENT_FUNCTION_TOOL, AGENT_TEXT_TOOL
from vgt_agent.world.concepts import COLOUR_WORDS, EXTREME_WORDS, GENERIC_NOUNS, SHAPE_WORDS, SIZE_WORDS
from vgt_agent.world.palette import COLOURS, SHAPES, SIZES
from vgt_agent.world.phrasing import GRAMMAR_WORDS

# The world's question templates (world/counting.py, world/spatial.py) and format_question's options.
QUESTION_WORDS = (
    "how many are there is the to left right of above below where relative which closer larger smaller "
    "second third leftmost rightmost topmost bottommost or shape shapes not options answer with letter"
)
# What the world-oracle teacher writes (backends/world_oracle.py) and what the tool says back.
REASONING_WORDS = (
    "total vs so by first second found only number is x y no yes largest smallest of and asked to tie tens "
    "same other it one them none not unknown keep cannot read this question a b c d in out"
)


def world_vocabulary() -> tuple[str, ...]:
    """Every word the policy needs as one token, in a stable order (same list, same token ids)."""
    words: list[str] = list(DEFAULT_WORDS)
    for text in (AGENT_TEXT_TOOL, AGENT_FUNCTION_TOOL, QUESTION_WORDS, REASONING_WORDS):
        words += re.findall(r"[A-Za-z]+", text)
    words += list(COLOURS) + list(SHAPES) + [s + "s" for s in SHAPES] + list(SIZES)
    # the wordings people type (world/phrasing.py) and the concept words the grounder reads
    words += sorted(GRAMMAR_WORDS)
    for table in (COLOUR_WORDS, SHAPE_WORDS, SIZE_WORDS, EXTREME_WORDS, GENERIC_NOUNS):
        words += sorted(w for w in table if w.isalpha())
    return tuple(dict.fromkeys(w.lower() for w in words))
