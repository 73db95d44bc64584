"""Start-up weight: the core modules and the light commands load none of the heavy libraries (issue 22).

Each check runs in a fresh interpreter, since this test process has loaded everything already.
`benchmarks/cli_startup.py` measures the times; these tests keep the imports from coming back.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vgt_agent.store import TraceStore

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "transformers", "scipy", "openai", "langgraph", "langsmith", "pandas")
# Runs `vgt ARGV` in this interpreter, then prints the heavy modules it loaded to stderr, last line.
WRAPPER = f"""
import json, sys
from vgt_agent.cli.main import run
code = run(sys.argv[1:])
sys.stderr.write("\\n" + json.dumps(sorted(m for m in {HEAVY!r} + ("numpy",) if m in sys.modules)) + "\\n")
sys.exit(code)
"""


def _python(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def _loaded_by(*argv: str) -> tuple[int, str, list[str]]:
    """Exit code, stdout and the heavy modules loaded by `vgt ARGV`."""
    done = _python("-c", WRAPPER, *argv)
    return done.returncode, done.stdout, json.loads(done.stderr.strip().splitlines()[-1])


def test_core_modules_load_no_heavy_library() -> None:
    done = _python("-c", "import vgt_agent.cli.main, vgt_agent.format, vgt_agent.store, vgt_agent.datasets; "
                         f"import sys; print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "traces.db"
    with TraceStore.open(path) as s:
        run = s.start_run("ask", run_id="ask-test", backend="openai", model="stub", grounder="world")
        s.end_run(run)
    return path


@pytest.mark.parametrize("argv", [("traces", "list", "--json"), ("traces", "stats", "--json"),
                                  ("traces", "runs", "--json")])
def test_reading_the_store_loads_no_heavy_library_nor_numpy(store: Path, argv: tuple[str, ...]) -> None:
    code, out, heavy = _loaded_by(*argv, "--db", str(store))
    assert code == 0
    json.loads(out)  # the command's whole output
    assert heavy == []


@pytest.mark.parametrize("argv", [("--help",), ("ask", "--help"), ("traces", "--help"), ("train", "sft", "--help"),
                                  ("synth", "--help"), ("world", "splits", "--json")])
def test_help_and_listings_load_no_heavy_library(argv: tuple[str, ...]) -> None:
    code, out, heavy = _loaded_by(*argv)
    assert code == 0 and out
    assert [m for m in heavy if m != "numpy"] == []


def test_the_whole_app_is_there_for_importers() -> None:
    """`from vgt_agent.cli.main import app` (CliRunner in the tests) is every command, as before."""
    from typer.main import get_command

    from vgt_agent.cli.main import COMMANDS, app

    assert list(get_command(app).commands) == list(COMMANDS)  # type: ignore[attr-defined]


def test_a_run_that_loaded_torch_ends_with_its_exit_code_and_its_output(store: Path) -> None:
    """The fast exit (no interpreter teardown) keeps exit codes and flushes what the command printed."""
    vgt = "import torch; from vgt_agent.cli.main import main; main()"
    done = _python("-c", vgt, "traces", "runs", "--json", "--db", str(store))
    assert done.returncode == 0, done.stderr
    assert [r["id"] for r in json.loads(done.stdout)] == ["ask-test"]
    missing = _python("-c", vgt, "traces", "list", "--db", str(store.with_name("missing.db")))
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: no trace store at")
