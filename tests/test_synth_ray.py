"""`vgt synth --engine ray` on a local Ray instance: the local engine's stored traces, resume, and kills.

One Ray instance serves the module (started here, ~5 s); in-process runs reuse it, subprocess drivers join
it with `--ray-address`, so a killed driver leaves no Ray processes of its own behind.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import ray
from store_probe import committed_samples
from typer.testing import CliRunner

from vgt_agent.cli.main import app
from vgt_agent.world.storage import make_split

pytestmark = pytest.mark.slow  # a local Ray instance: ~60 s of the suite
runner = CliRunner()
VGT = [sys.executable, "-m", "vgt_agent.cli.main"]


@pytest.fixture(scope="module")
def ray_address() -> Any:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world") / "train"
    make_split(out, "world-train", n=120)  # every family, and long enough that a kill lands mid-run
    return out


def synth(*args: str) -> Any:
    return runner.invoke(app, ["synth", *args])


def stored(db: Path) -> tuple[list[tuple], list[tuple]]:
    """Every trace and grounding row, without the columns that record when or how long."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        traces = conn.execute("select id, run_id, sample_id, variant, attempt, parent_id, status, reason, error, "
                              "messages, completion, answer, correct, n_groundings, backend, model, grounder "
                              "from traces order by id").fetchall()
        groundings = conn.execute("select * from groundings order by 1, 2").fetchall()
    finally:
        conn.close()
    return traces, groundings


def duplicates(db: Path) -> int:
    """Samples with more than one plain trace (each sample commits its variants once)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("select count(*) from (select sample_id from traces where variant = 'plain' "
                            "group by sample_id having count(*) > 1)").fetchone()[0]
    finally:
        conn.close()


def test_ray_engine_stores_what_the_local_engine_stores_and_resumes(ray_address: str, split_dir: Path,
                                                                     tmp_path: Path) -> None:
    args = ["--dataset", str(split_dir), "--limit", "24", "--json"]
    local = synth(*args, "--db", str(tmp_path / "local.db"))
    assert local.exit_code == 0, local.output
    on_ray = synth(*args, "--db", str(tmp_path / "ray.db"), "--engine", "ray", "--ray-actors", "2")
    assert on_ray.exit_code == 0, on_ray.output
    a, b = json.loads(local.stdout), json.loads(on_ray.stdout)
    assert (a["kept"], a["errors"]) == (b["kept"], b["errors"]) == (24, 0)
    assert stored(tmp_path / "local.db") == stored(tmp_path / "ray.db")
    again = json.loads(synth(*args, "--db", str(tmp_path / "ray.db"), "--engine", "ray").stdout)
    assert again["processed"] == 0 and again["skipped_done"] == 24 and again["run_totals"]["kept"] == 24
    conn = sqlite3.connect(tmp_path / "ray.db")
    (config,) = conn.execute("select config from runs").fetchone()
    assert json.loads(config)["engine"] == "ray"


def test_several_servers_are_spread_over_the_actors(ray_address: str, split_dir: Path, tmp_path: Path) -> None:
    """`--base-url A,B` with two actors: each server answers a share of the teacher calls, and the store holds
    what a local run against one server stores."""
    from openai_stub_server import StubOpenAIServer
    from synth_models import OracleTeacher

    from vgt_agent.world.storage import load_split

    samples = list(load_split(split_dir))
    args = ["--dataset", str(split_dir), "--limit", "12", "--teacher", "model", "--model", "stub-vlm", "--json"]
    with StubOpenAIServer(OracleTeacher(samples)) as a, StubOpenAIServer(OracleTeacher(samples)) as b:
        on_ray = synth(*args, "--db", str(tmp_path / "ray.db"), "--engine", "ray", "--ray-actors", "2",
                       "--base-url", f"{a.base_url},{b.base_url}")
        assert on_ray.exit_code == 0, on_ray.output
        spread = (len(a.requests), len(b.requests))
    with StubOpenAIServer(OracleTeacher(samples)) as c:  # a fresh teacher: its replies vary with each call
        local = synth(*args, "--db", str(tmp_path / "local.db"), "--base-url", c.base_url)
        assert local.exit_code == 0, local.output
    assert min(spread) > 0 and sum(spread) >= 12, spread  # both servers answered teacher calls
    assert json.loads(on_ray.stdout)["kept"] == json.loads(local.stdout)["kept"] == 12
    assert stored(tmp_path / "local.db") == stored(tmp_path / "ray.db")


def test_a_killed_actor_loses_and_duplicates_nothing(ray_address: str, split_dir: Path, tmp_path: Path) -> None:
    """SIGKILL one actor mid-run: Ray restarts it and runs its samples in flight again; each sample is
    committed once, by the driver."""
    from vgt_agent.synthesis import ray_engine

    killed: list[int] = []
    original = ray_engine.RaySampleWorkers.submit

    def submit_then_kill(self: Any, run_id: str, sample: Any) -> Any:
        future = original(self, run_id, sample)
        if not killed and sum(self._in_flight) >= 4:  # samples in flight on both actors
            pid = self.pids[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        return future

    db = tmp_path / "t.db"
    ray_engine.RaySampleWorkers.submit = submit_then_kill
    try:
        result = synth("--dataset", str(split_dir), "--limit", "60", "--db", str(db), "--engine", "ray",
                       "--concurrency", "8", "--json")
    finally:
        ray_engine.RaySampleWorkers.submit = original
    assert killed, "no actor was killed"
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["status"] == "done" and summary["kept"] == 60 and summary["errors"] == 0
    assert committed_samples(db) == 60 and duplicates(db) == 0


def test_a_killed_driver_loses_no_committed_sample_and_resumes_exactly(ray_address: str, split_dir: Path,
                                                                        tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    args = ["synth", "--dataset", str(split_dir), "--db", str(db), "--engine", "ray", "--ray-address", ray_address,
            "--concurrency", "2"]
    driver = subprocess.Popen([*VGT, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while committed_samples(db) < 5 and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    driver.kill()
    driver.wait()
    assert driver.returncode == -signal.SIGKILL, "the run ended before the kill: make the split longer"
    before = committed_samples(db)
    assert 5 <= before < 120
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
    created = dict(conn.execute("select id, created_at from traces").fetchall())
    conn.close()
    resumed = synth(*args[1:], "--json")
    assert resumed.exit_code == 0, resumed.output
    summary = json.loads(resumed.stdout)
    assert summary["skipped_done"] == before and summary["processed"] == 120 - before
    assert committed_samples(db) == 120 and duplicates(db) == 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    after = dict(conn.execute("select id, created_at from traces").fetchall())
    conn.close()
    assert all(after[i] == t for i, t in created.items())  # committed traces were not rewritten


def test_ray_engine_input_errors_exit_2_and_write_nothing(split_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    for extra, message in ((["--engine", "ray", "--workers", "2"], "--ray-actors"),
                           (["--base-url", "http://a/v1,http://b/v1", "--teacher", "model"], "--engine ray"),
                           (["--ray-address", "auto"], "need --engine ray")):
        result = synth("--dataset", str(split_dir), "--db", str(db), *extra)
        assert result.exit_code == 2, result.output
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and message in lines[0]
        assert not db.exists()
