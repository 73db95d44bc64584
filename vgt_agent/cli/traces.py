"""`vgt traces`: browse, inspect, summarise, check, export and merge the trace store."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.panel import Panel
from rich.table import Table

from vgt_agent.cli.common import console, print_json, usage_error, work_failed
from vgt_agent.cli.options import DbOption, JsonOption, open_store
from vgt_agent.cli.thought_view import highlight_thought
from vgt_agent.home import default_db_path
from vgt_agent.store.errors import StoreDamaged, StoreError, StoreLocked

if TYPE_CHECKING:  # each command loads the store modules it uses, so `--help` loads none
    from vgt_agent.store import TraceStore
from vgt_agent.terminal import safe_text
from vgt_agent.vocabulary import Grounding, StoredVariant, TraceStatus

app = typer.Typer(
    rich_markup_mode=None,  # click's plain help, as the root app (cli/main.py)
    help="Browse, inspect, summarise, check, export and merge stored traces.", no_args_is_help=True)

RunOpt = typer.Option(None, "--run", help="Run id or name.")
DatasetOpt = typer.Option(None, "--dataset", help="Dataset name, e.g. world-tally.")
VariantOpt = typer.Option(None, "--variant", help="Only traces of this form of thought (candidate: synthesis's "
                                                   "teacher candidates).")
GroundingOpt = typer.Option(None, "--grounding", help="Only traces with point or box groundings.")
CorrectOpt = typer.Option(None, "--correct/--incorrect", help="Only correct (or incorrect) answers.")
StatusOpt = typer.Option(None, "--status", help="Only traces that ended so.")


def _filters(run, dataset, variant, grounding, correct, status) -> dict:
    return {"run": run, "dataset": dataset, "variant": variant, "kind": grounding, "correct": correct,
            "status": status}


QUICK_CHECK_MAX_BYTES = 256_000_000  # read commands quick-check stores up to this size first (~1 s)


@contextlib.contextmanager
def _reading(db: Path | None, *, verify: bool = False) -> Iterator[TraceStore]:
    """The store opened read-only for a read command. A damaged store is one line and exit 1, never a
    traceback or a partial answer: a store up to QUICK_CHECK_MAX_BYTES (any size with `verify`) is checked
    page by page first, and an SQLite error met while reading ends the command the same way."""
    from vgt_agent.store.trace_store import damaged, is_damage

    store = open_store(db, create=False)
    with store:
        try:
            if verify or store.path.stat().st_size <= QUICK_CHECK_MAX_BYTES:
                store.verify()
            yield store
        except StoreDamaged as e:
            work_failed(str(e))
        except sqlite3.DatabaseError as e:
            work_failed(str(damaged(store.path, e)) if is_damage(e) else f"cannot read trace store {store.path}: {e}")


def _mark(value: bool | None) -> str:
    return {True: "[green]✓[/]", False: "[red]✗[/]", None: "[dim]–[/]"}[value]


@app.command("list")
def list_traces(
    db: Path = DbOption, run: str = RunOpt, dataset: str = DatasetOpt, variant: StoredVariant | None = VariantOpt,
    grounding: Grounding | None = GroundingOpt, correct: bool = CorrectOpt, status: TraceStatus | None = StatusOpt,
    search: str = typer.Option(None, "--search", help="Substring of the question or completion."),
    limit: int = typer.Option(20, "--limit", min=1, help="How many rows."),
    json_out: bool = JsonOption,
) -> None:
    """List traces, newest first."""
    with _reading(db) as store:
        rows = list(store.traces(**_filters(run, dataset, variant, grounding, correct, status), search=search,
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
    with _reading(db) as store:
        row = store.trace(trace_id)
    if row is None:
        usage_error(f"no trace with id {trace_id!r} (ids are listed by `vgt traces list`)")
    if png is not None:
        from vgt_agent.cli.trace_png import write_trace_png

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
    with _reading(db) as store:
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
    with _reading(db) as store:
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


@app.command("check")
def check(db: Path = DbOption, json_out: bool = JsonOption) -> None:
    """Check a store without writing to it: SQLite's integrity check of every page, vgt's schema, and vgt's
    invariants (no orphaned or stale rows). Exit 1 listing what is wrong."""
    from vgt_agent.store.check import check_store

    path = db or default_db_path()
    try:
        report = check_store(path)
    except StoreError as e:
        usage_error(str(e))
    if json_out:
        print_json(report)
    elif report["ok"]:
        console.print(f"ok: {safe_text(path)} ({report['traces']} traces; pages, schema and rows sound)")
    else:
        for problem in report["problems"]:
            console.print(f"- {safe_text(problem)}")
    if not report["ok"]:
        problems = report["problems"]
        work_failed(f"trace store {path} failed its check ({len(problems)} problem(s)): {problems[0]}")


def _is_dataset_export(path: Path) -> bool:
    """A directory `datasets.save_to_disk` wrote (what `--force` may replace)."""
    return (path / "dataset_info.json").is_file() and (path / "state.json").is_file()


def _export_staging(out: Path, fmt: str, force: bool) -> Path:
    """Where the export is written before it takes `out`'s place (beside it, so the final rename is atomic);
    exit 2 with nothing written when `out` is someone's file or non-empty directory, or cannot be written."""
    if out.is_symlink() or out.exists():
        if fmt == "jsonl" and out.is_dir():
            usage_error(f"{out} is a directory; --format jsonl writes one file")
        if fmt == "hf" and not out.is_dir():
            usage_error(f"{out} exists and is not a directory; --format hf writes a dataset directory")
        if fmt == "jsonl" and not force:
            usage_error(f"{out} exists; pass --force to replace it")
        if fmt == "hf" and any(out.iterdir()) and not (force and _is_dataset_export(out)):
            what = "an earlier export (pass --force to replace it)" if _is_dataset_export(out) else \
                "not an earlier dataset export: vgt does not write beside other files"
            usage_error(f"{out} is a non-empty directory, {what}")
    if not out.parent.is_dir():
        usage_error(f"cannot write {out}: directory {out.parent} does not exist")
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    try:
        if fmt == "jsonl":
            staging.open("x").close()
        else:
            staging.mkdir()
    except OSError as e:
        usage_error(f"cannot write {out}: {e.strerror or e}")
    return staging


def _discard(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _put_in_place(staging: Path, out: Path) -> None:
    """Move the finished export to `out`, replacing what `_export_staging` allowed (a file, an empty directory
    or an earlier dataset export)."""
    if out.is_dir() and not out.is_symlink():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
        staging.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.replace(out)


@app.command("export")
def export(
    out: Path = typer.Option(..., "--out", "-o", help="JSONL file, or a directory for --format hf."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl | hf (datasets.save_to_disk, TRL messages)"),
    db: Path = DbOption, run: str = RunOpt, dataset: str = DatasetOpt, variant: StoredVariant | None = VariantOpt,
    grounding: Grounding | None = GroundingOpt, correct: bool = CorrectOpt, status: TraceStatus | None = StatusOpt,
    force: bool = typer.Option(False, "--force", help="Replace an existing JSONL file or an earlier hf export."),
    json_out: bool = JsonOption,
) -> None:
    """Export traces as JSONL, or as a Hugging Face dataset in TRL's conversational format.

    The export is written beside OUT and renamed into place when complete: an existing file is replaced only
    with --force, a non-empty directory only when it is an earlier export and --force is given."""
    from vgt_agent.store.export import to_sft_dataset, write_jsonl

    if fmt not in ("jsonl", "hf"):
        usage_error(f"--format must be jsonl or hf, not {fmt!r}")
    filters = _filters(run, dataset, variant, grounding, correct, status)
    staging = _export_staging(out, fmt, force)
    try:
        with _reading(db, verify=True) as store:
            if fmt == "jsonl":
                with staging.open("w") as f:
                    n = write_jsonl(store, f, **filters)
            else:
                try:
                    dataset_ = to_sft_dataset(store, **filters)
                except StoreError as e:
                    usage_error(str(e))
                dataset_.save_to_disk(str(staging))
                n = len(dataset_)
        _put_in_place(staging, out)
    except OSError as e:
        usage_error(f"cannot write {out}: {e.strerror or e}")
    finally:
        if staging.exists():
            _discard(staging)
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
    """Merge trace stores into one. A trace already there with the same content is skipped; one whose id is
    there with different content (two shards that answered the same sample differently) replaces it whole,
    children included, and is counted as a conflict: the stores read as if written into one, in order."""
    from vgt_agent.store import TraceStore
    from vgt_agent.store.trace_store import damaged, is_damage

    opened = []
    for src in sources:
        if src.resolve() == out.resolve():
            usage_error(f"{src} is also the output store")
        try:
            opened.append(TraceStore.open(src, create=False, readonly=True))
        except StoreDamaged as e:
            work_failed(str(e))
        except StoreError as e:
            usage_error(str(e))
    target = open_store(out, create=True)
    counts = {}
    with target:
        for store in opened:
            with store:
                try:
                    store.verify()
                    counts[str(store.path)] = target.copy_from(store)
                except (StoreLocked, StoreDamaged) as e:
                    work_failed(str(e))
                except sqlite3.DatabaseError as e:
                    work_failed(str(damaged(store.path, e)) if is_damage(e) else f"cannot merge {store.path}: {e}")
    if json_out:
        print_json({"out": str(out), "merged": counts})
    else:
        for path, c in counts.items():
            console.print(f"merged {c['traces']} traces from {safe_text(path)}: {c['new']} new, {c['identical']} "
                          f"already there, {c['conflicts']} conflicts (same id, different content: replaced)")
