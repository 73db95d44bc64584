"""`--via agent`: the ask agent's verified tool-calling traces, rewritten so the model grounds by itself.

In the ask trace the model writes `<ground> red circles </ground>` and the tool answers with
`<obj> red circles | [..]; [..] </obj>`. The rewrite drops the request and keeps the tool's tag inline, as
if the model had written it, so SFT teaches grounding without a tool; a "nothing found" reply stays as
its plain sentence. Function-calling traces read the same once the tool messages are inlined.
"""

from __future__ import annotations

from typing import Any

from vgt_agent.format import parse


def _without_requests(text: str) -> str:
    """The text with every `<ground> ... </ground>` request removed (and the space before it)."""
    thought = parse(text, expect_answer=False)
    pieces, position = [], 0
    for request in thought.tool_requests:
        start, end = request.span
        pieces.append(text[position:start].rstrip(" "))
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


def rewrite_agent_trace(chunks: list[dict[str, Any]], *, inline: bool = True) -> str:
    """One self-grounded thought from the ask graph's chunks (assistant turns and tool results).

    With `inline=False` the tool results are left out too: the model's own words only, the plain baseline.
    """
    pieces: list[str] = []
    for chunk in chunks:
        content = chunk["content"]
        if chunk["role"] == "tool":
            if not inline:
                continue
            result = content.strip()
            if pieces and pieces[-1] and not pieces[-1][-1].isspace():
                result = " " + result
            pieces.append(result)
        else:
            text = _without_requests(content)
            if pieces and text and not text[0].isspace() and text[0] not in ".,;:!?":
                text = " " + text
            pieces.append(text)
    return "".join(pieces)


def agent_verdict(state: dict[str, Any], rewritten: str) -> str | None:
    """Why an ask run is not kept (None: keep it): errors, wrong answers, unverified self-groundings."""
    if state.get("error"):
        return "error"
    if state.get("stop_reason") != "answered":
        return f"stopped_{state.get('stop_reason')}"
    if state.get("correct") is None or state.get("answer") is None:
        return "no_answer"
    if not state["correct"]:
        return "wrong_answer"
    fraction = state.get("verified_fraction")
    if fraction is not None and fraction < 1.0:
        return "unverified_grounding"
    thought = parse(rewritten)
    if thought.problems or thought.tool_requests or thought.placeholders:
        return "malformed_tags"
    return None
