"""System prompts, in vgt's own words. One place, so SFT traces, RL rollouts and `ask` say the same thing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vgt_agent.vocabulary import AGENT

__all__ = ["AGENT"]  # and the prompts below

if TYPE_CHECKING:
    from vgt_agent.geometry.conventions import Convention

COORDINATES = (
    "Coordinates are integers from 0 to 1000 relative to the image: [0, 0] is the top-left corner and "
    "[1000, 1000] the bottom-right."
)


def coordinates_sentence(convention: Convention) -> str:
    """What a prompt says of coordinates to a model of `convention`: `COORDINATES` for canonical 0..1000."""
    if convention.extent is None:
        return ("Coordinates are integer pixels of the image as you see it: [0, 0] is the top-left corner, x grows "
                "to the right and y downwards.")
    high = f"{convention.extent:g}"
    kind = "integers" if convention.decimals == 0 else "numbers"
    places = convention.decimals
    digits = "" if places == 0 else f" (up to {places} decimal{'s' if places > 1 else ''})"
    return (f"Coordinates are {kind} from 0 to {high}{digits} relative to the image: [0, 0] is the top-left corner and "
            f"[{high}, {high}] the bottom-right.")


def in_convention(prompt: str, convention: Convention) -> str:
    """`prompt` with its coordinates sentence said in `convention` (unchanged for canonical 0..1000)."""
    return prompt.replace(COORDINATES, coordinates_sentence(convention))


ANSWER = "Finish with the final answer alone inside \\boxed{}."

# AGENT (vocabulary.py) is the variant of agent traces (the ask graph's turns); its system prompt is this one
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


# --- the four self-grounding variants of the paper (SFT targets, RL rollouts, evaluation) ---------------

_THINK = "You answer questions about an image. Reason step by step inside <think> ... </think>"

BOX_GROUNDING = (
    _THINK + ", and ground every object your reasoning relies on right after you mention it, as "
    "<obj> short noun phrase | [x1, y1, x2, y2] </obj>: the box around it, or one box per instance "
    "separated by '; ' when the phrase names several objects. " + COORDINATES + " " + ANSWER
)

POINT_GROUNDING = (
    _THINK + ", and ground every object your reasoning relies on right after you mention it, as "
    "<obj> short noun phrase | [x, y] </obj>: a point on the object, or one point per instance "
    "separated by '; ' when the phrase names several objects. " + COORDINATES + " " + ANSWER
)

PLAIN_THINKING = _THINK + " in plain words, then answer. " + ANSWER

DIRECT_ANSWER = (
    "You answer questions about an image. Reply with the final answer alone inside \\boxed{}, "
    "without any reasoning."
)

VARIANT_PROMPTS: dict[str, str] = {
    "box": BOX_GROUNDING,
    "point": POINT_GROUNDING,
    "plain": PLAIN_THINKING,
    "direct": DIRECT_ANSWER,
}
"""System prompt per trained variant: box / point grounded thinking, non-grounded thinking, plain answer."""


ROUTER_INSTRUCTIONS = (
    "A reasoning text about an image marks objects with tags. For each numbered tag, decide which numbered "
    "reference object it refers to, judging by the tag's phrase and the words around it ([TAG] marks its "
    "place), or none if it refers to none of them. Reply with one line per tag, formatted as "
    "'<tag number>: <reference number>' or '<tag number>: none', and nothing else."
)


def image_question_messages(system: str, question: str, choices: tuple[str, ...] | list[str] = ()) -> list[dict]:
    """The opening of every conversation vgt sends: system prompt, then the image and the question.

    One builder, so the agent, evaluation, training examples and teachers all ask in the same words.
    """
    text = format_question(question, choices)
    return [{"role": "system", "content": system},
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
