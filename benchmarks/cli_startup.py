"""What a `vgt` command costs before it does anything, against the floor measured in the same run.

Each row is a fresh process; the numbers are the median CPU time (user + system, from the child's own
rusage), wall time and peak RSS over `--runs` runs, after one unmeasured warm-up run; the start-up rows and
the floor take their runs in turn, so a drift in the machine's speed moves them alike. References:

- floor: `python -c "import typer, rich, sqlite3, json"`, what `vgt traces list` needs at the least;
  `vgt --help`, `vgt ask --help` and `vgt traces list|show|stats|runs` (on a one-trace store built here)
  should stay within 3x of it.
- bare script: a script that loads the shipped vgt-tiny weights with transformers and generates the very
  tokens `vgt ask` generated (the same prompts, images and token counts, recorded from a `vgt ask` run here,
  and checked token for token); `vgt ask` on the default should stay within 1.2x of it.
- informational rows: a one-command typer app's `--help` (typer's own help machinery: rich markdown and its
  pydantic parameter adapters), and `vgt ask` with the interpreter's normal teardown (what `_exit_now` in
  `vgt_agent/cli/main.py` saves).

Children run the package in this checkout (`python -c "from vgt_agent.cli.main import main; main()"`, what
the `vgt` script runs) with bytecode caching on, as an installed package has it.

    OMP_NUM_THREADS=1 python benchmarks/cli_startup.py [--runs 5] [--ask-runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
VGT = "from vgt_agent.cli.main import main; main()"
FLOOR = "import typer, rich, sqlite3, json"
QUESTION = "How many red circles are there?"
TYPER_APP = """
import typer
app = typer.Typer(add_completion=False)
@app.command()
def hello(name: str = typer.Option("world", help="Who.")) -> None:
    '''Say hello.'''
@app.command()
def bye() -> None:
    '''Say bye.'''
app()
"""
# `vgt ask` in a process that records every generate call of the transformers backend: the templated
# messages, the images (saved as PNG), the generation options and the new token ids.
RECORDER = """
import json, sys
from pathlib import Path
from vgt_agent.backends import transformers_backend as tb

out = Path(sys.argv[1])
calls = []
original = tb.TransformersBackend.generate

def generate(self, messages, images=(), **options):
    model_generate = self._model.generate
    seen = {}

    def recording(**inputs):
        ids = model_generate(**inputs)
        seen["new"] = ids[0, inputs["input_ids"].shape[1]:].tolist()
        return ids

    self._model.generate = recording
    try:
        result = original(self, messages, images, **options)
    finally:
        del self._model.generate
    paths = []
    for image in images:
        paths.append(str(out / f"call{len(calls)}-image{len(paths)}.png"))
        image.convert("RGB").save(paths[-1])
    calls.append({"messages": tb.template_messages(messages), "continuing": tb.continues_assistant(messages),
                  "images": paths, "new_ids": seen["new"]})
    return result

tb.TransformersBackend.generate = generate
from vgt_agent.cli.main import run
code = run(sys.argv[2:])
(out / "calls.json").write_text(json.dumps(calls))
sys.exit(code)
"""
# The bare script: the same weights, prompts and images, the same number of new tokens, nothing of vgt.
BARE = """
import json, sys
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

weights, calls = sys.argv[1], json.load(open(sys.argv[2]))
processor = AutoProcessor.from_pretrained(weights, local_files_only=True)
model = AutoModelForImageTextToText.from_pretrained(weights, local_files_only=True, dtype=torch.float32).eval()
same = True
for call in calls:
    images = [Image.open(p).convert("RGB") for p in call["images"]]
    inputs = processor.apply_chat_template(
        call["messages"], add_generation_prompt=not call["continuing"], continue_final_message=call["continuing"],
        tokenize=True, return_dict=True, return_tensors="pt",
        processor_kwargs={"images": images} if images else None)
    with torch.inference_mode():
        ids = model.generate(**inputs, max_new_tokens=len(call["new_ids"]), do_sample=False, top_k=None,
                             top_p=None, temperature=None)
    same = same and ids[0, inputs["input_ids"].shape[1]:].tolist() == call["new_ids"]
print(json.dumps({"same": same, "tokens": sum(len(c["new_ids"]) for c in calls)}))
"""


@dataclass
class Measured:
    cpu: float
    wall: float
    rss_mib: float


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.setdefault("OMP_NUM_THREADS", "1")
    env["COLUMNS"] = "100"
    return env


def run_once(argv: list[str]) -> tuple[float, float, float, int, str]:
    """(CPU seconds, wall seconds, peak RSS MiB, exit code, stdout) of one child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.stdout:
        proc.stdout.close()
    return (usage.ru_utime + usage.ru_stime, time.perf_counter() - started, usage.ru_maxrss / 1024,
            proc.returncode, out)


def measure(argv: list[str], runs: int, expect: int = 0) -> Measured:
    """Medians over `runs` runs after one warm-up (which also writes the bytecode caches)."""
    return measure_together({"": argv}, runs, expect)[""]


def measure_together(argvs: dict[str, list[str]], runs: int, expect: int = 0) -> dict[str, Measured]:
    """`measure` for several commands, their runs taken in turn (one of each, `runs` times), so a change in
    the machine's speed during the benchmark moves every row alike and the ratios between them hold."""
    samples: dict[str, list[tuple[float, float, float]]] = {what: [] for what in argvs}
    for i in range(runs + 1):
        for what, argv in argvs.items():
            cpu, wall, rss, code, _ = run_once(argv)
            if code != expect:
                raise SystemExit(f"{' '.join(argv[-4:])} exited {code}, expected {expect}")
            if i:
                samples[what].append((cpu, wall, rss))
    return {what: Measured(*(statistics.median(s[k] for s in taken) for k in range(3)))
            for what, taken in samples.items()}


def vgt(*args: str) -> list[str]:
    return [sys.executable, "-c", VGT, *args]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per start-up row (median)")
    parser.add_argument("--ask-runs", type=int, default=3, help="runs per `vgt ask` row (median)")
    parser.add_argument("--no-ask", action="store_true", help="skip the `vgt ask` rows (no model load)")
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        world, store, ask_db, record = tmp / "world", tmp / "traces.db", tmp / "ask.db", tmp / "record"
        record.mkdir()
        subprocess.run(vgt("world", "make", "--split", "world-tally", "--out", str(world), "--n", "2"), cwd=ROOT,
                       env=child_env(), check=True, stdout=subprocess.DEVNULL)
        image = str(world / "images" / "000000.png")
        # one `vgt ask`, recorded: the one trace of the store the `traces` rows read, and the bare script's calls
        recorded = subprocess.run([sys.executable, "-c", RECORDER, str(record), "ask", image, QUESTION, "--db",
                                   str(store), "--json"], cwd=ROOT, env=child_env(), check=True,
                                  capture_output=True, text=True)
        trace_id = json.loads(recorded.stdout)["trace_id"]
        weights = str(ROOT / "vgt_agent" / "tiny" / "weights" / "vgt-tiny")

        rows: list[tuple[str, Measured, str, float | None]] = []  # (what, measured, reference, target ratio)
        floor_row = "floor: python -c 'import typer, rich, sqlite3, json'"
        typer_row = "a two-command typer app --help (typer's help)"
        targets = {
            "vgt --help": vgt("--help"),
            "vgt ask --help": vgt("ask", "--help"),
            "vgt traces list (one-trace store)": vgt("traces", "list", "--db", str(store)),
            "vgt traces show ID": vgt("traces", "show", trace_id, "--db", str(store)),
            "vgt traces stats": vgt("traces", "stats", "--db", str(store)),
            "vgt traces runs": vgt("traces", "runs", "--db", str(store)),
        }
        measured = measure_together({floor_row: [sys.executable, "-c", FLOOR],
                                     typer_row: [sys.executable, "-c", TYPER_APP, "--help"], **targets}, args.runs)
        floor = measured[floor_row]
        rows.append((floor_row, floor, "", None))
        rows.append((typer_row, measured[typer_row], "floor", None))
        rows.extend((what, measured[what], "floor", 3.0) for what in targets)
        same = None
        if not args.no_ask:
            bare_argv = [sys.executable, "-c", BARE, weights, str(record / "calls.json")]
            bare = measure(bare_argv, args.ask_runs)
            same = json.loads(run_once(bare_argv)[4])
            rows.append((f"bare script: load vgt-tiny, generate the same {same['tokens']} tokens", bare, "", None))
            ask_argv = vgt("ask", image, QUESTION, "--db", str(ask_db))
            rows.append(("vgt ask IMAGE 'How many red circles are there?'", measure(ask_argv, args.ask_runs),
                         "bare", 1.2))
            normal_exit = [sys.executable, "-c", "import vgt_agent.cli.main as m; m._exit_now = lambda code: None; "
                           "m.main()", *ask_argv[3:]]
            rows.append(("  the same, with the interpreter's normal teardown", measure(normal_exit, args.ask_runs),
                         "bare", None))

    references = {"floor": floor.cpu, "bare": next((m.cpu for w, m, _, _ in rows if w.startswith("bare")), None)}
    table = Table(title=f"vgt start-up: median of {args.runs} runs ({args.ask_runs} for ask), {os.cpu_count()} "
                        "CPUs, CPU = user + system of the child")
    for col, justify in (("command", "left"), ("CPU s", "right"), ("wall s", "right"), ("peak RSS MiB", "right"),
                         ("x reference (CPU)", "right"), ("target", "right"), ("", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for what, m, ref, target in rows:
        base = references.get(ref)
        ratio = m.cpu / base if base else None
        verdict = "" if target is None or ratio is None else ("pass" if ratio <= target else "FAIL")
        style = {"pass": "green", "FAIL": "red"}.get(verdict, "")
        table.add_row(what, f"{m.cpu:.3f}", f"{m.wall:.3f}", f"{m.rss_mib:.0f}",
                      f"{ratio:.2f}x {ref}" if ratio is not None else "",
                      f"<= {target:g}x" if target is not None else "", f"[{style}]{verdict}[/]" if verdict else "")
    console.print(table)
    if same is not None:
        console.print(f"bare script generated the same tokens as vgt ask: {'yes' if same['same'] else 'NO'}")


if __name__ == "__main__":
    main()
