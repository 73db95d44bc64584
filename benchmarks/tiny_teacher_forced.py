"""Where a vgt-tiny policy goes wrong, without generating: teacher-forced accuracy on held-out teacher traces.

For each benchmark split, the teacher (`world-oracle`) writes its traces through the ask graph, and the policy
reads each trace as one training sequence (`training/agent_examples.build_example`): every model-written token is
predicted from the teacher's own prefix. Three numbers per split: the share of model tokens predicted right;
the answer token (the one after the last `\\boxed{`) right; whole traces right token for token. A split whose
answer token is at chance while its tokens are mostly right has a decision the policy did not learn.

Run: OMP_NUM_THREADS=1 python benchmarks/tiny_teacher_forced.py --model DIR --data ROOT [--limit 60]
     (ROOT holds the world splits, e.g. a `vgt repro tiny` work dir's data/)
"""

from __future__ import annotations

import argparse
import tempfile
from collections import defaultdict
from pathlib import Path

import torch
from PIL import Image
from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

from vgt_agent.backends.world_oracle import NAME as ORACLE
from vgt_agent.cli.main import app
from vgt_agent.store import TraceStore
from vgt_agent.tiny.agent_runs import BENCHMARKS
from vgt_agent.training.agent_data import trace_turns
from vgt_agent.training.agent_examples import IGNORE, build_example, collate
from vgt_agent.training.data import trace_rows


def teacher_traces(data: Path, limit: int, db: Path) -> None:
    """The teacher's verified traces of each benchmark split (what `vgt synth --via agent` keeps)."""
    for split in BENCHMARKS:
        result = CliRunner().invoke(app, ["synth", "--dataset", str(data / split), "--via", "agent", "--teacher",
                                          ORACLE, "--grounder", "gold-shuffled", "--limit", str(limit),
                                          "--db", str(db), "--json"])
        if result.exit_code != 0:
            raise SystemExit(f"synth {split} failed: {result.output.strip().splitlines()[-1:]}")


def score(model_dir: Path, db: Path) -> dict[str, list[int]]:
    """split -> [tokens right, tokens, answers right, answers, traces right, traces]."""
    from transformers import AutoProcessor, Gemma3ForConditionalGeneration

    processor = AutoProcessor.from_pretrained(model_dir)
    model = Gemma3ForConditionalGeneration.from_pretrained(model_dir).eval()
    tok = processor.tokenizer
    boxed = tok.convert_tokens_to_ids("\\boxed{")
    store = TraceStore.open(db, readonly=True)
    splits = {s["id"]: s["split"] for s in store.db["samples"].rows}
    out: dict[str, list[int]] = defaultdict(lambda: [0] * 6)
    for row in trace_rows(store, "agent"):
        with Image.open(row["image_path"]) as im:
            image = im.convert("RGB")
        ex = build_example(processor, row["question"], row.get("choices") or (), trace_turns(row), image)
        batch = collate([ex], tok.pad_token_id)
        with torch.no_grad():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           pixel_values=batch["pixel_values"], token_type_ids=batch["token_type_ids"]).logits[0]
        pred, labels, ids = logits[:-1].argmax(-1), batch["labels"][0, 1:], batch["input_ids"][0, :-1]
        trained = labels != IGNORE
        right = (pred == labels) & trained
        counts = out[splits.get(row["sample_id"], "?")]
        counts[0] += int(right.sum())
        counts[1] += int(trained.sum())
        at = (ids == boxed).nonzero().flatten()
        if len(at):
            counts[2] += int(pred[at[-1]] == labels[at[-1]])
            counts[3] += 1
        counts[4] += int(right.sum() == trained.sum())
        counts[5] += 1
    store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="folder holding the world benchmark splits")
    parser.add_argument("--limit", type=int, default=60)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "teacher.db"
        teacher_traces(args.data, args.limit, db)
        results = score(args.model, db)
    table = Table(title=f"teacher-forced on {ORACLE} traces: {args.model}")
    for col in ("split", "traces", "tokens right", "answer token right", "whole trace right"):
        table.add_column(col, justify="left" if col == "split" else "right")
    for split in BENCHMARKS:
        t, n, a, an, w, wn = results.get(split, [0] * 6)
        table.add_row(split, str(wn), f"{t / max(n, 1):.1%}", f"{a}/{an}", f"{w}/{wn}")
    Console().print(table)


if __name__ == "__main__":
    main()
