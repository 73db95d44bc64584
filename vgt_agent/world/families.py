"""Question families by name: what a SplitSpec's `families` refer to."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from vgt_agent.world.attributes import attribute, attribute_relation
from vgt_agent.world.counting import count_colour_shape, count_not_colour, count_shape
from vgt_agent.world.paraphrase import count_phrased, exist, spatial_phrased
from vgt_agent.world.question import Question
from vgt_agent.world.scene import Scene
from vgt_agent.world.spatial import closer_to, kth_relation, larger_of, relation_choice, relation_yes_no
from vgt_agent.world.splits import SplitSpec

Family = Callable[[np.random.Generator, SplitSpec], tuple[Scene, Question]]

FAMILIES: dict[str, Family] = {
    "count_colour_shape": count_colour_shape,
    "count_not_colour": count_not_colour,
    "count_shape": count_shape,
    "relation_yes_no": relation_yes_no,
    "relation_choice": relation_choice,
    "closer": closer_to,
    "larger": larger_of,
    "kth_relation": kth_relation,
    "count_phrased": count_phrased,
    "exist": exist,
    "attribute": attribute,
    "attribute_relation": attribute_relation,
    "spatial_phrased": spatial_phrased,
}
COUNTING = ("count_colour_shape", "count_not_colour", "count_shape", "count_phrased")
