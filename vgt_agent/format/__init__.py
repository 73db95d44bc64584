"""How a grounded thought is written and read: the one owner of the `<obj>`/`<ground>`/`\\boxed{}` syntax.

A thought is reasoning interleaved with groundings such as `<obj> red cup | [412, 233] </obj>` (a point) or
`<obj> red cup | [131, 138, 440, 502] </obj>` (a box), coordinates being integers normalised to 0..1000.
Everything that writes or reads that syntax (synthesis, rewards, the agent loop, viewers) goes through this
package so the SFT traces, the RL rollouts and the reward parser can never disagree.

`parse` must never raise on model output and runs in linear time: it tokenises tags with one flat regex,
matches them with a stack, and validates each tag body with simple splits (no backtracking-prone patterns).

Layout: `syntax` (the literals, in one place), `thought` (the data types and canonical rendering), `parsing`
(`parse`), `rewrite` (strip groundings, fill placeholders, boxes to points).
"""

from vgt_agent.format.parsing import parse, read_groundings
from vgt_agent.format.rewrite import CoordsSource, box_trace_to_point_trace, fill_placeholders, strip_groundings
from vgt_agent.format.syntax import ARITY, KIND_OF_ARITY, PAPER_SYNTAX, Kind, ProblemCode, Syntax
from vgt_agent.format.thought import (
    GroundedThought,
    Grounding,
    Placeholder,
    Problem,
    Segment,
    ToolRequest,
    compose,
    find_boxed,
    render,
    render_grounding,
    render_placeholder,
    render_tool_request,
    render_tool_result,
    stacked_coords,
    tag_spans,
)

__all__ = [
    "ARITY", "KIND_OF_ARITY", "PAPER_SYNTAX", "CoordsSource", "GroundedThought", "Grounding", "Kind", "Placeholder",
    "Problem", "ProblemCode", "Segment", "Syntax", "ToolRequest", "box_trace_to_point_trace", "compose",
    "fill_placeholders", "find_boxed", "parse", "read_groundings", "render", "render_grounding", "render_placeholder",
    "render_tool_request", "render_tool_result", "stacked_coords", "strip_groundings", "tag_spans",
]
