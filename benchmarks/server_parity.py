"""The same policy in process and behind a server vgt did not write: do the answers agree?

Starts `transformers serve` on loopback with a vgt-tiny directory (the dev extras: fastapi, uvicorn), then
asks each question twice, greedy: through the ask graph with the in-process TransformersBackend, and through
`vgt ask --backend openai --base-url ...` (the real command, in process via CliRunner). Questions: the
first of each varied held-out world split, round robin, `--n` in all. Prints answers equal, accuracy of
each path, and the server modes vgt detected. Usage:

    OMP_NUM_THREADS=1 python benchmarks/server_parity.py [--model DIR] [--n 40] [--json]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from PIL import Image  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from vgt_agent.backends.transformers_backend import TransformersBackend  # noqa: E402
from vgt_agent.cli.main import app  # noqa: E402
from vgt_agent.graphs.ask import AskContext, AskLimits, run_ask  # noqa: E402
from vgt_agent.grounders.world import WorldGrounder  # noqa: E402
from vgt_agent.store import ImageRecord, SampleRecord  # noqa: E402
from vgt_agent.tiny.agent_runs import EVAL_SPLITS  # noqa: E402
from vgt_agent.tiny.recipe import shipped_weights  # noqa: E402
from vgt_agent.world.storage import load_split, make_split  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from transformers_server import transformers_serve  # noqa: E402

MAX_TOKENS = 768


def questions(root: Path, n: int) -> list:
    splits = [s for s in EVAL_SPLITS if s.endswith("-varied")]
    per = -(-n // len(splits))
    pools = []
    for split in splits:
        make_split(root / split, split, n=per)
        pools.append(list(load_split(root / split)))
    return [pool[i] for i in range(per) for pool in pools if i < len(pool)][:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=shipped_weights(), help="a vgt-tiny directory")
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    runner = CliRunner()
    local = TransformersBackend.from_pretrained(args.model, model_name="vgt-tiny")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        samples = questions(root, args.n)
        started = time.perf_counter()
        with transformers_serve(args.model, root / "serve.log") as (base_url, model_id):
            for sample in samples:
                image = Image.open(sample.image_path).convert("RGB")
                record = SampleRecord.from_sample(sample, ImageRecord.from_path(Path(sample.image_path)))
                state = run_ask(AskContext(image=image, sample=record, backend=local, grounder=WorldGrounder(),
                                           limits=AskLimits(max_tokens=MAX_TOKENS)))
                run = runner.invoke(app, ["ask", sample.image_path, sample.question, "--backend", "openai",
                                          "--base-url", base_url, "--model", model_id, "--max-tokens",
                                          str(MAX_TOKENS), "--db", str(root / "served.db"), "--json"])
                try:
                    served = json.loads(run.stdout)
                except json.JSONDecodeError:
                    served = {"answer": None, "correct": None, "error": (run.stderr or str(run.exception))[-300:]}
                rows.append({"id": sample.id, "question": sample.question, "gold": sample.answer,
                             "local": state.get("answer") if state.get("answer_source") == "boxed" else None,
                             "local_correct": bool(state.get("correct")), "served": served.get("answer"),
                             "served_correct": bool(served.get("correct")), "served_exit": run.exit_code,
                             "served_error": served.get("error")})
        seconds = time.perf_counter() - started
    n = len(rows)
    report = {"model": str(args.model), "n": n, "equal": sum(r["local"] == r["served"] for r in rows),
              "local_correct": sum(r["local_correct"] for r in rows),
              "served_correct": sum(r["served_correct"] for r in rows),
              "turn_form": local.turn_form, "seconds": round(seconds, 1),
              "differences": [r for r in rows if r["local"] != r["served"]]}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    table = Table(title=f"in process vs transformers serve ({args.model}, turn form {local.turn_form}, greedy)")
    for col in ("questions", "answers equal", "in-process correct", "served correct", "seconds"):
        table.add_column(col, justify="right")
    table.add_row(str(n), f"{report['equal']} ({report['equal'] / n:.0%})", str(report["local_correct"]),
                  str(report["served_correct"]), str(report["seconds"]))
    console = Console()
    console.print(table)
    for r in report["differences"]:
        console.print(f"differs: {r['id']} {r['question']!r}: in process {r['local']!r}, served {r['served']!r}"
                      f"{' (' + str(r['served_error']) + ')' if r['served_error'] else ''}", markup=False)


if __name__ == "__main__":
    main()
