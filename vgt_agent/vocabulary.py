"""The words vgt's CLI and library share, one definition each.

Which grounders, forms of thought (variants), grounding forms, agent protocols, backends, answer types and
synthesis roles exist. Each is a `Literal`, which typer turns into a choice (listed in `--help`, anything else
refused with exit 2 before a command runs), and a tuple of its values for the library. Nothing is imported
here, so the CLI can name the choices without loading what implements them.
"""

from __future__ import annotations

from typing import Literal, get_args

GrounderName = Literal["world", "sam3", "gold", "gold-shuffled"]
GROUNDERS: tuple[str, ...] = get_args(GrounderName)
PER_SAMPLE = ("gold", "gold-shuffled")  # built for one sample (its scene graph), never shared across samples
RolloutGrounder = Literal["world", "gold-shuffled", "gold"]  # RL rollouts: no model grounder in the loop
ROLLOUT_GROUNDERS: tuple[str, ...] = get_args(RolloutGrounder)

Grounding = Literal["point", "box"]  # how a grounding locates its instances: a point or a box each
GROUNDINGS: tuple[str, ...] = get_args(Grounding)

AGENT = "agent"  # the variant of agent traces (the ask graph's turns, the grounder's replies)
Variant = Literal["direct", "plain", "point", "box", "agent"]
"""The form of a model's thought: the answer alone, plain (non-grounded) thinking, thinking grounded with
points or boxes it writes itself, or the agent that calls the grounder."""
VARIANTS: tuple[str, ...] = get_args(Variant)
StoredVariant = Literal["direct", "plain", "point", "box", "agent", "candidate"]  # + synthesis's raw candidates
TraceStatus = Literal["ok", "rejected", "error", "refused"]

Protocol = Literal["text", "function"]  # the agent's tool calls: <ground> tags in its text, or function calls
PROTOCOLS: tuple[str, ...] = get_args(Protocol)
BackendName = Literal["openai", "transformers"]
BACKENDS: tuple[str, ...] = get_args(BackendName)

AnswerType = Literal["count", "yes_no", "choice", "text"]
ANSWER_TYPES: tuple[str, ...] = get_args(AnswerType)

ORACLE = "world-oracle"  # the world's rule teacher, as `--teacher` names it
Via = Literal["distill", "agent"]  # synthesis: distil a teacher's reasoning, or record the agent's runs
TeacherName = Literal["world-oracle", "model"]
Extractor = Literal["scene", "llm"]
GroundingPolicy = Literal["rule", "vlm"]
Engine = Literal["local", "ray"]
ENGINES: tuple[str, ...] = get_args(Engine)

WorldStyle = Literal["canonical", "varied"]  # how the embedded world draws its scenes
WORLD_STYLES: tuple[str, ...] = get_args(WorldStyle)
TableSize = Literal["smoke", "mid", "full"]  # `vgt repro table --size`

CoordsName = Literal["norm1000", "unit", "percent", "qwen2.5-vl-pixels"]  # `--coords`: geometry/conventions.py
COORDS: tuple[str, ...] = get_args(CoordsName)
CANONICAL_COORDS = "norm1000"  # what vgt stores and scores
