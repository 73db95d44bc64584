"""System prompts, in vgt's own words. One place, so SFT traces, RL rollouts and `ask` say the same thing."""

from __future__ import annotations

COORDINATES = (
    "Coordinates are integers from 0 to 1000 relative to the image: [0, 0] is the top-left corner and "
    "[1000, 1000] the bottom-right."
)
ANSWER = "Finish with the final answer alone inside \\boxed{}."

AGENT_TEXT_TOOL = (
    "You answer questions about an image by reasoning step by step inside <think> ... </think>. "
    "When you need to find objects, write <ground> short noun phrase </ground> and stop; a grounding tool "
    "replies with the instances it found as <obj> phrase | [x, y]; [x, y] </obj> (points) or "
    "<obj> phrase | [x1, y1, x2, y2] </obj> (boxes), or says none were found. Use what it returns. "
    + COORDINATES + " " + ANSWER
)

AGENT_FUNCTION_TOOL = (
    "You answer questions about an image by reasoning step by step inside <think> ... </think>. "
    "When you need to find objects, call the segment_phrase tool with a short noun phrase; it returns the "
    "instances it found as <obj> phrase | coordinates </obj> tags. " + COORDINATES + " " + ANSWER
)

SEGMENT_PHRASE_TOOL = {
    "type": "function",
    "function": {
        "name": "segment_phrase",
        "description": "Find every instance of a short noun phrase in the image (e.g. 'red circle').",
        "parameters": {
            "type": "object",
            "properties": {"phrase": {"type": "string", "description": "A short noun phrase."}},
            "required": ["phrase"],
        },
    },
}


def format_question(question: str, choices: tuple[str, ...] | list[str] = ()) -> str:
    """The question as the model sees it: options appended as "A. ...", unless the sentence already names
    every option (e.g. "Which is larger, the red star or the blue circle?")."""
    if not choices or all(c.lower() in question.lower() for c in choices):
        return question
    options = " ".join(f"{chr(ord('A') + i)}. {c}" for i, c in enumerate(choices))
    return f"{question} Options: {options}. Answer with the letter."
