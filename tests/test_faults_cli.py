"""The command line's faults found by trying to break vgt, one test each, named for the fault, the repro in
its docstring. Every test failed before its fix. The exit-code contract they hold (vgt_agent/cli/common.py):
0 done, 1 the work failed (no answer, refused, unreachable server, ...), 2 bad input or usage (one line on
stderr, nothing written), 130 interrupted.

Models are a real OpenAI client against a loopback server scripted here, or the shipped vgt-tiny on the
transformers backend; images are drawn by the world generator or taken from scikit-image's photographs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from openai_stub_server import StubOpenAIServer
from PIL import Image
from typer.testing import CliRunner

from vgt_agent.cli.main import app, run
from vgt_agent.store import TraceStore
from vgt_agent.world.storage import load_split, make_split

runner = CliRunner()
DEAD_URL = "http://127.0.0.1:9/v1"  # the discard port: nothing listens
CLI = [sys.executable, "-m", "vgt_agent.cli.main"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("faults") / "tally"
    make_split(out, "world-tally", n=4)
    return out


@pytest.fixture(scope="module")
def sample(world: Path):
    return next(s for s in load_split(world) if s.question.startswith("How many ") and s.answer != "0")


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real photograph, not drawn by vgt: scikit-image's astronaut, saved as a PNG."""
    from skimage import data

    path = tmp_path_factory.mktemp("photo") / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def _sleepy(body: dict) -> str:
    time.sleep(60)  # a model that never answers in the test's time: the run is in flight when signalled
    return "late"


def _wait_for_chat(server: StubOpenAIServer, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not server.chat_requests:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the command never reached the model"
        time.sleep(0.05)


# ---------------------------------------------------------------------------------------------------------
# Bounded inputs
# ---------------------------------------------------------------------------------------------------------


def test_long_question_fails_fast_naming_the_limit(sample, tmp_path: Path) -> None:
    """`vgt ask IMG "How many green circles? xxxx...(100 KB)"` grew memory without bound: a question
    longer than --max-question-chars (default 4000) ends with exit 2 and one line naming the limit, before
    any model call or store write."""
    db = tmp_path / "t.db"
    question = "How many green circles? " + "x" * 100_000
    with StubOpenAIServer() as server:
        started = time.perf_counter()
        result = runner.invoke(app, ["ask", sample.image_path, question, "--base-url", server.base_url,
                                     "--model", server.model, "--db", str(db)])
        elapsed = time.perf_counter() - started
        assert not server.chat_requests
    assert result.exit_code == 2, result.output
    line = _one_error_line(result.stderr)
    assert "100,024" in line and "4,000" in line and "--max-question-chars" in line
    assert not db.exists() and elapsed < 10


def test_a_gold_answer_of_another_type_is_bad_input(sample, tmp_path: Path) -> None:
    """`vgt ask IMG "What shape is the red object?" --gold square` (the answer type defaults to count) was a
    failed run with exit 1 after the model ran: now exit 2, one line naming --answer-type, nothing written."""
    db = tmp_path / "t.db"
    result = runner.invoke(app, ["ask", sample.image_path, "What shape is the red object?", "--gold", "square",
                                 "--db", str(db)])
    assert result.exit_code == 2, result.output
    assert "--answer-type" in _one_error_line(result.stderr) and not db.exists()


def test_question_over_the_models_context_is_refused_before_the_model_runs(sample, tmp_path: Path) -> None:
    """`vgt ask IMG "How many green circles? xxx...(3 KB)"` on the shipped vgt-tiny (2048-token context):
    under the character bound but more tokens than the model reads: exit 2 naming the model's limit."""
    db = tmp_path / "t.db"
    result = runner.invoke(app, ["ask", sample.image_path, "How many green circles? " + "x" * 3000,
                                 "--db", str(db)])
    assert result.exit_code == 2, result.output
    line = _one_error_line(result.stderr)
    assert "2048" in line and "vgt-tiny" in line and "tokens" in line
    assert not db.exists()


def test_transformers_backend_never_reads_past_its_context() -> None:
    """A prompt the model cannot read is refused with BackendError before any forward pass (that pass is what
    grew memory without bound); a prompt near the limit generates only what still fits."""
    from vgt_agent.backends import BackendError
    from vgt_agent.backends.transformers_backend import TransformersBackend
    from vgt_agent.tiny.recipe import shipped_weights

    backend = TransformersBackend.from_pretrained(shipped_weights(), model_name="vgt-tiny")
    assert backend.context_tokens == 2048
    image = Image.new("RGB", (64, 64), "white")

    def messages(text: str) -> list[dict]:
        return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]

    with pytest.raises(BackendError, match="reads at most 2048"):
        backend.generate(messages("x" * 5000), [image], max_tokens=8)
    gen = backend.generate(messages("x" * 2000), [image], max_tokens=1000)
    assert gen.prompt_tokens + gen.completion_tokens <= 2048


# ---------------------------------------------------------------------------------------------------------
# The exit-code contract
# ---------------------------------------------------------------------------------------------------------


def test_non_utf8_argv_is_one_line_exit_2_and_nothing_written(sample, tmp_path: Path, capsys) -> None:
    """`vgt ask $'\\xff.png' q` and `vgt ask IMG $'\\xffq'`: a traceback and an empty store created. Now one
    line, exit 2, no store. The question goes through a real process's argv; the path through `run` with the
    string Python makes of those bytes."""
    db = tmp_path / "t.db"
    args = [b"ask", sample.image_path.encode(), b"\xffq", b"--db", str(db).encode()]
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, env=_env(), timeout=120)
    assert proc.returncode == 2, proc.stderr
    line = _one_error_line(proc.stderr)
    assert "UTF-8" in line and "\\xffq" in line
    assert run(["ask", os.fsdecode(b"\xff.png"), sample.question, "--db", str(db)]) == 2
    assert "'\\xff.png' is not valid UTF-8" in _one_error_line(capsys.readouterr().err)
    assert not db.exists()


def test_unreachable_server_means_exit_1_naming_the_url_in_ask_and_eval(world: Path, tmp_path: Path) -> None:
    """`vgt ask ... --base-url http://127.0.0.1:9/v1` exited 2 (bad input) while synth exited 1: a server
    that does not answer is work that failed, exit 1 with one line naming the URL, in every command."""
    db = tmp_path / "t.db"
    image = next(iter(sorted((world / "images").glob("*.png"))))
    commands = {
        "ask": ["ask", str(image), "How many red circles are there?", "--base-url", DEAD_URL, "--model", "m"],
        "ask-no-model": ["ask", str(image), "How many red circles are there?", "--base-url", DEAD_URL],
        "eval": ["eval", "--benchmark", str(world), "--base-url", DEAD_URL, "--model", "m", "--limit", "1"],
        "eval-no-model": ["eval", "--benchmark", str(world), "--base-url", DEAD_URL, "--limit", "1"],
    }
    for name, argv in commands.items():
        result = runner.invoke(app, [*argv, "--db", str(db)])
        assert result.exit_code == 1, (name, result.output)
        assert "127.0.0.1:9" in _one_error_line(result.stderr), name
        assert not db.exists(), name


def test_interrupted_ask_exits_130_and_its_run_ends_interrupted(sample, tmp_path: Path) -> None:
    """Ctrl-C during `vgt ask` printed "Aborted!" and exited 1, the same code as a failed run: 130 now,
    and the store run ends `interrupted`."""
    db = tmp_path / "t.db"
    with StubOpenAIServer(_sleepy) as server:
        proc = subprocess.Popen([*CLI, "ask", sample.image_path, sample.question, "--base-url", server.base_url,
                                 "--model", server.model, "--db", str(db)], env=_env(), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _wait_for_chat(server, proc)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in _one_error_line(stderr)
    with TraceStore.open(db, readonly=True) as store:
        (run_row,) = store.runs()
    assert run_row["status"] == "interrupted"


def test_sigterm_during_eval_exits_130_and_says_how_to_resume(world: Path, tmp_path: Path) -> None:
    """`kill` of a running `vgt eval` exited 1 ("interrupted; continue with --resume"): 130 now, the run is
    `interrupted` and the line names the --resume id."""
    db = tmp_path / "t.db"
    with StubOpenAIServer(_sleepy) as server:
        proc = subprocess.Popen([*CLI, "eval", "--benchmark", str(world), "--base-url", server.base_url, "--model",
                                 server.model, "--limit", "1", "--samples", "1", "--db", str(db), "--json"],
                                env=_env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _wait_for_chat(server, proc)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    with TraceStore.open(db, readonly=True) as store:
        (run_row,) = store.runs()
    assert run_row["status"] == "interrupted" and f"--resume-run {run_row['id']}" in _one_error_line(stderr)


BAD_INPUT = {
    "ask-unknown-option": ["ask", "IMG", "q", "--bogus"],
    "ask-missing-image": ["ask", "{tmp}/nope.png", "How many red circles?"],
    "ask-bad-grounder": ["ask", "IMG", "How many red circles?", "--grounder", "magic"],
    "ask-bad-grounding": ["ask", "IMG", "How many red circles?", "--grounding", "polygon"],
    "ask-bad-answer-type": ["ask", "IMG", "How many red circles?", "--gold", "3", "--answer-type", "number"],
    "synth-bad-grounding": ["synth", "--dataset", "{tmp}", "--via", "agent", "--grounding", "polygon"],
    "synth-bad-grounder": ["synth", "--dataset", "{tmp}", "--grounder", "magic"],
    "synth-unknown-teacher": ["synth", "--dataset", "{tmp}", "--via", "agent", "--teacher", "world-oracle/digits"],
    "synth-bad-engine": ["synth", "--dataset", "{tmp}", "--engine", "spark"],
    "traces-list-bad-grounding": ["traces", "list", "--grounding", "polygon"],
    "traces-list-bad-status": ["traces", "list", "--status", "maybe"],
    "synth-unknown-dataset": ["synth", "--dataset", "nope"],
    "traces-list-no-store": ["traces", "list"],
    "traces-show-unknown-id": ["traces", "show", "zzzz"],
    "traces-stats-no-store": ["traces", "stats"],
    "traces-runs-no-store": ["traces", "runs"],
    "traces-export-bad-format": ["traces", "export", "-o", "{tmp}/out.jsonl", "--format", "xml"],
    "traces-merge-missing-source": ["traces", "merge", "{tmp}/none.db", "-o", "{tmp}/merged.db"],
    "world-make-unknown-split": ["world", "make", "--out", "{tmp}/w", "--split", "nope", "--n", "2"],
    "world-show-missing-index": ["world", "show", "{tmp}/w"],
    "world-splits-unknown-option": ["world", "splits", "--bogus"],
    "train-sft-bad-variant": ["train", "sft", "--variant", "nope", "--model", "m"],
    "train-rl-bad-variant": ["train", "rl", "--variant", "nope", "--model", "m"],
    "train-rl-bad-grounder": ["train", "rl", "--grounder", "sam3", "--model", "m"],
    "train-rl-bad-router": ["train", "rl", "--router", "llm", "--model", "m"],
    "eval-unknown-benchmark": ["eval", "--benchmark", "nope"],
    "eval-bad-variant": ["eval", "--benchmark", "nope", "--variant", "think"],
    "eval-grounding-without-agent": ["eval", "--benchmark", "nope", "--variant", "point", "--grounding", "box"],
    "world-make-bad-style": ["world", "make", "--out", "{tmp}/w", "--split", "world-tally", "--style", "sketchy"],
    "eval-report-no-store": ["eval", "report"],
    "repro-tiny-unknown-option": ["repro", "tiny", "--bogus"],
    "repro-table-unknown-option": ["repro", "table", "--bogus"],
    "repro-table-bad-size": ["repro", "table", "--size", "huge"],
    "repro-tiny-bad-teacher-grounder": ["repro", "tiny", "--teacher-grounder", "sam3"],
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_every_command_answers_bad_input_with_one_line_and_exit_2(case: str, sample, tmp_path: Path,
                                                                   capsys) -> None:
    """Each command with bad input, through vgt's real entry point: one `error:` line on stderr, exit 2, no
    store written. Click's own usage errors printed a five-line box."""
    db = tmp_path / "store.db"
    argv = [a.replace("{tmp}", str(tmp_path)).replace("IMG", sample.image_path) for a in BAD_INPUT[case]]
    if case.startswith(("traces", "eval-report", "synth", "train", "ask", "eval-")) and "merge" not in case:
        argv += ["--db", str(db)]
    code = run(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert _one_error_line(err).startswith("error: ")
    assert not db.exists()


# ---------------------------------------------------------------------------------------------------------
# Terminal safety and secrets
# ---------------------------------------------------------------------------------------------------------

HOSTILE = ("<think>[/] [green]green? [bold]\x1b[2J\x1b]0;pwned\x07 back\r over\x9b31m</think> "
           "\\boxed{[/]}")


def test_model_markup_and_escape_sequences_print_as_text(sample, tmp_path: Path) -> None:
    """A model writing `\\boxed{[/]}` crashed `vgt ask`'s output after the trace was saved and broke
    `traces list`/`show` for the whole store; ESC sequences (clear screen, set title) reached the terminal."""
    db = tmp_path / "t.db"
    with StubOpenAIServer(lambda body: HOSTILE) as server:
        result = runner.invoke(app, ["ask", sample.image_path, "How many [red] circles are there?",
                                     "--base-url", server.base_url, "--model", server.model, "--db", str(db)])
    assert result.exit_code == 0, result.output
    listed = runner.invoke(app, ["traces", "list", "--db", str(db)])
    trace_id = json.loads(runner.invoke(app, ["traces", "list", "--db", str(db), "--json"]).stdout)[0]["id"]
    shown = runner.invoke(app, ["traces", "show", trace_id, "--db", str(db)])
    runs = runner.invoke(app, ["traces", "runs", "--db", str(db)])
    for out in (result, listed, shown, runs):
        assert out.exit_code == 0, out.output
        assert "\x1b" not in out.output and "\x07" not in out.output and "\x9b" not in out.output
        assert "\r" not in out.output
    assert "answer: [/]" in result.stdout and "[green]green?" in result.stdout and "␛" in result.stdout
    assert "[/]" in shown.stdout and "How many [red] circles" in shown.stdout
    assert "[red]" in listed.stdout


def test_streamed_thought_on_a_terminal_shows_escape_sequences_as_text(sample, tmp_path: Path, monkeypatch) -> None:
    """On a terminal `vgt ask` streams the model's tokens as they come: they went out raw, so a model could
    clear the screen or retitle the window."""
    from vgt_agent.cli.common import console

    monkeypatch.setattr(console, "_force_terminal", True)  # as on a terminal: styled, and streamed
    with StubOpenAIServer(lambda body: HOSTILE) as server:
        result = runner.invoke(app, ["ask", sample.image_path, sample.question, "--base-url", server.base_url,
                                     "--model", server.model, "--db", str(tmp_path / "t.db")])
    assert result.exit_code == 0, result.output
    for raw in ("\x1b[2J", "\x1b]0;pwned", "\x07", "\x9b", "\r"):
        assert raw not in result.stdout
    assert result.stdout.count("␛[2J") == 2  # streamed, then in the thought panel


def test_url_credentials_are_never_printed_or_stored(sample, tmp_path: Path, monkeypatch) -> None:
    """`--base-url http://user:KEY@host/v1`: the key was stored in `runs.command` and printed in errors."""
    db = tmp_path / "t.db"
    with StubOpenAIServer(lambda body: "<think>two</think> \\boxed{2}") as server:
        url = server.base_url.replace("http://", "http://user:SECRETKEY@")
        argv = ["ask", sample.image_path, sample.question, "--base-url", url, "--model", server.model,
                "--db", str(db), "--json"]
        monkeypatch.setattr(sys, "argv", ["vgt", *argv])  # what the run records as its command line
        ok = runner.invoke(app, argv)
    dead = runner.invoke(app, ["ask", sample.image_path, sample.question, "--model", "m", "--db", str(db),
                               "--base-url", DEAD_URL.replace("http://", "http://user:SECRETKEY@")])
    assert ok.exit_code == 0 and dead.exit_code == 1, (ok.output, dead.output)
    for out in (ok, dead):
        assert "SECRETKEY" not in out.stdout + out.stderr
    with TraceStore.open(db, readonly=True) as store:
        (run_row,) = store.runs()
    assert "SECRETKEY" not in json.dumps(run_row) and "***@" in run_row["command"]


@pytest.mark.slow
def test_successful_ask_writes_nothing_to_stderr(sample, tmp_path: Path) -> None:
    """A successful `vgt ask` on the shipped vgt-tiny printed transformers' "Loading weights" bar on stderr."""
    proc = subprocess.run([*CLI, "ask", sample.image_path, sample.question, "--db", str(tmp_path / "t.db"),
                           "--json"], capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "answered"
    assert proc.stderr == ""


# ---------------------------------------------------------------------------------------------------------
# Honest when it can't
# ---------------------------------------------------------------------------------------------------------


def test_no_answer_after_a_repeated_call_exits_1_and_says_why(sample, tmp_path: Path) -> None:
    """"count the red shapes" -> no answer, stop `repeated_call`, exit 0. A run without an answer exits 1; the
    human view and --json say why."""
    db = tmp_path / "t.db"
    with StubOpenAIServer(lambda body: "<think>again <ground> red circles </ground>") as server:
        base = ["ask", sample.image_path, sample.question, "--base-url", server.base_url, "--model", server.model,
                "--db", str(db)]
        human = runner.invoke(app, base)
        as_json = runner.invoke(app, [*base, "--json"])
    assert human.exit_code == 1 and as_json.exit_code == 1, human.output
    assert "no answer" in human.stdout and "repeated_call" in human.stdout
    assert "no answer" in _one_error_line(human.stderr)
    out = json.loads(as_json.stdout)
    assert out["status"] == "no_answer" and out["stop_reason"] == "repeated_call" and out["answer"] is None
    assert "same phrase" in out["reason"]
    with TraceStore.open(db, readonly=True) as store:
        assert {r["status"] for r in store.runs()} == {"no_answer"}


def test_run_stopped_by_max_tokens_exits_1(sample, tmp_path: Path) -> None:
    """vgt-tiny with `--max-tokens 3` stops before `\\boxed{}`: exit 1, status no_answer, stop max_tokens."""
    result = runner.invoke(app, ["ask", sample.image_path, sample.question, "--max-tokens", "3",
                                 "--db", str(tmp_path / "t.db"), "--json"])
    assert result.exit_code == 1, result.output
    out = json.loads(result.stdout)
    assert out["status"] == "no_answer" and out["stop_reason"] == "max_tokens" and out["answer"] is None
    assert "--max-tokens" in out["reason"] and out["model"] == "vgt-tiny"


def test_photo_with_the_world_grounder_gets_no_number(photo: Path, tmp_path: Path) -> None:
    """scikit-image's photographs (coffee, coins, astronaut, ...) with "how many circles?" were all answered
    `0`, exit 0. Now: no number, one line saying what vgt-tiny + the world grounder understand and how to ask
    a real model, exit 1, the run and trace stored `refused`."""
    db = tmp_path / "t.db"
    result = runner.invoke(app, ["ask", str(photo), "How many circles are there?", "--db", str(db), "--json"])
    assert result.exit_code == 1, result.output
    out = json.loads(result.stdout)
    assert out["status"] == "refused" and out["answer"] is None and out["reason"]
    assert out["backend"] == "transformers" and out["model"] == "vgt-tiny" and out["grounder"] == "world"
    line = _one_error_line(result.stderr)
    assert "shapes world" in line and "--base-url" in line and "--grounder sam3" in line
    with TraceStore.open(db, readonly=True) as store:
        (run_row,) = store.runs()
        trace = store.trace(out["trace_id"])
    assert run_row["status"] == "refused" and trace["status"] == "refused" and trace["answer"] is None


def test_photo_with_a_served_model_and_the_world_grounder_is_refused_before_the_model_runs(photo: Path,
                                                                                         tmp_path: Path) -> None:
    """Any model asked about a photo through the world grounder gets the same refusal (the grounder cannot see
    it), naming the world grounder and sam3, without a request to the server."""
    with StubOpenAIServer(lambda body: "<think>none</think> \\boxed{0}") as server:
        result = runner.invoke(app, ["ask", str(photo), "How many circles are there?", "--base-url",
                                     server.base_url, "--model", server.model, "--db", str(tmp_path / "t.db"),
                                     "--json"])
        assert not server.chat_requests
    assert result.exit_code == 1, result.output
    out = json.loads(result.stdout)
    assert out["status"] == "refused" and out["answer"] is None and out["model"] == "stub-vlm"
    line = _one_error_line(result.stderr)
    assert "The world grounder only understands the shapes world" in line and "--grounder sam3" in line


@pytest.mark.parametrize("question", ["How many cups are there?", "how many coins are on the table",
                                      "Is the cat left of the red circle?"])
def test_question_outside_the_worlds_vocabulary_gets_no_number(question: str, world: Path,
                                                              tmp_path: Path) -> None:
    """"how many cups?" on a world image was answered `0`, exit 0: a question naming things the world does
    not have is refused with exit 1, status refused in --json and in the store."""
    image = sorted((world / "images").glob("*.png"))[0]
    result = runner.invoke(app, ["ask", str(image), question, "--db", str(tmp_path / "t.db"), "--json"])
    assert result.exit_code == 1, result.output
    out = json.loads(result.stdout)
    assert out["status"] == "refused" and out["answer"] is None and out["reason"]
    assert "shapes world" in _one_error_line(result.stderr)


def test_answered_json_carries_the_status_fields(sample, tmp_path: Path) -> None:
    """--json of an answered run carries status, stop_reason and reason like a refused or unanswered one."""
    with StubOpenAIServer(lambda body: f"<think>counted</think> \\boxed{{{sample.answer}}}") as server:
        result = runner.invoke(app, ["ask", sample.image_path, sample.question, "--base-url", server.base_url,
                                     "--model", server.model, "--db", str(tmp_path / "t.db"), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["status"] == "answered" and out["stop_reason"] == "answered" and out["reason"] is None
    assert out["answer"] == sample.answer and out["correct"] is True


def test_store_locked_by_another_writer_exits_1_naming_it(sample, tmp_path: Path, monkeypatch, capsys) -> None:
    """A store locked by another writer at start: a long traceback after a long wait. Now a bounded wait
    (VGT_LOCK_TIMEOUT), then exit 1 with one line saying the store is locked."""
    import sqlite3

    db = tmp_path / "t.db"
    TraceStore.open(db).close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("begin immediate")  # another writer, mid-transaction
    monkeypatch.setenv("VGT_LOCK_TIMEOUT", "0.5")
    try:
        with StubOpenAIServer(lambda body: "<think>two</think> \\boxed{2}") as server:
            started = time.perf_counter()
            code = run(["ask", sample.image_path, sample.question, "--base-url", server.base_url,
                        "--model", server.model, "--db", str(db)])
    finally:
        holder.rollback()
        holder.close()
    err = capsys.readouterr().err
    assert code == 1, err
    assert "locked by another writer" in _one_error_line(err) and time.perf_counter() - started < 30


def test_eval_report_shows_a_markup_label_as_text(tmp_path: Path) -> None:
    """`vgt eval --label "[/] best"` stored a label that broke `vgt eval report` (Rich markup in a row name)."""
    db = tmp_path / "t.db"
    with TraceStore.open(db) as store:
        run_id = store.start_run("eval", name="[/] best", config={"label": "[/] best", "mode": "point"})
        store.end_run(run_id, metrics={"benchmarks": {"world-tally": {
            "group": "counting", "samples": 1, "generations": 2, "k": 2, "acc": 0.5, "pass@k": 1.0,
            "grounding": None, "boxed_rate": 1.0, "truncated_rate": 0.0}}})
    result = runner.invoke(app, ["eval", "report", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "[/] best" in result.stdout
