"""The synthesis pipeline's prompts: teacher, extractor, and the grounding agent modelled on SAM 3's agent.

Kept apart from `vgt_agent.prompts` (the prompts a trained model sees) because none of these reach SFT
traces: they instruct the teacher and helper models that produce them.
"""

from __future__ import annotations

DISTILL_SYSTEM = (
    "You answer questions about an image. Reason step by step inside <think> ... </think>: say which objects "
    "matter, where they are in the image and what you conclude from them, naming every object with a short "
    "descriptive phrase (for example 'the red cup on the left'). Never write coordinates or tags other than "
    "<think>. After </think>, give the final answer alone inside \\boxed{}: a number for counting questions, "
    "yes or no for yes/no questions, the option letter for multiple choice."
)

EXTRACT_SYSTEM = (
    "You read a question about an image and a reasoning trace that answers it, and list the visual objects the "
    "reasoning needs: the objects the answer is about, the visible alternatives of a multiple-choice question, "
    "the spatial anchors, the counted instances (as one entry with the count the trace states), and both "
    "endpoints of every relation. For each object give a short name a segmentation model understands "
    "('black laptop'), a disambiguating context ('on the table, near side'), its role (answer, alternative, "
    "anchor, counted, endpoint or reference), the count the trace states (counted objects only, else null), "
    "and mentions: the exact substrings of the trace that refer to it, copied verbatim. "
    "Reply with JSON only."
)

EXTRACT_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "objects": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "context": {"type": "string"},
                    "role": {"type": "string",
                             "enum": ["answer", "alternative", "anchor", "counted", "endpoint", "reference"]},
                    "count": {"type": ["integer", "null"]},
                    "mentions": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["name", "context", "role", "count", "mentions"],
            },
        }
    },
    "required": ["objects"],
}

AGENT_SYSTEM = (
    "You find one object (or group of objects) in an image with a segmentation tool. Each turn, think briefly "
    "inside <think> ... </think>, then call exactly one tool as <tool>{\"name\": ..., \"parameters\": {...}}</tool>. "
    "Tools: segment_phrase {\"text_prompt\": a short noun phrase} returns numbered candidate masks with scores, "
    "shown on the image; a phrase may not be reused, so revise it when results miss or confuse. "
    "examine_each_mask {} has every current candidate checked on a zoomed crop and keeps only the correct ones. "
    "select_masks_and_return {\"final_answer_masks\": [mask numbers]} ends with those masks. "
    "report_no_mask {} ends when the object is not in the image. Never write coordinates."
)

EXAMINE_PROMPT = (
    "The first image shows candidate mask {id} highlighted on the whole picture; the second is a zoomed crop "
    "around it. Is the highlighted region exactly one {name} ({context})? Reply <verdict>yes</verdict> or "
    "<verdict>no</verdict>."
)


def agent_request(name: str, context: str) -> str:
    """The grounding agent's task message."""
    return f"Find: {name}" + (f" (context: {context})" if context else "") + "."
