"""The agent against a server vgt did not write: `transformers serve` on loopback, serving the shipped vgt-tiny.

That server fails on stop strings for processor models (HTTP 500, or an error event in a stream), refuses
vLLM's `continue_final_message` (HTTP 422) and closes a prefilled assistant turn. vgt must detect all of it
by itself: stops applied client-side, the portable `turns` form. Parity: the served answers equal the
in-process backend's in the same (turns) form, greedy, on >= 9 of 10 world questions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from transformers_server import ServerFailed, transformers_serve

from vgt_agent.backends import BackendError, OpenAIBackend
from vgt_agent.backends.transformers_backend import TransformersBackend
from vgt_agent.backends.turns import agent_messages
from vgt_agent.graphs.ask import AskContext, AskLimits, run_ask
from vgt_agent.grounders.world import WorldGrounder
from vgt_agent.prompts import AGENT_TEXT_TOOL
from vgt_agent.store import ImageRecord, SampleRecord, TraceStore
from vgt_agent.tiny.recipe import shipped_weights
from vgt_agent.world.storage import load_split, make_split

pytestmark = pytest.mark.slow
WEIGHTS = shipped_weights()
FAKE_KEY = "sk-fake-4n0th3r-k3y-never-shown"
URL_SECRET = "urlpa55word"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(base_url, model id): `transformers serve` started here, stopped (killed if need be) at teardown."""
    pytest.importorskip("fastapi", reason="transformers serve needs the dev extras (fastapi, uvicorn)")
    pytest.importorskip("uvicorn", reason="transformers serve needs the dev extras (fastapi, uvicorn)")
    assert WEIGHTS is not None, "the shipped vgt-tiny weights are missing"
    try:
        with transformers_serve(WEIGHTS, tmp_path_factory.mktemp("serve") / "serve.log") as server:
            yield server
    except ServerFailed as e:
        pytest.fail(str(e))


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """Ten world questions: five counting, five spatial."""
    root = tmp_path_factory.mktemp("world")
    make_split(root / "tally", "world-tally", n=5, seed=11)
    make_split(root / "vsr", "world-vsr", n=5, seed=12)
    return root


def _samples(world: Path):
    return [*load_split(world / "tally"), *load_split(world / "vsr")]


def _vgt(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "vgt_agent.cli.main", *args], capture_output=True, text=True,
                          env=full_env, timeout=300)


def test_stop_strings_fall_back_to_the_client_and_the_turn_form_is_detected(served, world):
    base_url, model = served
    sample = _samples(world)[0]
    image = Image.open(sample.image_path).convert("RGB")
    messages = agent_messages(AGENT_TEXT_TOOL, sample.question, sample.choices, [], "turns")
    backend = OpenAIBackend(base_url=base_url, model=model, turn_form="continuation", timeout_s=60)
    assert backend.server_modes() == {"stop": "untested", "turns": "turns"}  # 422 on continue_final_message
    plain = backend.generate(messages, [image], max_tokens=40)  # no stop: trained in turns, it ends its turn
    assert plain.text.strip().endswith("</ground>") and plain.text.count("</ground>") == 1
    assert plain.finish_reason == "stop"
    streamed: list[str] = []
    gen = backend.generate(messages, [image], max_tokens=40, stop=["</ground>"], stream=streamed.append)
    assert backend.server_modes() == {"stop": "client", "turns": "turns"}
    assert gen.text.endswith("</ground>") and gen.text.count("</ground>") == 1 and gen.stop_sequence == "</ground>"
    assert "".join(streamed) == gen.text and gen.finish_reason == "stop"
    again = backend.generate(messages, [image], max_tokens=40, stop=["</ground>"])  # not streamed by the caller
    assert again.text == gen.text and again.stop_sequence == "</ground>"


def test_ask_served_matches_in_process_in_the_turns_form(served, world, tmp_path):
    from typer.testing import CliRunner

    from vgt_agent.cli.main import app

    base_url, model = served
    samples = _samples(world)
    local = TransformersBackend.from_pretrained(WEIGHTS, model_name="vgt-tiny")  # declares the turns form
    assert local.server_modes() == {"stop": "in-process", "turns": "turns"}
    db = tmp_path / "served.db"
    served_answers, local_answers, correct = [], [], 0
    for sample in samples:
        image = Image.open(sample.image_path).convert("RGB")
        record = SampleRecord.from_sample(sample, ImageRecord.from_path(Path(sample.image_path)))
        state = run_ask(AskContext(image=image, sample=record, backend=local, grounder=WorldGrounder(),
                                   limits=AskLimits(max_tokens=512)))
        local_answers.append((state.get("answer"), state.get("stop_reason")))
        run = CliRunner().invoke(app, ["ask", sample.image_path, sample.question, "--backend", "openai",
                                       "--base-url", base_url, "--model", model, "--max-tokens", "512",
                                       "--db", str(db), "--json"])
        assert run.stdout.strip(), (run.exit_code, run.stderr, run.exception)
        result = json.loads(run.stdout)
        assert result["error"] is None, run.stderr
        assert result["server_modes"] == {"stop": "client", "turns": "turns"}  # what vgt detected, in --json
        assert run.exit_code == (0 if result["answer"] is not None else 1), run.stderr  # no answer: exit 1
        served_answers.append((result["answer"], result["stop_reason"]))
        correct += bool(result["correct"])
    same = sum(a == b for a, b in zip(served_answers, local_answers, strict=True))
    print(f"\nturns form, served vs in-process: {same}/10 equal; served accuracy {correct}/10")
    assert same >= 9, list(zip(served_answers, local_answers, strict=True))
    assert correct >= 8  # vgt-tiny is trained in the turns form: served, it answers as it does in process
    with TraceStore.open(db, create=False) as store:
        traces = [store.trace(t["id"]) for t in store.traces()]
    assert len(traces) == 10
    assert all(t["meta"]["server_modes"] == {"stop": "client", "turns": "turns"} for t in traces)


def test_a_refused_request_is_one_line_exit_1_and_a_failed_run_and_no_secret_is_kept(served, world, tmp_path):
    base_url, _ = served
    sample = _samples(world)[0]
    db = tmp_path / "refused.db"
    secret_url = base_url.replace("http://", f"http://vgt:{URL_SECRET}@")
    run = _vgt("ask", sample.image_path, sample.question, "--backend", "openai", "--base-url", secret_url,
               "--model", "not-the-served-model", "--db", str(db), env={"OPENAI_API_KEY": FAKE_KEY})
    assert run.returncode == 1, (run.stdout, run.stderr)
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "HTTP 400" in errors[0] and "not-the-served-model" in errors[0], run.stderr
    assert "Traceback" not in run.stderr
    for text in (run.stdout, run.stderr, db.read_bytes().decode("latin-1")):
        assert FAKE_KEY not in text and URL_SECRET not in text
    with TraceStore.open(db, create=False) as store:
        (ask_run,) = store.runs("ask")
    assert ask_run["status"] == "failed" and "HTTP 400" in ask_run["error"]


def test_backend_errors_name_the_server_and_model(served):
    base_url, _ = served
    backend = OpenAIBackend(base_url=base_url, model="no-such-model", timeout_s=30)
    with pytest.raises(BackendError) as info:
        backend.generate([{"role": "user", "content": "hi"}], max_tokens=2)
    message = str(info.value)
    assert info.value.status == 400 and base_url in message and "no-such-model" in message and "\n" not in message
