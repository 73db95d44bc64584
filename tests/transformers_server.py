"""`transformers serve` started on loopback for a model directory: a third-party OpenAI-compatible server
that vgt did not write (needs the dev extras: fastapi, uvicorn). Used by the server tests and
`benchmarks/server_parity.py`."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

START_TIMEOUT_S = 180


class ServerFailed(RuntimeError):
    """The server exited or did not answer in time; the message ends with its log's tail."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_command(model_dir: Path, port: int) -> list[str]:
    script = Path(sys.executable).with_name("transformers")
    exe = str(script) if script.exists() else shutil.which("transformers")
    if not exe:
        raise ServerFailed("the `transformers` command is not installed")
    return [exe, "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
            "--log-level", "warning"]


@contextlib.contextmanager
def transformers_serve(model_dir: Path, log: Path) -> Iterator[tuple[str, str]]:
    """(base_url, model id) while `transformers serve` runs; stopped (killed if need be) on exit."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(serve_command(model_dir, port), stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        models = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ServerFailed(f"transformers serve exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
                    models = json.load(response)["data"]
                    break
            except OSError:
                time.sleep(0.5)
        if not models:
            raise ServerFailed(f"transformers serve did not come up in {START_TIMEOUT_S} s: "
                               f"{log.read_text()[-2000:]}")
        yield base_url, models[0]["id"]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
