"""One name per idea: the CLI's choices come from `vocabulary.py`, which must agree with what the library
implements, and `--help` lists them."""

from __future__ import annotations

import contextlib

import pytest
from typer.testing import CliRunner

from vgt_agent import vocabulary as v
from vgt_agent.cli.main import app

runner = CliRunner()


def test_the_vocabulary_is_what_the_library_implements(tmp_path) -> None:
    from vgt_agent.geometry.conventions import CANONICAL, CONVENTIONS
    from vgt_agent.grounders.factory import make_grounder
    from vgt_agent.tiny.table import SIZES
    from vgt_agent.training.data import SYSTEM_PROMPTS
    from vgt_agent.training.eval import MODE_VARIANT, eval_mode
    from vgt_agent.world.style import STYLES

    assert tuple(CONVENTIONS) == v.COORDS and CANONICAL.name == v.CANONICAL_COORDS  # `--coords` checks nothing else
    assert set(SYSTEM_PROMPTS) == set(v.VARIANTS)  # every variant has its system prompt
    assert set(MODE_VARIANT.values()) | {v.AGENT} == set(v.VARIANTS)  # and every one can be evaluated
    assert {eval_mode(variant)[0] for variant in v.VARIANTS} == set(MODE_VARIANT)
    assert tuple(SIZES) == v.TableSize.__args__ and STYLES == v.WORLD_STYLES
    assert set(v.ROLLOUT_GROUNDERS) <= set(v.GROUNDERS) and set(v.PER_SAMPLE) <= set(v.GROUNDERS)
    for name in ("world", "gold", "gold-shuffled"):  # sam3 needs a checkpoint: tests/test_sam3.py
        with pytest.raises(ValueError, match="needs") if name in v.PER_SAMPLE else contextlib.nullcontext():
            make_grounder(name)
    with pytest.raises(ValueError, match="unknown grounder"):
        make_grounder("magic")


@pytest.mark.parametrize(("command", "option", "values"), [
    (["ask"], "--grounder", v.GROUNDERS), (["ask"], "--grounding", v.GROUNDINGS),
    (["ask"], "--answer-type", v.ANSWER_TYPES), (["synth"], "--engine", v.ENGINES),
    (["synth"], "--grounder", v.GROUNDERS), (["eval"], "--variant", v.VARIANTS),
    (["train", "sft"], "--variant", v.VARIANTS), (["train", "rl"], "--grounder", v.ROLLOUT_GROUNDERS),
    (["traces", "list"], "--grounding", v.GROUNDINGS),
])
def test_help_lists_each_choice(command: list[str], option: str, values: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    line = next(line for line in result.stdout.splitlines() if line.strip("│ ").startswith(f"{option} "))
    assert f"<{'|'.join(values)}>" in line


def test_one_name_per_idea_across_commands() -> None:
    """The form of thought is `--variant`, the form of groundings `--grounding`, requests in flight
    `--concurrency`, processes `--workers`: the old names are gone."""
    helps = {" ".join(c): runner.invoke(app, [*c, "--help"], env={"COLUMNS": "250"}).stdout
             for c in (["ask"], ["synth"], ["eval"], ["train", "sft"], ["train", "rl"], ["traces", "list"])}
    for name, text in helps.items():
        assert " --mode " not in text and " --agent " not in text, name
        assert " --kind " not in text, name
    assert " --concurrency " in helps["eval"] and " --workers " not in helps["eval"]
    assert " --resume-run " in helps["eval"]
