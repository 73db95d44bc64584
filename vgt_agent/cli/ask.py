"""`vgt ask IMAGE QUESTION`: run the grounded-reasoning agent once, show the thought, log the trace."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.panel import Panel

from vgt_agent.backends import BackendError, OpenAIBackend, make_backend
from vgt_agent.cli.common import EXIT_FAILED, console, err_console, print_json, usage_error
from vgt_agent.cli.device_options import DeviceOption, DtypeOption, placement_or_exit
from vgt_agent.cli.options import DbOption, JsonOption, open_store
from vgt_agent.cli.thought_view import highlight_thought
from vgt_agent.cli.trace_png import write_trace_png
from vgt_agent.datasets.sample import Sample
from vgt_agent.graphs.ask import AskContext, AskLimits, completion_text, run_ask
from vgt_agent.grounders.factory import GROUNDERS, make_grounder
from vgt_agent.images import load_image
from vgt_agent.store import ImageRecord, SampleRecord

ANSWER_TYPES = ("count", "yes_no", "choice", "text")


def world_sample_for(image_path: Path, question: str) -> Sample | None:
    """The world sample this image and question come from, when the image sits in a world split folder."""
    from vgt_agent.world.storage import is_split_dir, read_rows, row_to_sample

    split_dir = image_path.resolve().parent.parent
    if not is_split_dir(split_dir):
        return None
    name = f"{image_path.parent.name}/{image_path.name}"
    for row in read_rows(split_dir):
        if row["file_name"] == name and row["question"].strip().lower() == question.strip().lower():
            return row_to_sample(row, split_dir)
    return None


def ask(
    image: Path = typer.Argument(..., help="The image to ask about."),
    question: str = typer.Argument(..., help="The question, e.g. 'How many red circles are there?'."),
    backend: str = typer.Option(None, "--backend", help="openai (any OpenAI-compatible server) | transformers "
                                "(default: openai when --model/--base-url is given, else the shipped vgt-tiny)"),
    model: str = typer.Option(None, "--model", envvar="VGT_MODEL", help="Model name (openai) or local path."),
    base_url: str = typer.Option(None, "--base-url", envvar="VGT_BASE_URL", help="OpenAI-compatible server URL."),
    grounder: str = typer.Option("world", "--grounder", help="world | sam3 | gold"),
    sam3_checkpoint: str = typer.Option(None, "--sam3-checkpoint", envvar="VGT_SAM3",
                                        help="SAM3 checkpoint dir or cached hub id (default facebook/sam3)."),
    kind: str = typer.Option("point", "--kind", help="Tool results as point or box groundings."),
    protocol: str = typer.Option("text", "--protocol", help="text (<ground> tags) | function (tool calls)"),
    gold: str = typer.Option(None, "--gold", help="Gold answer, to check the model's (world images: automatic)."),
    answer_type: str = typer.Option("count", "--answer-type", help="count | yes_no | choice | text (with --gold)"),
    max_turns: int = typer.Option(8, "--max-turns", min=1),
    max_tool_calls: int = typer.Option(8, "--max-tool-calls", min=0),
    max_tokens: int = typer.Option(1024, "--max-tokens", min=1),
    temperature: float = typer.Option(0.0, "--temperature", min=0.0),
    save: Path = typer.Option(None, "--save", help="Write the annotated picture (PNG) here."),
    device: str = DeviceOption,
    dtype: str = DtypeOption,
    db: Path = DbOption,
    json_out: bool = JsonOption,
) -> None:
    """Ask a question about an image: the model reasons, calls the grounder, answers; the trace is logged."""
    if not question.strip():
        usage_error("the question is empty")
    for value, allowed, flag in ((grounder, GROUNDERS, "--grounder"), (kind, ("point", "box"), "--kind"),
                                 (protocol, ("text", "function"), "--protocol"),
                                 (answer_type, ANSWER_TYPES, "--answer-type")):
        if value not in allowed:
            usage_error(f"{flag} must be one of {', '.join(allowed)}, not {value!r}")
    try:
        pixels = load_image(image)
        image_record = ImageRecord.from_path(image)
    except ValueError as e:
        usage_error(str(e))
    world = world_sample_for(image, question)
    if world is not None and gold is None:
        sample = SampleRecord.from_sample(world, image_record)
    else:
        sample = SampleRecord("adhoc", "", f"{image_record.hash}:{question.strip()}", question.strip(), image_record,
                              gold, answer_type if gold is not None else None)
    options: dict[str, str] = {}
    if backend is None and not model and not base_url:
        # a fresh install: the world policy vgt trained itself, on the transformers backend
        from vgt_agent.tiny.recipe import NAME as TINY_NAME
        from vgt_agent.tiny.recipe import shipped_weights

        weights = shipped_weights()
        if weights is None:
            usage_error("no model given and the shipped vgt-tiny weights are missing; pass --backend/--model")
        backend, model, options = "transformers", str(weights), {"model_name": TINY_NAME}
    backend = backend or "openai"
    if backend == "openai" and base_url:
        options["base_url"] = base_url
    # where the in-process models (transformers VLM, SAM3) run; nothing to place for a server and the world
    placement = placement_or_exit(device, dtype) if backend == "transformers" or grounder == "sam3" else None
    if placement is not None and backend == "transformers":
        options.update(placement.as_dict())
    try:
        ground_tool = make_grounder(grounder, sample=world, sam3_checkpoint=sam3_checkpoint, placement=placement)
        vlm = make_backend(backend, model, **options)
        if protocol == "function" and not vlm.supports_function_calling:
            usage_error(f"the {backend} backend has no function calling; use --protocol text")
        if isinstance(vlm, OpenAIBackend) and model:
            vlm.ping()  # an unreachable server is bad input: fail before a run is written (without --model,
            # asking the server for its model just below is that check)
        model_name = vlm.model
    except (ValueError, FileNotFoundError, BackendError) as e:
        usage_error(str(e))

    store = open_store(db, create=True)
    run_id = store.start_run("ask", command=" ".join(sys.argv), backend=vlm.name, model=model_name,
                             grounder=ground_tool.name, config={"kind": kind, "protocol": protocol,
                                                                **(placement.as_dict() if placement else {})})
    streaming = not json_out and sys.stdout.isatty()

    def on_event(event: str, payload: object) -> None:
        if event == "token" and streaming:
            console.print(payload, end="", markup=False, highlight=False)
        elif event == "tool" and streaming:
            console.print(f"\n[magenta]tool ›[/] {payload}", highlight=False)

    ctx = AskContext(image=pixels, sample=sample, backend=vlm, grounder=ground_tool, kind=kind, protocol=protocol,
                     limits=AskLimits(max_turns, max_tool_calls, max_tokens, temperature), store=store, run_id=run_id,
                     on_event=on_event)
    try:
        state = run_ask(ctx)
    except KeyboardInterrupt:
        store.end_run(run_id, status="interrupted")
        raise
    failed = bool(state.get("error"))
    store.end_run(run_id, status="failed" if failed else "done", error=state.get("error"),
                  metrics={"correct": state.get("correct"), "verified_fraction": state.get("verified_fraction")})
    row = store.trace(state["trace_id"])
    store.close()
    if save is not None and row is not None:
        write_trace_png(row, save)
    result = {
        "trace_id": state["trace_id"], "run_id": run_id, "answer": state.get("answer"), "gold": sample.gold_answer,
        "correct": state.get("correct"), "thought": completion_text(state.get("chunks", [])),
        "groundings": state.get("groundings", []), "verified_fraction": state.get("verified_fraction"),
        "stop_reason": state.get("stop_reason"), "error": state.get("error"), "backend": vlm.name,
        "model": model_name, "grounder": ground_tool.name, "turns": state.get("turns", 0),
        "tool_calls": state.get("tool_calls", 0), "image": str(image), "saved": str(save) if save else None,
        "device": placement.label if placement else None,
    }
    if json_out:
        print_json(result)
    else:
        _print_result(result, streaming)
    if failed:
        err_console.print(f"error: {state['error']}", markup=False)
        raise typer.Exit(EXIT_FAILED)


def _print_result(r: dict, streamed: bool) -> None:
    if streamed:
        console.print()
    console.print(Panel(highlight_thought(r["thought"]), title="grounded thought", title_align="left"))
    verdict = {True: "[green]✓ correct[/]", False: "[red]✗ wrong[/]", None: ""}[r["correct"]]
    gold = f" · gold {r['gold']}" if r["gold"] is not None else ""
    console.print(f"[bold]answer:[/] {r['answer']}{gold} {verdict}")
    model_groundings = [g for g in r["groundings"] if g["source"] == "model"]
    if model_groundings:
        ok = sum(bool(g.get("verified")) for g in model_groundings)
        console.print(f"self-written groundings verified: {ok}/{len(model_groundings)}")
    device = f" · device {r['device']}" if r["device"] else ""
    console.print(f"[dim]backend {r['backend']} · model {r['model']} · grounder {r['grounder']}{device} · "
                  f"{r['turns']} turns · {r['tool_calls']} tool calls · stop: {r['stop_reason']} · "
                  f"trace {r['trace_id']}[/]")
    if r["saved"]:
        console.print(f"annotated picture: {r['saved']}")
