"""`vgt repro table`: issue 7's table in miniature at the smoke size, end to end in one process: every row and
column in the markdown, a valid PNG, every stage a run in the store, and a re-run that skips what is done."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image
from rich.console import Console
from typer.testing import CliRunner
from vgt_cli import vgt

from vgt_agent.cli.main import app
from vgt_agent.store import TraceStore
from vgt_agent.tiny.table import (
    BENCHMARKS,
    SIZES,
    Job,
    Paths,
    TableError,
    applicable,
    config_for,
    estimate,
    jobs,
    run,
)

runner = CliRunner()
ROWS = [f"{mode} · {stage}" for mode in ("Direct answer", "Non-grounded thinking", "Box", "Point")
        for stage in ("SFT", "RL", "RL + r_ground")]


def _quiet() -> Console:
    return Console(file=io.StringIO(), width=120)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("table")
    work, out = root / "work", root / "docs"
    report = run(SIZES["smoke"], work, out, _quiet())
    return work, out, report


def test_the_job_graph_has_ten_trainings_and_ten_evals() -> None:
    trainings = [j for j in jobs() if j.kind == "train"]
    assert len(trainings) == 10 and len([j for j in jobs() if j.kind == "eval"]) == 10
    assert not applicable("rlg", "direct") and not applicable("rlg", "think") and applicable("rlg", "box")
    assert Job("eval", "rlg", "box").deps == (Job("train", "rlg", "box"),)
    assert Job("train", "rl", "point").deps == (Job("train", "sft", "point"),)


def test_the_full_size_is_estimated_within_90_minutes_on_two_workers() -> None:
    full = estimate(SIZES["full"])
    assert SIZES["full"].workers == 2
    assert full["total (wall)"] <= 90 * 60
    assert estimate(SIZES["full"], workers=1)["total (wall)"] > full["total (wall)"]  # the parallelism pays


@pytest.mark.slow
def test_smoke_table_end_to_end(smoke: tuple[Path, Path, dict]) -> None:
    work, out, report = smoke
    md = (out / "table-in-miniature-smoke.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| configuration | world-tally"))
    for column in (*BENCHMARKS, "counting avg", "spatial avg"):
        assert column in header
    for row in ROWS:
        assert f"| {row} |" in md, row
    for na in ("Direct answer · RL + r_ground", "Non-grounded thinking · RL + r_ground"):
        line = next(line for line in md.splitlines() if line.startswith(f"| {na} |"))
        assert line.count("n/a") == 8
    assert "*chance (uniform over the options)*" in md and "*prior (train majority answer" in md
    assert "## What comes out" in md and "**Noise first.**" in md and "## Time" in md
    with Image.open(out / "table-in-miniature-smoke.png") as im:
        im.verify()
        assert im.format == "PNG"
    assert not (out / "table-in-miniature.md").exists()  # only the full size writes the committed names
    assert report["failed"] == [] and len(report["rows"]) == 10
    assert json.loads((work / "table_report.json").read_text())["markdown"].endswith("table-in-miniature-smoke.md")

    with TraceStore.open(work / "traces.db", create=False, readonly=True) as store:
        runs = store.runs()
    by_kind: dict[str, list[dict]] = {}
    for r in runs:
        by_kind.setdefault(r["kind"], []).append(r)
    assert {k: len(v) for k, v in by_kind.items()} == {"synth": 1, "sft": 4, "rl": 6, "eval": 10, "repro": 1}
    assert all(r["status"] == "done" for r in runs)
    assert all(r["name"].startswith("table-in-miniature/smoke/") for r in runs if r["kind"] != "repro")
    assert {r["name"] for r in by_kind["rl"]} == {f"table-in-miniature/smoke/{s}-{m}" for s in ("rl", "rlg")
                                                  for m in ("direct", "think", "box", "point") if applicable(s, m)}
    evals = {r["config"]["label"]: r for r in by_kind["eval"]}
    assert set(evals) == set(ROWS) - {"Direct answer · RL + r_ground", "Non-grounded thinking · RL + r_ground"}
    assert evals["Box · RL + r_ground"]["model"] == "table-in-miniature/smoke/rlg-box"
    assert evals["Box · RL + r_ground"]["config"]["provenance"]["reward_weights"]["grounding"] == 0.5
    assert evals["Box · RL"]["config"]["provenance"]["reward_weights"]["grounding"] == 0.0


@pytest.mark.slow
def test_a_rerun_skips_done_stages_and_redoes_only_what_is_missing(smoke: tuple[Path, Path, dict]) -> None:
    work, out, _ = smoke
    paths = Paths(work)
    before = json.loads(paths.stages.read_text())
    with TraceStore.open(paths.db, create=False, readonly=True) as store:
        runs_before = {r["id"] for r in store.runs()}
    run(SIZES["smoke"], work, out, _quiet())  # everything done: nothing re-runs
    after = json.loads(paths.stages.read_text())
    assert after == before
    with TraceStore.open(paths.db, create=False, readonly=True) as store:
        assert {r["id"] for r in store.runs()} == runs_before

    # a training that never finished (no provenance record) is redone, and so is its eval; nothing else
    (paths.model(Job("train", "rlg", "point")) / "vgt_train.json").unlink()
    run(SIZES["smoke"], work, out, _quiet())
    again = json.loads(paths.stages.read_text())
    redone = {k for k in again if again[k]["finished_at"] != after[k]["finished_at"]}
    assert redone == {"rlg/point", "eval/rlg/point"}
    with TraceStore.open(paths.db, create=False, readonly=True) as store:
        new = [r for r in store.runs() if r["id"] not in runs_before]
    assert sorted(r["kind"] for r in new) == ["eval", "rl"]
    md = (out / "table-in-miniature-smoke.md").read_text()
    assert new[0]["id"] in md or new[1]["id"] in md  # the report reads the new eval


def test_a_work_dir_of_another_size_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "table_config.json").write_text(json.dumps(config_for("mid").fingerprint()))
    with pytest.raises(TableError, match="other sizes"):
        run(SIZES["smoke"], work, tmp_path / "docs", _quiet())
    assert sorted(p.name for p in work.iterdir()) == ["table_config.json"] and not (tmp_path / "docs").exists()
    result = runner.invoke(app, ["repro", "table", "--size", "smoke", "--work-dir", str(work),
                                 "--out", str(tmp_path / "docs")])
    assert result.exit_code == 2 and "other sizes" in result.stderr


def test_cli_bad_input_exits_2_and_repro_tiny_is_still_there(tmp_path: Path) -> None:
    result = vgt("repro", "table", "--size", "huge", "--work-dir", str(tmp_path / "w"))
    assert result.exit_code == 2 and "Invalid value for '--size'" in result.stderr
    assert not (tmp_path / "w").exists()
    (tmp_path / "file").write_text("x")
    result = runner.invoke(app, ["repro", "table", "--size", "smoke", "--out", str(tmp_path / "file")])
    assert result.exit_code == 2
    assert runner.invoke(app, ["repro", "tiny", "--help"]).exit_code == 0
