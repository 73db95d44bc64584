"""Batch synthesis of verified, grounded traces (`vgt synth`).

Stages: teachers (`oracle`, `teacher`), `verify`, `extract`, the grounding agent (`grounding_agent` with
`world_policy` or `vlm_policy`), `align` + `filters`, `records`; the per-sample graph is
`vgt_agent.synthesis.graph`; `pipeline`, `writer` and `batch` run many samples resumably.
"""
