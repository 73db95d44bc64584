"""A SIGTERM stops a vgt command as Ctrl-C does: its store run ends `interrupted`, not `running`."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from vgt_agent.store import TraceStore

RUN_UNTIL_KILLED = """
import sys, time
from vgt_agent.cli.main import stop_on_sigterm
from vgt_agent.store import TraceStore
from vgt_agent.training.progress import LoggedRun
stop_on_sigterm()
with TraceStore.open(sys.argv[1]) as store:
    try:
        with LoggedRun(store, "train-sft", name="long job") as run:
            run.metrics["step"] = 3
            print("ready", flush=True)
            time.sleep(60)
    except KeyboardInterrupt:
        sys.exit(1)
"""


def test_sigterm_ends_the_run_interrupted_with_its_metrics(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    proc = subprocess.Popen([sys.executable, "-c", RUN_UNTIL_KILLED, str(db)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 1
    with TraceStore.open(db) as store:
        (run,) = store.runs()
    assert run["status"] == "interrupted" and run["metrics"] == {"step": 3}
