"""Synthesis's option rules are the library's (`synthesis/options.py`): a program that calls `run_synth` gets
the same refusals as `vgt synth` (which turns them into exit 2 before writing anything)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from vgt_agent.graphs.ask import AskLimits
from vgt_agent.store import TraceStore
from vgt_agent.synthesis.graph import SynthSettings
from vgt_agent.synthesis.options import SynthOptionError, check_engine, check_spec, resolve_roles
from vgt_agent.synthesis.run import PipelineSpec, build_pipeline, run_synth
from vgt_agent.world.storage import load_split, make_split


def _spec(**changes) -> PipelineSpec:
    spec = PipelineSpec(settings=SynthSettings(via="distill", k=1, keep=1, agent_kind="point", agent_protocol="text",
                                               agent_limits=AskLimits()),
                        grounder="world", sam3_checkpoint=None, teacher="world-oracle", extract="scene", policy="rule",
                        backend="openai", model=None, base_url=None, max_attempts=1, temperature=1.0, max_tokens=64)
    return dataclasses.replace(spec, **changes)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"engine": "spark"}, "--engine must be one of"),
    ({"engine": "local", "base_urls": ("http://a/v1", "http://b/v1")}, "add --engine ray"),
    ({"engine": "ray", "workers": 2}, "use --ray-actors"),
    ({"engine": "local", "ray_address": "auto"}, "need --engine ray"),
])
def test_engine_rules(kwargs: dict, message: str) -> None:
    engine = kwargs.pop("engine")
    with pytest.raises(SynthOptionError, match=message):
        check_engine(engine, **kwargs)
    check_engine("ray", base_urls=("http://a/v1", "http://b/v1"))  # several servers are Ray's


def test_roles_default_from_the_data_and_refuse_what_it_cannot_feed() -> None:
    assert dataclasses.astuple(resolve_roles("distill", world=True, dataset="world-train")) == ("world-oracle", "scene",
                                                                                             "rule")
    assert resolve_roles("agent", world=True, dataset="world-train").teacher == "model"
    assert dataclasses.astuple(resolve_roles("distill", world=False, dataset="tallyqa")) == ("model", "llm", "vlm")
    for kwargs in ({"teacher": "world-oracle"}, {"extract": "scene"}, {"policy": "rule"}):
        with pytest.raises(SynthOptionError, match="needs a world dataset"):
            resolve_roles("distill", world=False, dataset="tallyqa", **kwargs)
    with pytest.raises(SynthOptionError, match="--teacher world-oracle needs a world dataset"):
        resolve_roles("agent", world=False, dataset="tallyqa", teacher="world-oracle")


def test_pipeline_rules() -> None:
    oracle_agent = _spec(settings=dataclasses.replace(_spec().settings, via="agent", agent_protocol="function"))
    for spec, world, workers, message in (
        (oracle_agent, True, 1, "in-text <ground> protocol only"),
        (_spec(grounder="gold"), False, 1, "needs a world dataset"),
        (_spec(grounder="sam3"), True, 2, "load SAM3 once per worker"),
        (_spec(teacher="model", backend="transformers"), True, 2, "load the model once per worker"),
    ):
        with pytest.raises(SynthOptionError, match=message):
            check_spec(spec, world=world, workers=workers)
    check_spec(_spec(), world=True, workers=2)


def test_run_synth_refuses_before_touching_the_store(tmp_path: Path) -> None:
    make_split(tmp_path / "tally", "world-tally", n=2)
    samples = list(load_split(tmp_path / "tally"))
    spec = _spec(grounder="sam3")
    db = tmp_path / "t.db"
    store = TraceStore.open(db)
    with pytest.raises(SynthOptionError, match="once per worker"):
        run_synth(store, spec, build_pipeline(_spec()), samples, name="x", backend="world-oracle", model=None,
                  config={}, workers=2)
    assert store.runs() == []
    store.close()
