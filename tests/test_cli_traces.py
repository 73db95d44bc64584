"""`vgt traces ...` through typer's CliRunner over a real store built in the test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from vgt_agent.cli.common import console
from vgt_agent.cli.main import app
from vgt_agent.geometry import encode_rle
from vgt_agent.store import GroundingRecord, ImageRecord, MaskRecord, SampleRecord, TraceRecord, TraceStore

runner = CliRunner()
THOUGHT = ("<think>I see <obj> red circles | [250, 250]; [750, 750] </obj> and nothing else.</think> "
           "\\boxed{2}")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    image_path = tmp_path / "scene.png"
    pixels = np.full((100, 100, 3), 240, dtype=np.uint8)
    masks = []
    for cx in (25, 75):
        yy, xx = np.mgrid[:100, :100]
        m = (xx - cx) ** 2 + (yy - cx) ** 2 <= 64
        pixels[m] = (220, 40, 40)
        masks.append(m)
    Image.fromarray(pixels).save(image_path)
    image = ImageRecord.from_path(image_path)
    path = tmp_path / "traces.db"
    with TraceStore.open(path) as store:
        run = store.start_run("ask", run_id="ask-test", backend="openai", model="stub-vlm", grounder="world")
        for i, correct in enumerate([True, False]):
            sample = SampleRecord("world-tally", "test", f"s{i}", f"How many red circles? ({i})", image, "2", "count")
            store.put_trace(TraceRecord(
                run, sample, "agent", completion=THOUGHT, answer="2" if correct else "3", answer_source="boxed",
                correct=correct, backend="openai", model="stub-vlm", grounder="world",
                groundings=[GroundingRecord("red circles", "point", [[250, 250], [750, 750]], "model", True, 1.0)],
                masks=[MaskRecord("red circles", encode_rle(m), [0, 0, 1, 1], [25, 25], 1.0, "world", 0)
                       for m in masks],
                timings={"total_s": 0.5},
            ))
    return path


def test_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("traces", "world"):
        assert command in result.output


def test_list_and_filters(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = runner.invoke(app, ["traces", "list", "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert len(rows) == 2 and {r["backend"] for r in rows} == {"openai"}
    result = runner.invoke(app, ["traces", "list", "--db", str(db), "--incorrect", "--json"])
    assert [r["answer"] for r in json.loads(result.output)] == ["3"]
    monkeypatch.setattr(console, "width", 200)  # the console was sized at import, from the test's terminal
    table = runner.invoke(app, ["traces", "list", "--db", str(db)])
    assert table.exit_code == 0 and "stub-vlm" in table.output and "world-tally" in table.output


def test_show_renders_and_writes_png(db: Path, tmp_path: Path) -> None:
    trace_id = json.loads(runner.invoke(app, ["traces", "list", "--db", str(db), "--json"]).output)[0]["id"]
    png = tmp_path / "annotated.png"
    result = runner.invoke(app, ["traces", "show", trace_id[:6], "--db", str(db), "--png", str(png)])
    assert result.exit_code == 0, result.output
    assert "red circles" in result.output and "grounder world" in result.output
    with Image.open(png) as im:
        pixels = np.asarray(im.convert("RGB"))
    assert pixels.shape[1] == 600 and pixels.shape[0] > 600  # enlarged 6x to be readable, a caption band below
    original = np.asarray(Image.open(Path(db).parent / "scene.png").convert("RGB").resize((600, 600), 0))
    assert (pixels[:600] != original).any(axis=2).sum() > 50  # dots, labels and mask outlines were drawn
    shown = json.loads(runner.invoke(app, ["traces", "show", trace_id, "--db", str(db), "--json"]).output)
    assert shown["groundings"][0]["coords"] == [[250, 250], [750, 750]] and len(shown["masks"]) == 2


def test_stats_runs_export(db: Path, tmp_path: Path) -> None:
    stats = json.loads(runner.invoke(app, ["traces", "stats", "--db", str(db), "--json"]).output)
    assert stats["totals"]["traces"] == 2 and stats["by_run"][0]["accuracy"] == 0.5
    assert runner.invoke(app, ["traces", "stats", "--db", str(db)]).exit_code == 0
    runs = json.loads(runner.invoke(app, ["traces", "runs", "--db", str(db), "--json"]).output)
    assert runs[0]["id"] == "ask-test" and runs[0]["n_traces"] == 2
    out = tmp_path / "x.jsonl"
    result = runner.invoke(app, ["traces", "export", "--db", str(db), "--out", str(out), "--correct"])
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 1
    hf = tmp_path / "hf"
    assert runner.invoke(app, ["traces", "export", "--db", str(db), "-o", str(hf), "--format", "hf"]).exit_code == 0
    import datasets

    assert len(datasets.load_from_disk(str(hf))) == 2


def test_merge(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "merged.db"
    for _ in range(2):
        assert runner.invoke(app, ["traces", "merge", str(db), "-o", str(out)]).exit_code == 0
    stats = json.loads(runner.invoke(app, ["traces", "stats", "--db", str(out), "--json"]).output)
    assert stats["totals"]["traces"] == 2


@pytest.mark.parametrize("case", ["missing", "not-sqlite", "directory", "unknown-id"])  # choices: test_faults_cli
def test_bad_input_exits_2_with_one_line_and_leaves_file_untouched(case: str, db: Path, tmp_path: Path) -> None:
    args = ["traces", "list", "--db"]
    target = db
    if case == "missing":
        target = tmp_path / "nope.db"
    elif case == "not-sqlite":
        target = tmp_path / "notes.txt"
        target.write_text("hello\n")
    elif case == "directory":
        target = tmp_path
    before = target.read_bytes() if target.is_file() else None
    if case == "unknown-id":
        args = ["traces", "show", "ffffffffff", "--db"]
    result = runner.invoke(app, [*args, str(target)])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    if before is not None:
        assert target.read_bytes() == before
    assert not (tmp_path / "nope.db").exists()


def test_env_var_selects_the_store(db: Path) -> None:
    result = runner.invoke(app, ["traces", "stats", "--json"], env={"VGT_DB": str(db)})
    assert result.exit_code == 0 and json.loads(result.output)["totals"]["traces"] == 2


def test_export_force_replaces_only_its_own_earlier_output(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "traces.jsonl"
    assert runner.invoke(app, ["traces", "export", "--db", str(db), "-o", str(out)]).exit_code == 0
    out.write_text("stale\n")
    assert runner.invoke(app, ["traces", "export", "--db", str(db), "-o", str(out)]).exit_code == 2
    assert out.read_text() == "stale\n"
    assert runner.invoke(app, ["traces", "export", "--db", str(db), "-o", str(out), "--force"]).exit_code == 0
    assert len(out.read_text().splitlines()) == 2
    hf = tmp_path / "hf"
    for extra in ([], ["--force"]):  # a fresh directory, then the earlier export replaced
        result = runner.invoke(app, ["traces", "export", "--db", str(db), "-o", str(hf), "--format", "hf", *extra])
        assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["traces", "export", "--db", str(db), "-o", str(hf), "--format", "hf"]).exit_code == 2
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_check_reports_a_sound_store(db: Path) -> None:
    result = runner.invoke(app, ["traces", "check", "--db", str(db), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout) == {"path": str(db), "ok": True, "problems": [],
                                                                   "traces": 2}
