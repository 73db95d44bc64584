"""`vgt synth --workers N`: samples in worker processes give the same store as in one process; a worker that
cannot start or dies ends the run with one clear message; workers follow the main process's stop."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from store_probe import committed_samples
from typer.testing import CliRunner

from vgt_agent.cli.main import app
from vgt_agent.store import TraceStore
from vgt_agent.synthesis.batch import BatchRunner
from vgt_agent.synthesis.extract import SceneExtractor
from vgt_agent.synthesis.graph import SynthSettings
from vgt_agent.synthesis.oracle import WorldOracleTeacher
from vgt_agent.synthesis.pipeline import GrounderPool, SynthPipeline
from vgt_agent.synthesis.workers import SampleWorkers, WorkerError
from vgt_agent.synthesis.writer import StoreWriter
from vgt_agent.world.storage import load_split, make_split

runner = CliRunner()
ROOT = Path(__file__).parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def train_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world") / "train"
    make_split(out, "world-train", n=16)
    return out


def stored(db: Path) -> dict[tuple, tuple]:
    """Every trace by (sample, variant, attempt): status, reason, completion, groundings and masks."""
    conn = sqlite3.connect(db)
    out = {}
    for tid, sid, variant, attempt, status, reason, completion in conn.execute(
            "select id, sample_id, variant, attempt, status, reason, completion from traces"):
        groundings = conn.execute("select phrase, coords from groundings where trace_id = ? order by idx",
                                  [tid]).fetchall()
        masks = conn.execute("select concept, rle, selected from masks where trace_id = ? order by idx",
                             [tid]).fetchall()
        out[sid, variant, attempt] = (status, reason, completion, groundings, masks)
    conn.close()
    return out


def oracle_pipeline() -> SynthPipeline:
    return SynthPipeline(SynthSettings(k=1), GrounderPool("world"), WorldOracleTeacher(), SceneExtractor())


def failing_pipeline() -> SynthPipeline:
    raise ValueError("no grounder here")


class _DyingPipeline(SynthPipeline):
    """Kills its worker process on the third sample, like an OOM kill would."""

    def context(self, sample: Any, run_id: str, write: Any) -> Any:
        if sample.meta["index"] == 2:
            os._exit(3)
        return super().context(sample, run_id, write)


def dying_pipeline() -> SynthPipeline:
    return _DyingPipeline(SynthSettings(k=1), GrounderPool("world"), WorldOracleTeacher(), SceneExtractor())


def test_workers_write_the_same_store_as_one_process(train_dir: Path, tmp_path: Path) -> None:
    summaries = {}
    for workers in ("1", "2"):
        result = runner.invoke(app, ["synth", "--dataset", str(train_dir), "--db", str(tmp_path / f"{workers}.db"),
                                     "--k", "2", "--concurrency", "4", "--workers", workers, "--json"])
        assert result.exit_code == 0, result.output
        summaries[workers] = json.loads(result.stdout)
    assert summaries["2"]["processed"] == 16 and summaries["2"]["kept"] == summaries["1"]["kept"]
    one, two = stored(tmp_path / "1.db"), stored(tmp_path / "2.db")
    assert len(one) > 16 * 2 and one == two
    with TraceStore.open(tmp_path / "2.db", create=False, readonly=True) as store:
        assert store.run(summaries["2"]["run_id"])["config"]["workers"] == 2


def test_a_worker_that_cannot_start_raises_its_reason() -> None:
    with pytest.raises(WorkerError, match="ValueError: no grounder here"):
        SampleWorkers(failing_pipeline, processes=2, threads=1).start()


def test_a_dying_worker_ends_the_run_and_committed_samples_stay(train_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    samples = sorted(load_split(train_dir), key=lambda s: s.meta["index"])
    TraceStore.open(db).start_run("synth", run_id="r")
    with StoreWriter(db) as writer, SampleWorkers(dying_pipeline, processes=1, threads=1) as workers:
        stats = BatchRunner(oracle_pipeline(), writer, "r", samples, concurrency=1, workers=workers).run()
    assert stats.stopped == "worker_failed" and "exited (code 3)" in stats.message
    assert stats.processed == 2  # the two samples before the death were committed; no more were started
    assert len({sid for sid, *_ in stored(db)}) == 2


@pytest.mark.parametrize("grounder", ["sam3"])
def test_workers_refuse_model_grounders(grounder: str, train_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["synth", "--dataset", str(train_dir), "--db", str(tmp_path / "t.db"),
                                 "--grounder", grounder, "--workers", "2"])
    assert result.exit_code == 2 and "--workers" in result.stderr
    assert not (tmp_path / "t.db").exists()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _start(dataset: Path, db: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "from vgt_agent.cli.main import main; main()", "synth",
                             "--dataset", str(dataset), "--db", str(db), "--k", "2", "--concurrency", "2",
                             "--workers", "2", "--json"], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.mark.slow
def test_sigint_lets_the_workers_finish_their_samples_then_stops(tmp_path: Path) -> None:
    dataset, db = tmp_path / "train", tmp_path / "t.db"
    make_split(dataset, "world-train", n=64)  # long enough that the signal lands mid-run
    proc = _start(dataset, db)
    deadline = time.monotonic() + 120
    while committed_samples(db) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    out = json.loads(stdout)
    assert out["status"] == "interrupted" and 2 <= out["processed"] < 64
    assert committed_samples(db) == out["processed"]  # every started sample finished and was committed


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds worker processes through /proc")
def test_workers_exit_when_the_main_process_is_killed(train_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    proc = _start(train_dir, db)
    deadline = time.monotonic() + 120
    while len(workers := _children(proc.pid)) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
              for pid in workers):
        assert time.monotonic() < deadline, "worker processes outlived their killed parent"
        time.sleep(0.2)
