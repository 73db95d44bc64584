"""A loopback OpenAI-compatible teacher for world images, in its own process (for the throughput benchmark).

It answers each distill request with the world-oracle trace of the request's image after a fixed latency,
like a vLLM server that always reasons correctly. Running it as a separate process keeps its request
parsing off the benchmarked process's GIL, as a real server would be.

Usage: python tests/synth_stub_teacher.py SPLIT_DIR [--latency 0.2] [--port 0]
Prints "ready <base_url>" once serving; stops on SIGTERM / Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from openai_stub_server import StubOpenAIServer  # noqa: E402
from synth_models import OracleTeacher  # noqa: E402

from vgt_agent.world.storage import load_split  # noqa: E402


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("split_dir", type=Path)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per request")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    teacher = OracleTeacher(load_split(args.split_dir))
    server = StubOpenAIServer(teacher, latency_s=args.latency, port=args.port, record=False)
    signal.signal(signal.SIGTERM, _interrupt)
    print(f"ready {server.base_url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
