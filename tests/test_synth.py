"""`vgt synth`: world-oracle end to end with groundings checked against gold masks, rejection reasons,
the grounding agent (rule and VLM policies), the agent path (scripted model on loopback, tiny Gemma3),
resume, SIGINT, SIGKILL at random points, per-sample errors, a dead server, bad input, shards + merge."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from openai_stub_server import StubOpenAIServer
from scipy.optimize import linear_sum_assignment
from store_probe import committed_samples
from synth_models import OracleTeacher, counting_agent
from typer.testing import CliRunner

from vgt_agent import geometry
from vgt_agent.backends import OpenAIBackend
from vgt_agent.cli.main import app
from vgt_agent.format import parse, strip_groundings
from vgt_agent.grounders.base import GroundingResult
from vgt_agent.grounders.world import WorldGrounder
from vgt_agent.store import TraceStore
from vgt_agent.synthesis.align import align, find_mentions
from vgt_agent.synthesis.batch import BatchRunner
from vgt_agent.synthesis.extract import SceneExtractor, parse_objects
from vgt_agent.synthesis.filters import drift, drifted, malformed, repetitive
from vgt_agent.synthesis.graph import SynthSettings
from vgt_agent.synthesis.grounding_agent import GroundingAgent
from vgt_agent.synthesis.objects import Grounded, MaskInfo, NeededObject
from vgt_agent.synthesis.oracle import ORACLE_BACKEND, ORACLE_MODEL, WorldOracleTeacher
from vgt_agent.synthesis.pipeline import SynthPipeline
from vgt_agent.synthesis.teacher_prompts import EXTRACT_SCHEMA
from vgt_agent.synthesis.vlm_policy import VLMPolicy
from vgt_agent.synthesis.world_scene import WorldScene
from vgt_agent.synthesis.writer import StoreWriter
from vgt_agent.world.storage import load_split, make_split

runner = CliRunner()
ROOT = Path(__file__).parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
CLI = [sys.executable, "-c", "from vgt_agent.cli.main import main; main()"]


@pytest.fixture(scope="module")
def train_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world") / "train"
    make_split(out, "world-train", n=16, style="canonical")  # 448 px PNGs, as the checks below expect
    return out


@pytest.fixture(scope="module")
def tally_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world") / "tally"
    make_split(out, "world-tally", n=5)
    return out


def synth(*args: str) -> Any:
    return runner.invoke(app, ["synth", *args])


def summary_of(result: Any) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def rows(db: Path, run_id: str) -> list[dict[str, Any]]:
    with TraceStore.open(db, create=False, readonly=True) as store:
        return [store.trace(r["id"]) for r in store.traces(run=run_id)]


def assert_complete(db: Path, k: int) -> dict[str, set]:
    """Integrity, and per sample: all K candidates, every variant a candidate row lists, and plain/point/box
    for every candidate that was kept (status ok, no reason)."""
    conn = sqlite3.connect(db)
    assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
    assert conn.execute("pragma foreign_key_check").fetchall() == []
    found: dict[str, set] = defaultdict(set)
    listed: dict[str, set] = defaultdict(set)
    kept: dict[str, set] = defaultdict(set)
    for sid, variant, attempt, status, reason, meta in conn.execute(
            "select sample_id, variant, attempt, status, reason, meta from traces"):
        found[sid].add((variant, attempt, status))
        listed[sid] |= {(name.split(":")[0], int(name.split(":")[1])) for name in json.loads(meta).get("variants", [])}
        if variant == "candidate" and status == "ok" and reason is None:
            kept[sid].add(attempt)
    conn.close()
    for sid, have in found.items():
        if all(status == "error" for *_, status in have):
            continue
        pairs = {(v, a) for v, a, _ in have}
        assert {a for v, a in pairs if v == "candidate"} == set(range(k)), sid
        assert listed[sid] <= pairs, sid
        for a in kept[sid]:
            assert {("plain", a), ("point", a), ("box", a)} <= pairs, sid
    return found


def check_against_gold(trace: dict[str, Any], sample) -> int:
    """Every point lies in its own gold mask (one-to-one), every box has IoU >= 0.9 with its gold box."""
    width, height = sample.meta["width"], sample.meta["height"]
    scene = {o["id"]: o for o in sample.meta["objects"]}
    checked = 0
    assert len(trace["groundings"]) == len(trace["meta"]["tag_objects"])
    for g, obj in zip(trace["groundings"], trace["meta"]["tag_objects"], strict=True):
        gold = [scene[i] for i in obj["scene_ids"]]
        assert len(g["coords"]) == len(gold), (g["phrase"], obj["name"])
        if g["kind"] == "point":
            points = [geometry.pixel_from_norm_point(x, y, width, height) for x, y in g["coords"]]
            masks = np.stack([geometry.decode_rle(o["rle"]) for o in gold])
            assert geometry.match_points_to_masks(points, masks).tp == len(gold)
        else:
            boxes = [geometry.pixel_from_norm_box(c, width, height) for c in g["coords"]]
            iou = geometry.box_iou_matrix(boxes, [o["box"] for o in gold])
            r, c = linear_sum_assignment(iou, maximize=True)
            assert len(r) == len(gold) and iou[r, c].min() >= 0.9
        checked += len(gold)
    return checked


# ---- world-oracle end to end -------------------------------------------------------------------------


def test_world_oracle_end_to_end_groundings_match_gold(train_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    out = summary_of(synth("--dataset", str(train_dir), "--db", str(db), "--k", "2", "--concurrency", "4", "--json"))
    assert out["status"] == "done" and out["processed"] == 16 and out["kept"] == 16 and out["errors"] == 0
    assert out["run"] == "synth/world/world-train/distill/world-oracle" and out["variants"] == 48
    assert set(out["seconds_per_sample_by_stage"]) >= {"distill", "verify", "extract", "ground", "align", "store"}
    samples = {s.id: s for s in load_split(train_dir)}
    traces = rows(db, out["run_id"])
    by_variant = defaultdict(list)
    for t in traces:
        by_variant[t["variant"]].append(t)
        assert t["backend"] == ORACLE_BACKEND and t["model"] == ORACLE_MODEL  # labelled in every record
        assert t["timings"]["ground_s"] > 0 and "distill_s" in t["timings"]
    assert len(by_variant["candidate"]) == 32 and all(len(by_variant[v]) == 16 for v in ("plain", "point", "box"))
    checked = 0
    for kind in ("point", "box"):
        for t in by_variant[kind]:
            assert t["status"] == "ok" and t["correct"] is True and t["grounder"] == "world" and t["parent_id"]
            checked += check_against_gold(t, samples[t["sample_key"]])
            plain = next(p for p in by_variant["plain"] if p["sample_id"] == t["sample_id"])
            assert strip_groundings(t["completion"]) == plain["completion"]  # tags added, nothing rewritten
            assert parse(t["completion"]).is_valid
            selected = [m for m in t["masks"] if m["selected"]]
            assert sum(len(g["coords"]) for g in t["groundings"]) == len(selected)
            assert all(geometry.decode_rle(m["rle"]).shape == (448, 448) for m in selected)
    assert checked > 40
    families = {samples[t["sample_key"]].meta["family"] for t in by_variant["box"] if t["groundings"]}
    assert len(families) >= 7  # counting and every spatial family carry groundings
    used = [c for c in by_variant["candidate"] if c["reason"] is None]
    unused = [c for c in by_variant["candidate"] if c["reason"] == "unused"]
    assert len(used) == len(unused) == 16 and all(c["status"] == "ok" for c in used + unused)
    assert all(c["meta"]["grounding"][0]["steps"][0]["tool"] == "segment_phrase" for c in used)
    with TraceStore.open(db, create=False, readonly=True) as store:
        run = store.run(out["run_id"])
    assert run["status"] == "done" and run["backend"] == ORACLE_BACKEND and run["model"] == ORACLE_MODEL


def test_oracle_candidates_differ_and_all_verify(train_dir: Path) -> None:
    teacher = WorldOracleTeacher()
    for sample in load_split(train_dir):
        texts = [c.text for c in teacher.candidates(sample, sample.load_image(), 3)]
        assert len(set(texts)) == 3, texts
        assert all(repetitive(t) is None for t in texts)


# ---- rejection reasons --------------------------------------------------------------------------------


def _wrong(sample) -> str:
    if sample.answer_type == "count":
        return str(int(sample.answer) + 1)
    if sample.answer_type == "yes_no":
        return "no" if sample.answer == "yes" else "yes"
    return next(letter for letter in "AB" if letter != sample.answer)


def test_rejection_reasons_are_recorded(train_dir: Path, tmp_path: Path) -> None:
    samples = list(load_split(train_dir))[:3]

    def script(sample, n: int) -> str | None:
        return {
            0: f"<think>At a glance.</think> \\boxed{{{_wrong(sample)}}}",
            1: "<think>I am not sure what the picture shows.</think>",
            2: "<think>" + "I look at the shapes again and again. " * 12 + f"</think> \\boxed{{{sample.answer}}}",
            3: f"<think>The <obj> shape | [10, 20] </obj> decides it.</think> \\boxed{{{sample.answer}}}",
            4: "<think>" + " ".join(["word"] * 300) + f"</think> \\boxed{{{sample.answer}}}",
        }.get(n)

    db = tmp_path / "t.db"
    with StubOpenAIServer(OracleTeacher(samples, script)) as server:
        out = summary_of(synth("--dataset", str(train_dir), "--limit", "3", "--teacher", "model", "--k", "6",
                               "--max-tokens", "200", "--base-url", server.base_url, "--model", server.model,
                               "--db", str(db), "--json"))
    assert out["kept"] == 3 and out["run"].endswith("/distill/openai:stub-vlm")
    expected = {"wrong_answer": 3, "no_answer": 3, "repetitive": 3, "tags_in_trace": 3, "truncated": 3}
    assert out["candidates_rejected_by_reason"] == expected
    for t in rows(db, out["run_id"]):
        assert t["backend"] == "openai" and t["model"] == "stub-vlm"
        if t["variant"] == "candidate":
            reasons = [None, "wrong_answer", "no_answer", "repetitive", "tags_in_trace", "truncated"]
            assert t["reason"] == reasons[(t["attempt"] + 1) % 6]
            assert t["status"] == ("ok" if t["attempt"] == 5 else "rejected")
        else:
            assert t["attempt"] == 5
    assert_complete(db, k=6)


def test_llm_extraction_failure_and_all_wrong_candidates_are_rejected(train_dir: Path, tmp_path: Path) -> None:
    # --shard 0/13 selects samples 0 and 13 of the split: both "How many <colour> <shape>s are there?" (13 families)
    bad, good = [s for s in load_split(train_dir) if s.meta["family"] == "count_colour_shape"]
    extract_requests = []

    def extractor_or(teacher: OracleTeacher):
        def respond(body: dict[str, Any]) -> str:
            if body["messages"][0]["content"].startswith("You read a question"):
                extract_requests.append(body)
                if bad.question in body["messages"][1]["content"]:
                    return "Here are the objects: none, sorry."  # no JSON: the candidate is rejected
                phrase = WorldScene(good).reading.phrase
                return json.dumps({"objects": [{"name": phrase, "context": "all of them", "role": "counted",
                                                "count": int(good.answer), "mentions": [phrase]}]})
            return teacher(body)
        return respond

    first_wrong = OracleTeacher([bad, good], lambda s, n: f"<think>Hmm.</think> \\boxed{{{_wrong(s)}}}" if n == 0
                                else None)
    always_wrong = OracleTeacher([bad, good], lambda s, n: f"<think>Hmm.</think> \\boxed{{{_wrong(s)}}}")
    db = tmp_path / "t.db"
    outs = []
    for teacher, extra in ((first_wrong, ["--k", "2"]), (always_wrong, ["--k", "2", "--run", "all-wrong"])):
        with StubOpenAIServer(extractor_or(teacher)) as server:
            outs.append(summary_of(synth("--dataset", str(train_dir), "--shard", "0/13", "--teacher", "model",
                                         "--extract", "llm", "--base-url", server.base_url, "--model", server.model,
                                         "--db", str(db), "--json", *extra)))
    extracted, all_wrong = outs
    assert extracted["kept"] == 1 and extracted["rejected_by_reason"] == {"extract_failed": 1}
    assert extracted["candidates_rejected_by_reason"] == {"wrong_answer": 2, "extract_failed": 1}
    assert all_wrong["rejected_by_reason"] == {"wrong_answer": 2} and all_wrong["run"] == "all-wrong"
    request = extract_requests[0]
    assert request["structured_outputs"] == {"json": EXTRACT_SCHEMA} and request["temperature"] == 0.0
    assert all(isinstance(m["content"], str) for m in request["messages"])  # text only: no image to extract
    for t in rows(db, extracted["run_id"]):
        if t["variant"] == "candidate":
            expected = "wrong_answer" if t["attempt"] == 0 else (
                "extract_failed" if t["sample_key"] == bad.id else None)
            assert t["reason"] == expected
        else:
            assert t["sample_key"] == good.id and t["meta"]["extractor"] == "llm"


class HidingGrounder:
    """A WorldGrounder that never returns one object (as if SAM3 missed it under every phrase)."""

    name = "world-hiding"

    def __init__(self, hidden: np.ndarray) -> None:
        self.inner = WorldGrounder()
        self.hidden = hidden

    def ground(self, image, concept: str) -> GroundingResult:
        result = self.inner.ground(image, concept)
        kept = [i for i in result.instances if geometry.mask_iou(i.mask, self.hidden) < 0.5]
        return GroundingResult(concept, kept, result.reason, result.presence)


def test_inconsistent_count_is_rejected_not_patched(train_dir: Path, tmp_path: Path) -> None:
    sample = next(s for s in load_split(train_dir) if s.answer_type == "count" and int(s.answer) >= 2)
    hidden = WorldScene(sample).by_id[sample.gold_objects[0].meta["object_id"]].mask

    class Pool:
        name = "world-hiding"

        def for_sample(self, s):
            return HidingGrounder(hidden)

    pipeline = SynthPipeline(SynthSettings(k=1), Pool(), WorldOracleTeacher(), SceneExtractor())  # type: ignore[arg-type]
    db = tmp_path / "t.db"
    TraceStore.open(db).start_run("synth", run_id="r")
    with StoreWriter(db) as writer:
        stats = BatchRunner(pipeline, writer, "r", [sample], concurrency=1).run()
    assert stats.rejected == 1 and dict(stats.rejected_by) == {"inconsistent_count": 1}
    (candidate,) = rows(db, "r")
    assert candidate["status"] == "rejected" and candidate["reason"] == "inconsistent_count"
    steps = candidate["meta"]["grounding"][0]["steps"]
    assert [s["tool"] for s in steps].count("segment_phrase") > 1  # it revised the phrase before giving up


def test_filters_catch_drift_malformed_tags_and_repetition() -> None:
    original = "<think>I see two red circles on the left.</think> \\boxed{2}"
    faithful = "<think>I see two <obj> red circles | [10, 20]; [30, 40] </obj> on the left.</think> \\boxed{2}"
    rewritten = "<think>There are <obj> red circles | [10, 20] </obj> somewhere here.</think> \\boxed{2}"
    assert drift(original, faithful) == 0.0 and drifted(original, faithful) is None
    assert drifted(original, rewritten) == "drift"
    assert malformed(faithful, "point") is None
    assert malformed("<think><obj> red | [10, 20 </obj></think> \\boxed{2}", "point") == "malformed_tags"
    assert malformed("<think><obj> red | ? </obj></think> \\boxed{2}", "point") == "malformed_tags"
    assert malformed(faithful, "box") == "malformed_tags"
    assert repetitive("I count them. " * 30) == "repetitive"
    assert repetitive(" ".join(f"word{i}" for i in range(80))) is None


def test_align_tags_mentions_only_and_fills_both_kinds() -> None:
    mask = MaskInfo(1, "red circles", {}, (10.0, 20.0, 30.0, 40.0), (20, 30), 0.9, selected=True)
    objects = [Grounded(NeededObject("red circles", role="counted", count=1), "selected", (mask,)),
               Grounded(NeededObject("blue square", role="anchor"), "none", ())]
    text = "<think>Count the red circles: one red circle, near a blue square.</think> \\boxed{1}"
    result = align(text, objects, 100, 100)
    assert result.placeholder_text.count("| ? </obj>") == 1 and [m.text for m in result.mentions] == ["red circles"]
    assert "<obj> red circles | [205, 305] </obj>" in result.variants["point"]
    assert "<obj> red circles | [100, 200, 300, 400] </obj>" in result.variants["box"]
    assert strip_groundings(result.variants["box"]) == text
    # the longer, earlier mention of another object is not taken for a shorter name
    found = find_mentions("<think>the large red circle and the red circle</think>",
                          [NeededObject("large red circle"), NeededObject("red circle")], [0, 1])
    assert [(m.object_index, m.text) for m in found] == [(0, "large red circle"), (1, "red circle")]
    assert parse_objects('```json\n{"objects": [{"name": "cup", "context": "", "role": "weird", "count": 2, '
                         '"mentions": ["cup", "mug"]}]}\n```', "a cup")[0] == NeededObject("cup", "", "reference",
                                                                                              None, ("cup",))


# ---- grounding agent with a VLM policy ----------------------------------------------------------------


def test_vlm_policy_drives_the_four_tools_over_loopback(tally_dir: Path) -> None:
    sample = next(s for s in load_split(tally_dir) if int(s.answer) >= 1)
    phrase = WorldScene(sample).reading.phrase
    n = int(sample.answer)

    def respond(body: dict[str, Any]) -> str:
        text = json.dumps(body["messages"])
        if "<verdict>" in text:
            return "<verdict>yes</verdict>"
        turn = sum(m["role"] == "assistant" for m in body["messages"])
        segment = json.dumps({"name": "segment_phrase", "parameters": {"text_prompt": phrase}})
        return [
            "<think>I will try.</think> no tool here",
            f"<think>Segment.</think><tool>{segment}</tool>",
            f"<tool>{segment}</tool>",
            '<tool>{"name": "examine_each_mask", "parameters": {}}</tool>',
            '<tool>{"name": "select_masks_and_return", "parameters": {"final_answer_masks": '
            + json.dumps(list(range(1, n + 1))) + "}}</tool>",
        ][turn]

    with StubOpenAIServer(respond) as server:
        policy = VLMPolicy(OpenAIBackend(base_url=server.base_url, model=server.model))
        result = GroundingAgent(WorldGrounder(), policy).run(sample.load_image(),
                                                             NeededObject(phrase, "all of them", "counted", n))
        sent = server.chat_requests
    assert result.status == "selected" and len(result.selected) == n
    tools = [s["tool"] for s in result.steps]
    assert tools == ["invalid", "segment_phrase", "segment_phrase", "examine_each_mask", "select_masks_and_return"]
    assert "Malformed" in result.steps[0]["result"] and "already used" in result.steps[2]["result"]
    examine = [b for b in sent if "<verdict>" in json.dumps(b["messages"])]
    assert len(examine) == len(result.masks)
    assert sum(p["type"] == "image_url" for p in examine[0]["messages"][0]["content"]) == 2
    gold = np.stack([geometry.decode_rle(g.rle) for g in sample.gold_objects])
    points = [(m.point[0] + 0.5, m.point[1] + 0.5) for m in result.selected]
    assert geometry.match_points_to_masks(points, gold).tp == n


# ---- the agent path ----------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["text", "function"])
def test_agent_path_rewrites_tool_calls_into_inline_groundings(tally_dir: Path, tmp_path: Path,
                                                               protocol: str) -> None:
    db = tmp_path / "t.db"
    with StubOpenAIServer(counting_agent) as server:
        out = summary_of(synth("--dataset", str(tally_dir), "--via", "agent", "--protocol", protocol, "--grounding",
                               "box", "--base-url", server.base_url, "--model", server.model, "--db", str(db),
                               "--json"))
    assert out["kept"] == 5 and out["run"].endswith("/agent/openai:stub-vlm")
    traces = rows(db, out["run_id"])
    variants = {t["variant"] for t in traces}
    assert variants == ({"candidate", "agent", "box", "plain"} if protocol == "text" else {"candidate", "box", "plain"})
    for t in traces:
        candidate = next(c for c in traces if c["variant"] == "candidate" and c["sample_id"] == t["sample_id"])
        if t["variant"] == "agent":  # the tool-calling trace itself (in-text protocol only)
            assert t["completion"] == candidate["completion"] and t["parent_id"] == candidate["id"]
            assert _text_turns(t) == [(c["role"], c["content"]) for c in candidate["messages"]]
        elif t["variant"] == "box":  # the self-grounded rewrite
            thought = parse(t["completion"])
            assert thought.is_valid and not thought.tool_requests and t["parent_id"] == candidate["id"]
            tool_tags = [g for g in candidate["groundings"] if g["source"] == "tool"]
            assert [g.coords for g in thought.groundings] == [tuple(map(tuple, g["coords"])) for g in tool_tags]
            assert all(g["kind"] == "box" for g in t["groundings"])
            assert len(t["masks"]) == sum(len(g["coords"]) for g in t["groundings"])
        elif t["variant"] == "plain":
            assert "<obj>" not in t["completion"] and "<ground>" not in t["completion"]
        else:
            assert t["status"] == "ok" and t["meta"]["protocol"] == protocol
            if protocol == "text":
                assert "<ground>" in t["completion"]


def _text_turns(trace: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in trace["messages"] if m["role"] != "user"]


def test_agent_path_with_the_world_oracle_keeps_verified_tool_calling_traces(train_dir: Path, tmp_path: Path) -> None:
    from vgt_agent.graphs.ask import chunks_text

    db = tmp_path / "t.db"
    out = summary_of(synth("--dataset", str(train_dir), "--via", "agent", "--teacher", "world-oracle", "--db",
                           str(db), "--json"))
    assert out["run"] == "synth/world/world-train/agent/world-oracle" and out["errors"] == 0
    assert out["processed"] == 16 and out["kept"] >= 14  # the oracle may miss, misses are never kept
    with TraceStore.open(db, create=False, readonly=True) as store:
        (run,) = store.runs("synth")
        assert run["backend"] == "world-oracle" and run["model"] == "world-oracle"
        traces = [store.trace(t["id"]) for t in store.traces(run=out["run_id"])]
    by_sample = defaultdict(dict)
    for t in traces:
        by_sample[t["sample_id"]][t["variant"]] = t
    kept = [v for v in by_sample.values() if "agent" in v]
    assert len(kept) == out["kept"] and all(set(v) == {"candidate", "agent", "point", "plain"} for v in kept)
    families = set()
    for v in kept:
        agent, candidate = v["agent"], v["candidate"]
        assert agent["status"] == "ok" and agent["correct"] and agent["backend"] == "world-oracle"
        assert agent["parent_id"] == candidate["id"] and agent["answer"] == candidate["answer"]
        turns = _text_turns(agent)
        assert agent["messages"][0] == {"role": "user", "content": agent["question"]}
        assert agent["completion"] == chunks_text([{"content": c} for _, c in turns])
        thought = parse(agent["completion"])
        assert thought.is_valid and thought.tool_requests and thought.answer == agent["answer"]
        requests = [r.phrase for r in thought.tool_requests]
        tools = [c for role, c in turns if role == "tool"]
        assert len(tools) == len(requests) and all(c.startswith("\n") and c.endswith("\n") for c in tools)
        tool_tags = [g for g in agent["groundings"] if g["source"] == "tool"]
        assert [g["phrase"] for g in tool_tags] == [p for p, c in zip(requests, tools, strict=True) if "<obj>" in c]
        assert all(g["kind"] == "point" for g in agent["groundings"])
        assert all(g["verified"] for g in agent["groundings"] if g["source"] == "model")  # counting re-points
        assert len(agent["masks"]) == sum(len(g["coords"]) for g in tool_tags)
        assert {m["grounding_idx"] for m in agent["masks"]} <= {g["idx"] for g in tool_tags}
        point = parse(v["point"]["completion"])
        assert point.is_valid and not point.tool_requests and point.answer == agent["answer"]
        families.add(agent["question"].split()[0].lower())
    assert len(families) >= 3  # counting and relation questions alike


@pytest.mark.slow
def test_agent_path_with_tiny_gemma3_transformers_backend(tally_dir: Path, tmp_path: Path) -> None:
    from vgt_agent.backends.tiny_gemma3 import save_tiny_gemma3

    model_dir = save_tiny_gemma3(tmp_path / "tiny-gemma3")
    db = tmp_path / "t.db"
    out = summary_of(synth("--dataset", str(tally_dir), "--via", "agent", "--backend", "transformers", "--model",
                           str(model_dir), "--max-tokens", "16", "--max-turns", "2", "--limit", "2",
                           "--concurrency", "2", "--db", str(db), "--json"))
    assert out["processed"] == 2 and out["errors"] == 0 and out["kept"] + out["rejected"] == 2
    for t in rows(db, out["run_id"]):
        assert t["backend"] == "transformers" and t["model"] == str(model_dir) and t["completion"]
        assert t["status"] in ("ok", "rejected") and (t["status"] == "ok" or t["reason"])


# ---- batch behaviour ---------------------------------------------------------------------------------


def test_resume_skips_finished_samples_and_rewrites_nothing(train_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    args = ["--dataset", str(train_dir), "--db", str(db), "--k", "1", "--json"]
    first = summary_of(synth(*args, "--limit", "5"))
    assert first["processed"] == 5
    with TraceStore.open(db, create=False, readonly=True) as store:
        before = {t["id"]: t["created_at"] for t in store.traces(run=first["run_id"])}
    second = summary_of(synth(*args))
    assert second["run_id"] == first["run_id"] and second["skipped_done"] == 5 and second["processed"] == 11
    third = summary_of(synth(*args))
    assert third["processed"] == 0 and third["skipped_done"] == 16 and third["run_totals"]["kept"] == 16
    with TraceStore.open(db, create=False, readonly=True) as store:
        after = {t["id"]: t["created_at"] for t in store.traces(run=first["run_id"])}
    assert len(after) == 16 * 4 and all(after[i] == created for i, created in before.items())


def test_per_sample_errors_are_recorded_and_redone_on_resume(train_dir: Path, tmp_path: Path) -> None:
    split = tmp_path / "train"
    shutil.copytree(train_dir, split)
    broken = split / "images" / "000003.png"
    good = broken.read_bytes()
    broken.write_bytes(good[:200])
    db = tmp_path / "t.db"
    args = ["--dataset", str(split), "--db", str(db), "--k", "1", "--limit", "6", "--json"]
    out = summary_of(synth(*args))
    assert out["processed"] == 6 and out["errors"] == 1 and out["kept"] == 5
    assert out["errors_by_kind"] == {"bad_sample": 1}
    errors = [t for t in rows(db, out["run_id"]) if t["status"] == "error"]
    assert len(errors) == 1 and errors[0]["variant"] == "error" and "cannot read image" in errors[0]["error"]
    broken.write_bytes(good)
    again = summary_of(synth(*args))
    assert again["processed"] == 1 and again["kept"] == 1 and again["run_totals"]["errors"] == 0
    assert not [t for t in rows(db, out["run_id"]) if t["status"] == "error"]


def test_dead_server_ends_the_run_with_a_clear_message(train_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    result = synth("--dataset", str(train_dir), "--teacher", "model", "--base-url", "http://127.0.0.1:9/v1",
                   "--model", "m", "--max-attempts", "2", "--concurrency", "2", "--db", str(db))
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "unreachable" in lines[0] and "127.0.0.1:9" in lines[0] and "2 attempts" in lines[0]
    assert "errors" in result.stdout and "time per stage" in result.stdout  # the summary still prints
    with TraceStore.open(db, create=False, readonly=True) as store:
        (run,) = store.runs("synth")
        assert run["status"] == "failed" and "unreachable" in run["error"]
        assert run["metrics"]["processed"] < 16  # it stopped instead of failing every sample


def test_a_server_that_fails_every_sample_fails_the_run(train_dir: Path, tmp_path: Path) -> None:
    """A reachable server answering 500 to every request: every sample errors, so the run ends `failed` and the
    command exits 1 with the count (it used to end `done`, exit 0)."""
    db = tmp_path / "t.db"
    with StubOpenAIServer(fail_first=10_000, fail_status=500) as server:
        result = synth("--dataset", str(train_dir), "--teacher", "model", "--base-url", server.base_url,
                       "--model", server.model, "--max-attempts", "1", "--limit", "4", "--db", str(db))
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "4 of 4 samples failed" in lines[0]
    with TraceStore.open(db, create=False, readonly=True) as store:
        (run,) = store.runs("synth")
        assert run["status"] == "failed" and "4 of 4 samples failed" in run["error"]


def test_an_error_share_above_the_threshold_fails_the_run(train_dir: Path, tmp_path: Path) -> None:
    """Two of four samples unreadable: under the default share (0.5) the run is done; `--max-error-share 0.25`
    makes the same session a failure."""
    split = tmp_path / "train"
    shutil.copytree(train_dir, split)
    for name in ("000000.png", "000001.png"):
        (split / "images" / name).write_bytes(b"not a png")
    args = ["--dataset", str(split), "--k", "1", "--limit", "4", "--json"]
    ok = synth(*args, "--db", str(tmp_path / "a.db"))
    assert ok.exit_code == 0 and summary_of(ok)["errors"] == 2
    strict = synth(*args, "--db", str(tmp_path / "b.db"), "--max-error-share", "0.25")
    assert strict.exit_code == 1 and "2 of 4 samples failed (bad_sample 2)" in strict.stderr


def test_agent_path_oracle_teacher_with_shuffled_gold_masks(train_dir: Path, tmp_path: Path) -> None:
    """`--grounder gold-shuffled` replies with the world grounder's coordinates, from the scene graph, in a
    per-sample shuffled order; the world-oracle teacher plays the model, under its run and model label."""
    agents: dict[str, dict[str, Any]] = {}
    for grounder, teacher in (("world", "world-oracle"), ("gold-shuffled", "world-oracle")):
        db = tmp_path / f"{grounder}.db"
        out = summary_of(synth("--dataset", str(train_dir), "--via", "agent", "--teacher", teacher,
                               "--grounder", grounder, "--db", str(db), "--json"))
        assert out["run"] == "synth/world/world-train/agent/world-oracle" and out["errors"] == 0
        with TraceStore.open(db, create=False, readonly=True) as store:
            (run,) = store.runs("synth")
            assert (run["backend"], run["model"], run["grounder"]) == ("world-oracle", "world-oracle", grounder)
            assert run["config"]["teacher"] == "world-oracle" and run["config"]["via"] == "agent"
            agents[grounder] = {t["sample_id"]: store.trace(t["id"])
                                for t in store.traces(run=out["run_id"], variant="agent")}
    world, gold = agents["world"], agents["gold-shuffled"]
    assert set(world) == set(gold) and len(world) >= 14

    def replies(trace: dict[str, Any]) -> list[tuple[str, list[list[int]]]]:
        return [(g["phrase"], g["coords"]) for g in trace["groundings"] if g["source"] == "tool"]

    reordered = 0
    for sid in world:
        w, g = replies(world[sid]), replies(gold[sid])
        assert [(p, sorted(c)) for p, c in w] == [(p, sorted(c)) for p, c in g]  # the same masks' points
        reordered += sum(c != sorted(c, key=lambda xy: (xy[1], xy[0])) for _, c in g)  # not reading order
    assert reordered > 0
    looked_up = re.compile(r"\b(left|right|above|below) (yes|no|[A-D])\. </think>")  # the answer off its table
    assert any(looked_up.search(t["completion"]) for t in gold.values())


@pytest.mark.parametrize("case", ["unknown-dataset", "bad-shard", "negative-shard", "shard-out-of-range",
                                  "unreadable-db", "oracle-on-non-world", "oracle-agent-function",
                                  "oracle-agent-non-world"])  # choices: test_faults_cli
def test_bad_input_exits_2_with_one_line_and_writes_nothing(case: str, train_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    args = ["--dataset", str(train_dir)]
    if case == "unknown-dataset":
        args = ["--dataset", "no-such-dataset"]
    elif case == "bad-shard":
        args += ["--shard", "x"]
    elif case == "negative-shard":
        args += ["--shard", "-1/2"]
    elif case == "shard-out-of-range":
        args += ["--shard", "2/2"]
    elif case == "unreadable-db":
        db.write_text("not a database")
    elif case == "oracle-on-non-world":
        args = ["--dataset", "local", "--path", str(ROOT / "tests/fixtures/datasets/local"), "--teacher",
                "world-oracle"]
    elif case == "oracle-agent-function":
        args += ["--via", "agent", "--teacher", "world-oracle", "--protocol", "function"]
    elif case == "oracle-agent-non-world":
        args = ["--dataset", "local", "--path", str(ROOT / "tests/fixtures/datasets/local"), "--via", "agent",
                "--teacher", "world-oracle"]
    result = synth(*args, "--db", str(db))
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    if case == "unreadable-db":
        assert db.read_text() == "not a database"
    else:
        assert not db.exists()
    if case == "negative-shard":  # the value is quoted whole, no stray quote
        assert lines[0] == "error: --shard must look like i/n (e.g. 0/4), not '-1/2'"
    if case == "unknown-dataset":
        assert "'no-such-dataset'" in lines[0] and not lines[0].endswith(("'", '"'))


def test_shards_merge_into_one_run(train_dir: Path, tmp_path: Path) -> None:
    stores = []
    for i in range(2):
        db = tmp_path / f"shard{i}.db"
        out = summary_of(synth("--dataset", str(train_dir), "--db", str(db), "--k", "1", "--shard", f"{i}/2",
                               "--json"))
        assert out["processed"] == 8
        stores.append(db)
    merged = tmp_path / "all.db"
    for _ in range(2):  # merging twice changes nothing
        result = runner.invoke(app, ["traces", "merge", *map(str, stores), "-o", str(merged), "--json"])
        assert result.exit_code == 0, result.output
    with TraceStore.open(merged, create=False, readonly=True) as store:
        (run,) = store.runs("synth")
        assert run["n_traces"] == 16 * 4
        keys = {t["sample_key"] for t in store.traces(run=run["id"], variant="box")}
    assert keys == {s.id for s in load_split(train_dir)}
    assert_complete(merged, k=1)


# ---- signals -----------------------------------------------------------------------------------------


def _start(train_dir: Path, db: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([*CLI, "synth", "--dataset", str(train_dir), "--db", str(db), "--k", "2",
                             "--concurrency", "3", *extra], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_for(db: Path, n: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while committed_samples(db) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)


@pytest.fixture(scope="module")
def long_train_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world") / "train"
    make_split(out, "world-train", n=64)  # long enough that a kill lands mid-run, not after it
    return out


@pytest.mark.slow
def test_sigkill_at_random_points_loses_no_committed_sample(long_train_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    rng = random.Random(int(time.time()))
    for _ in range(3):
        before = committed_samples(db)
        if before == 64:  # a fast machine finished before the kill
            break
        proc = _start(long_train_dir, db)
        _wait_for(db, before + 1, proc)
        time.sleep(rng.uniform(0.0, 0.6))
        committed = committed_samples(db)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        assert committed_samples(db) >= committed  # nothing that was committed is lost
        assert_complete(db, k=2)  # and nothing is half-written
    proc = _start(long_train_dir, db, "--json")
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    out = json.loads(stdout)
    assert out["run_totals"]["kept"] == 64 and out["skipped_done"] + out["processed"] == 64
    found = assert_complete(db, k=2)
    assert len(found) == 64 and all(("box", 0, "ok") in have for have in found.values())


@pytest.mark.slow
def test_sigint_finishes_in_flight_samples_then_stops(long_train_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    proc = _start(long_train_dir, db, "--json")
    _wait_for(db, 2, proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    out = json.loads(stdout)
    assert out["status"] == "interrupted" and 2 <= out["processed"] < 64 and "resume" in stderr
    assert committed_samples(db) == out["processed"]  # every started sample finished and was committed
    assert_complete(db, k=2)
    with TraceStore.open(db, create=False, readonly=True) as store:
        assert store.run(out["run_id"])["status"] == "interrupted"
