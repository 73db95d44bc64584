"""`vgt traces`: browse, inspect, summarise, export and merge the trace store."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.panel import Panel
from rich.table import Table

from vgt_agent.cli.common import console, print_json, safe_text, usage_error
from vgt_agent.cli.options import DbOption, JsonOption, open_store
from vgt_agent.cli.thought_view import highlight_thought
from vgt_agent.cli.trace_png import write_trace_png
from vgt_agent.store import StoreError, TraceStore
from vgt_agent.store.export import to_sft_dataset, write_jsonl

app = typer.Typer(help="Browse, inspect, summarise, export and merge stored traces.", no_args_is_help=True)

RunOpt = typer.Option(None, "--run", help="Run id or name.")
DatasetOpt = typer.Option(None, "--dataset", help="Dataset name, e.g. world-tally.")
VariantOpt = typer.Option(None, "--variant", help="agent | point | box | plain | direct | candidate ...")
KindOpt = typer.Option(None, "--kind", help="Only traces with point or box groundings.")
CorrectOpt = typer.Option(None, "--correct/--incorrect", help="Only correct (or incorrect) answers.")
StatusOpt = typer.Option(None, "--status", help="ok | rejected | error")


def _filters(run, dataset, variant, kind, correct, status) -> dict:
    if kind not in (None, "point", "box"):
        usage_error(f"--kind must be point or box, not {kind!r}")
    return {"run": run, "dataset": dataset, "variant": variant, "kind": kind, "correct": correct,
            "status": status}


def _mark(value: bool | None) -> str:
    return {True: "[green]✓[/]", False: "[red]✗[/]", None: "[dim]–[/]"}[value]


@app.command("list")
def list_traces(
    db: Path = DbOption, run: str = RunOpt, dataset: str = DatasetOpt, variant: str = VariantOpt,
    kind: str = KindOpt, correct: bool = CorrectOpt, status: str = StatusOpt,
    search: str = typer.Option(None, "--search", help="Substring of the question or completion."),
    limit: int = typer.Option(20, "--limit", min=1, help="How many rows."),
    json_out: bool = JsonOption,
) -> None:
    """List traces, newest first."""
    with open_store(db, create=False) as store:
        rows = list(store.traces(**_filters(run, dataset, variant, kind, correct, status), search=search,
                                 limit=limit))
    if json_out:
        print_json(rows)
        return
    table = Table(title=f"traces ({len(rows)} shown)", show_lines=False)
    table.caption = "runs: `vgt traces runs`; one trace in full: `vgt traces show ID`"
    for col in ("id", "data · variant", "question", "answer", "gold", "ok", "#g", "backend · model", "grounder"):
        if col == "question":
            table.add_column(col, overflow="fold", ratio=3, min_width=20)
        else:
            table.add_column(col, overflow="fold", ratio=1 if "·" in col else None)
    for r in rows:
        data = "/".join(p for p in dict.fromkeys((r["dataset"], r["split"])) if p)
        table.add_row(safe_text(r["id"][:8]), safe_text(f"{data} · {r['variant']}"), safe_text(r["question"]),
                      safe_text(r["answer"] or ""), safe_text(r["gold_answer"] or ""), _mark(r["correct"]),
                      str(r["n_groundings"]), safe_text(f"{r['backend'] or ''} · {r['model'] or ''}"),
                      safe_text(r["grounder"] or ""))
    console.print(table)


@app.command("show")
def show(
    trace_id: str = typer.Argument(..., help="Trace id (or a unique prefix of 4+ characters)."),
    db: Path = DbOption,
    png: Path = typer.Option(None, "--png", help="Write an annotated picture of the groundings here."),
    json_out: bool = JsonOption,
) -> None:
    """Show one trace: its messages, the thought with groundings highlighted, answer vs gold."""
    with open_store(db, create=False) as store:
        row = store.trace(trace_id)
    if row is None:
        usage_error(f"no trace with id {trace_id!r} (ids are listed by `vgt traces list`)")
    if png is not None:
        write_trace_png(row, png)
    if json_out:
        print_json(row)
        return
    head = (f"[bold]{safe_text(row['question'])}[/]\n" + safe_text(
        f"run {row['run_name']} · {row['dataset']}/{row['split']} · variant {row['variant']} · status "
        f"{row['status']}\nbackend {row['backend']} · model {row['model']} · grounder {row['grounder']}"))
    console.print(Panel(head, title=f"trace {safe_text(row['id'])}"))
    for message in row["messages"]:
        content = message.get("content")
        text = content if isinstance(content, str) else " ".join(
            p.get("text") or f"<{p.get('type')}>" for p in content or [])
        console.print(Panel(highlight_thought(text), title=safe_text(message.get("role", "?")), title_align="left"))
    if not row["messages"] and row["completion"]:
        console.print(Panel(highlight_thought(row["completion"]), title="completion", title_align="left"))
    verdict = _mark(row["correct"])
    console.print(f"answer [bold]{safe_text(row['answer'])}[/] ({safe_text(row['answer_source'])}) · gold "
                  f"[bold]{safe_text(row['gold_answer'])}[/] "
                  f"{verdict} · {row['n_groundings']} groundings · verified {row['verified_fraction']}")
    if row["reason"] or row["error"]:
        console.print(f"[yellow]reason:[/] {safe_text(row['reason'] or '')} [red]{safe_text(row['error'] or '')}[/]")
    if png is not None:
        console.print(f"annotated picture: {safe_text(png)}")


@app.command("stats")
def stats(db: Path = DbOption, json_out: bool = JsonOption) -> None:
    """Totals and accuracy by run, dataset and variant."""
    with open_store(db, create=False) as store:
        data = store.stats()
    if json_out:
        print_json(data)
        return
    totals = " · ".join(f"{v} {k}" for k, v in data["totals"].items())
    console.print(f"[bold]{safe_text(data['path'])}[/] (schema v{data['schema_version']}, "
                  f"{data['size_bytes'] / 1e6:.2f} MB)")
    console.print(totals)
    for group in ("by_run", "by_dataset", "by_variant"):
        if not data[group]:
            continue
        table = Table(title=group.replace("_", " "))
        for col in ("key", "traces", "ok", "rejected", "errors", "accuracy", "groundings/trace", "verified"):
            table.add_column(col, justify="left" if col == "key" else "right")
        for r in data[group]:
            acc = "" if r["accuracy"] is None else f"{100 * r['accuracy']:.1f}%"
            ver = "" if r["verified_fraction"] is None else f"{100 * r['verified_fraction']:.1f}%"
            table.add_row(safe_text(r["key"]), str(r["traces"]), str(r["ok"]), str(r["rejected"]), str(r["errors"]),
                          acc, f"{r['groundings_per_trace'] or 0:.2f}", ver)
        console.print(table)


@app.command("runs")
def runs(db: Path = DbOption, kind: str = typer.Option(None, "--kind", help="ask | synth | eval | train"),
         json_out: bool = JsonOption) -> None:
    """List runs, newest first: what ran, with which backend, model and grounder, and how it ended."""
    with open_store(db, create=False) as store:
        rows = store.runs(kind)
    if json_out:
        print_json(rows)
        return
    table = Table(title=f"runs ({len(rows)})")
    for col in ("id", "kind", "status", "backend", "model", "grounder", "traces", "correct"):
        table.add_column(col)
    for r in rows:
        table.add_row(*(safe_text(r[k] or "") for k in ("id", "kind", "status", "backend", "model", "grounder")),
                      str(r["n_traces"]), str(r["n_correct"] or 0))
    console.print(table)


@app.command("export")
def export(
    out: Path = typer.Option(..., "--out", "-o", help="JSONL file, or a directory for --format hf."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl | hf (datasets.save_to_disk, TRL messages)"),
    db: Path = DbOption, run: str = RunOpt, dataset: str = DatasetOpt, variant: str = VariantOpt,
    kind: str = KindOpt, correct: bool = CorrectOpt, status: str = StatusOpt, json_out: bool = JsonOption,
) -> None:
    """Export traces as JSONL, or as a Hugging Face dataset in TRL's conversational format."""
    if fmt not in ("jsonl", "hf"):
        usage_error(f"--format must be jsonl or hf, not {fmt!r}")
    filters = _filters(run, dataset, variant, kind, correct, status)
    with open_store(db, create=False) as store:
        if fmt == "jsonl":
            tmp = out.with_name(out.name + ".partial")
            try:
                with tmp.open("w") as f:
                    n = write_jsonl(store, f, **filters)
                tmp.replace(out)
            except OSError as e:
                tmp.unlink(missing_ok=True)
                usage_error(f"cannot write {out}: {e.strerror or e}")
        else:
            try:
                dataset_ = to_sft_dataset(store, **filters)
            except StoreError as e:
                usage_error(str(e))
            dataset_.save_to_disk(str(out))
            n = len(dataset_)
    if json_out:
        print_json({"out": str(out), "format": fmt, "traces": n})
    else:
        console.print(f"exported {n} traces to {safe_text(out)} ({fmt})")


@app.command("merge")
def merge(
    sources: list[Path] = typer.Argument(..., help="Trace stores to merge (e.g. shards from several machines)."),
    out: Path = typer.Option(..., "--out", "-o", help="The merged store (created or added to)."),
    json_out: bool = JsonOption,
) -> None:
    """Merge trace stores into one; ids are content-derived, so merging twice changes nothing."""
    opened = []
    for src in sources:
        if src.resolve() == out.resolve():
            usage_error(f"{src} is also the output store")
        try:
            opened.append(TraceStore.open(src, create=False, readonly=True))
        except StoreError as e:
            usage_error(str(e))
    target = open_store(out, create=True)
    counts = {}
    with target:
        for store in opened:
            with store:
                counts[str(store.path)] = target.copy_from(store)
    if json_out:
        print_json({"out": str(out), "merged": counts})
    else:
        for path, c in counts.items():
            console.print(f"merged {c['traces']} traces from {safe_text(path)}")
