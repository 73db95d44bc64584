"""`vgt eval`: accuracy and pass@N per benchmark (one store run per eval), and `vgt eval report`: the table."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from vgt_agent.cli.common import command_line, console, interrupted, print_json, quiet_loading, usage_error, work_failed
from vgt_agent.cli.coords_option import CoordsOption, convention_name
from vgt_agent.cli.device_options import DeviceOption, DtypeOption, placement_or_exit
from vgt_agent.cli.options import DbOption, JsonOption, open_store
from vgt_agent.terminal import safe_text
from vgt_agent.vocabulary import BackendName, CoordsName, GrounderName, Grounding, Variant

app = typer.Typer(
    rich_markup_mode=None,  # click's plain help, as the root app (cli/main.py)
    help="Evaluate a model on benchmarks (Acc over N samples, pass@N, grounding); report tables.")


@app.callback(invoke_without_command=True)
def evaluate(
    ctx: typer.Context,
    benchmark: str = typer.Option(None, "--benchmark", help="NAME[,NAME...]: registry names (world-tally, "
                                                           "tallybench, ...) or world split folders."),
    model: str = typer.Option(None, "--model", envvar="VGT_MODEL", help="Model name (openai) or local path."),
    backend: BackendName | None = typer.Option(None, "--backend", help="default: transformers for an existing "
                                                                      "local --model, else openai."),
    base_url: str = typer.Option(None, "--base-url", envvar="VGT_BASE_URL", help="OpenAI-compatible server URL."),
    variant: Variant = typer.Option("point", "--variant", help="The form of thought asked for: the answer alone, "
                                    "plain thinking, thinking grounded with points or boxes the model writes, or the "
                                    "agent (the ask graph calls --grounder)."),
    grounding: Grounding | None = typer.Option(None, "--grounding", help="--variant agent: the tool replies as a "
                                               "point or a box per instance [default: point]."),
    grounder: GrounderName = typer.Option("world", "--grounder", help="--variant agent: the grounding tool."),
    sam3_checkpoint: str = typer.Option(None, "--sam3-checkpoint", envvar="VGT_SAM3"),
    samples: int = typer.Option(4, "--samples", min=1, help="Generations per question (paper: 4)."),
    temperature: float = typer.Option(1.0, "--temperature", min=0.0, help="Sampling temperature (paper: 1.0)."),
    limit: int = typer.Option(None, "--limit", min=1, help="At most this many questions per benchmark."),
    max_tokens: int = typer.Option(1024, "--max-tokens", min=1),
    concurrency: int = typer.Option(1, "--concurrency", min=1, help="Requests in flight (size it for the server)."),
    timeout: float = typer.Option(None, "--timeout", envvar="VGT_TIMEOUT", min=0.001,
                                  help="Seconds per server request (connect: at most 5) [default: 300]."),
    label: str = typer.Option(None, "--label", help="Row name in the report (default: from the model's training)."),
    resume_run: str = typer.Option(None, "--resume-run", help="Continue this interrupted eval run (its id)."),
    coords: CoordsName | None = CoordsOption,
    device: str = DeviceOption,
    dtype: str = DtypeOption,
    db: Path = DbOption,
    json_out: bool = JsonOption,
) -> None:
    """Evaluate a model: per benchmark, Acc over N samples, pass@N and grounding scores, logged as a run."""
    if ctx.invoked_subcommand is not None:
        return
    from vgt_agent.backends.coord_boundary import with_convention
    from vgt_agent.training.eval import (
        EvalError,
        EvalSpec,
        default_label,
        eval_mode,
        load_benchmarks,
        run_config,
        run_eval,
    )
    from vgt_agent.training.model import read_provenance

    if not benchmark:
        usage_error("--benchmark is required, e.g. --benchmark world-tally,world-vsr (or `vgt eval report`)")
    try:
        mode, agent = eval_mode(variant, grounding)
    except EvalError as e:
        usage_error(str(e))
    names = tuple(dict.fromkeys(n.strip() for n in benchmark.split(",") if n.strip()))
    kind = backend or ("transformers" if model and Path(model).is_dir() else "openai")
    in_process = kind == "transformers" or (agent and grounder == "sam3")
    placement = placement_or_exit(device, dtype) if in_process else None
    spec = EvalSpec(benchmarks=names, mode=mode, samples=samples, temperature=temperature, limit=limit,
                    max_tokens=max_tokens, agent=agent, grounder=grounder, sam3_checkpoint=sam3_checkpoint,
                    workers=concurrency, placement=placement)
    try:
        benches = load_benchmarks(names, limit)
    except EvalError as e:
        usage_error(str(e))
    vlm = with_convention(_backend(kind, model, base_url, placement, timeout), coords)
    provenance = read_provenance(model) if model and Path(model).exists() else None
    row, stage = default_label(mode, agent, provenance)
    store = open_store(db, create=True)
    if resume_run and (store.run(resume_run) or {}).get("kind") != "eval":
        usage_error(f"--resume-run {resume_run!r} is not an eval run in {store.path}")
    config = {**run_config(spec, label or row, stage, provenance), "coords": convention_name(vlm)}
    run_id = store.start_run("eval", run_id=resume_run, name=label or row, command=command_line(), backend=vlm.name,
                             model=vlm.model, grounder=grounder if agent else None, config=config)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=console, transient=json_out, disable=json_out) as progress:
            tasks: dict[str, int] = {}

            def on_progress(name: str, done: int, total: int) -> None:
                if name not in tasks:
                    tasks[name] = progress.add_task(name, total=total)
                progress.update(tasks[name], completed=done)

            metrics = run_eval(store, vlm, spec, benches, run_id, progress=on_progress)
    except KeyboardInterrupt:
        store.end_run(run_id, status="interrupted")
        store.close()
        interrupted(f"continue with --resume-run {run_id}")
    except Exception as e:  # noqa: BLE001 - the run is marked failed, the command ends with one line
        store.end_run(run_id, status="failed", error=str(e)[:500])
        work_failed(f"eval failed: {type(e).__name__}: {' '.join(str(e).split())[:300]}")
    store.end_run(run_id, metrics=metrics)
    store.close()
    result = {"run_id": run_id, "label": config["label"], "backend": vlm.name, "model": vlm.model,
              "grounder": grounder if agent else None, "device": placement.label if placement else None,
              "variant": variant, "mode": mode, "agent": agent, "samples": samples, "temperature": temperature,
              "coords": convention_name(vlm), **metrics}
    if json_out:
        print_json(result)
        return
    how = f"{variant}{f' · {mode} replies · grounder {grounder}' if agent else ''}"
    where = f" · device {placement.label}" if placement else ""
    table = Table(title=safe_text(f"{config['label']} · {vlm.name} · {vlm.model} · {how}{where} · run {run_id}"))
    for col in ("benchmark", "group", "questions", "acc", f"pass@{samples}", "grounding", "boxed", "truncated"):
        table.add_column(col, justify="left" if col in ("benchmark", "group") else "right")
    for name, m in metrics["benchmarks"].items():
        table.add_row(safe_text(name), m["group"], str(m["samples"]), _pct(m["acc"]), _pct(m["pass@k"]),
                      _pct(m["grounding"]), _pct(m["boxed_rate"]), _pct(m["truncated_rate"]))
    console.print(table)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _backend(kind: str, model: str | None, base_url: str | None, placement=None, timeout: float | None = None):
    from vgt_agent.backends import BackendError, make_backend

    options: dict = {"base_url": base_url} if kind == "openai" and base_url else {}
    options["timeout_s"] = timeout
    if kind == "transformers" and placement is not None:
        options.update(placement.as_dict())
    if kind == "transformers":
        quiet_loading(transformers_now=True)
    try:
        vlm = make_backend(kind, model, **options)
    except BackendError as e:
        usage_error(str(e))
    try:  # a server is asked for its model (or pinged) before anything is written: no answer is exit 1
        openai_backend = sys.modules.get("vgt_agent.backends.openai_backend")  # not loaded: no OpenAIBackend
        if openai_backend is not None and isinstance(vlm, openai_backend.OpenAIBackend) and model:
            vlm.ping()
        _ = vlm.model
    except BackendError as e:
        work_failed(str(e))
    return vlm


@app.command("report")
def report(
    runs: list[str] = typer.Argument(None, help="Eval run ids or names (default: every finished eval run)."),
    db: Path = DbOption,
    csv_out: bool = typer.Option(False, "--csv", help="Print CSV instead of the table."),
    json_out: bool = JsonOption,
    png: Path = typer.Option(None, "--png", help="Also write a bar chart PNG here."),
) -> None:
    """The paper's table: configurations x (counting, spatial) benchmarks, Acc / pass@N, group averages."""
    from vgt_agent.training.report import ReportError, bar_chart, build_report, report_csv, report_json, rich_table

    if csv_out and json_out:
        usage_error("choose one of --csv and --json")
    with open_store(db, create=False) as store:
        try:
            table = build_report(store, runs or ())
        except ReportError as e:
            usage_error(str(e))
    if png is not None:
        try:
            bar_chart(table, png)
        except OSError as e:
            work_failed(f"cannot write {png}: {e.strerror or e}")
    if json_out:
        print_json(report_json(table))
    elif csv_out:
        sys.stdout.write(report_csv(table))
    else:
        console.print(rich_table(table))
        if png is not None:
            console.print(f"bar chart: {png}")
