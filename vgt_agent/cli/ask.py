"""`vgt ask IMAGE QUESTION`: run the grounded-reasoning agent once, show the thought, log the trace."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from vgt_agent.cli.common import command_line, console, interrupted, print_json, quiet_loading, usage_error, work_failed
from vgt_agent.cli.coords_option import CoordsOption, convention_name
from vgt_agent.cli.device_options import DeviceOption, DtypeOption, placement_or_exit
from vgt_agent.cli.options import DbOption, JsonOption, open_store
from vgt_agent.terminal import plain_text, safe_text
from vgt_agent.vocabulary import AnswerType, BackendName, CoordsName, GrounderName, Grounding, Protocol

if TYPE_CHECKING:  # the agent, its backends and the store load when a question is asked, not for `--help`
    from vgt_agent.backends import VLMBackend
    from vgt_agent.cli.ask_outcome import Outcome
    from vgt_agent.graphs.ask import AskLimits
    from vgt_agent.sample import Sample
    from vgt_agent.store import SampleRecord, TraceStore

MAX_QUESTION_CHARS = 4000


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
    backend: BackendName | None = typer.Option(None, "--backend", help="openai (any OpenAI-compatible server) | "
                                               "transformers (default: openai when --model/--base-url is given, "
                                               "else the shipped vgt-tiny in process)"),
    model: str = typer.Option(None, "--model", envvar="VGT_MODEL", help="Model name (openai) or local path."),
    base_url: str = typer.Option(None, "--base-url", envvar="VGT_BASE_URL", help="OpenAI-compatible server URL."),
    grounder: GrounderName = typer.Option("world", "--grounder", help="The grounding tool (gold and gold-shuffled: "
                                          "a world image's own masks)."),
    sam3_checkpoint: str = typer.Option(None, "--sam3-checkpoint", envvar="VGT_SAM3",
                                        help="SAM3 checkpoint dir or cached hub id (default facebook/sam3)."),
    grounding: Grounding = typer.Option("point", "--grounding", help="The tool replies as a point or a box per "
                                        "instance."),
    protocol: Protocol = typer.Option("text", "--protocol", help="text (<ground> tags) | function (tool calls)"),
    gold: str = typer.Option(None, "--gold", help="Gold answer, to check the model's (world images: automatic)."),
    answer_type: AnswerType = typer.Option("count", "--answer-type", help="The kind of --gold answer."),
    max_turns: int = typer.Option(8, "--max-turns", min=1),
    max_tool_calls: int = typer.Option(8, "--max-tool-calls", min=0),
    max_tokens: int = typer.Option(1024, "--max-tokens", min=1),
    max_question_chars: int = typer.Option(MAX_QUESTION_CHARS, "--max-question-chars", min=1,
                                           help="Longer questions are refused (exit 2) before any model runs."),
    temperature: float = typer.Option(0.0, "--temperature", min=0.0),
    timeout: float = typer.Option(None, "--timeout", envvar="VGT_TIMEOUT", min=0.001,
                                  help="Seconds per server request (connect: at most 5) [default: 60]."),
    save: Path = typer.Option(None, "--save", help="Write the annotated picture (PNG) here."),
    coords: CoordsName | None = CoordsOption,
    device: str = DeviceOption,
    dtype: str = DtypeOption,
    db: Path = DbOption,
    json_out: bool = JsonOption,
) -> None:
    """Ask a question about an image: the model reasons, calls the grounder, answers; the trace is logged.

    Exit 0 with an answer; 1 when there is none (the run stopped first), the question or image is outside
    what the embedded world models understand (refused), or the model failed; 2 for bad input."""
    from vgt_agent.answers import normalise_answer
    from vgt_agent.backends import BackendError, make_backend
    from vgt_agent.backends.coord_boundary import with_convention
    from vgt_agent.cli.ask_outcome import run_outcome
    from vgt_agent.graphs.ask import AskLimits, chunks_text
    from vgt_agent.grounders.factory import make_grounder
    from vgt_agent.images import load_image
    from vgt_agent.store import ImageRecord, SampleRecord

    if save is not None:  # the picture's drawing modules load only when a picture is asked for
        from vgt_agent.cli.trace_png import picture_path_problem, write_trace_png
    question = question.strip()
    if not question:
        usage_error("the question is empty")
    if len(question) > max_question_chars:
        usage_error(f"the question is {len(question):,} characters; the limit is {max_question_chars:,} "
                    "(--max-question-chars)")
    if save is not None and (problem := picture_path_problem(save)):
        usage_error(problem)  # before the run, so bad input writes nothing
    if gold is not None and normalise_answer(gold, answer_type) is None:
        usage_error(f"--gold {gold!r} is not a {answer_type} answer; pass --answer-type (count | yes_no | choice | "
                    "text)")
    try:
        pixels = load_image(image)
        image_record = ImageRecord.from_path(image)
    except ValueError as e:
        usage_error(str(e))
    world = world_sample_for(image, question)
    if world is not None and gold is None:
        sample = SampleRecord.from_sample(world, image_record)
    else:
        sample = SampleRecord("adhoc", "", f"{image_record.hash}:{question}", question, image_record,
                              gold, answer_type if gold is not None else None)
    options: dict[str, str] = {}
    embedded = backend is None and not model and not base_url
    if embedded:
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
    if backend == "transformers" or grounder == "sam3":
        quiet_loading(transformers_now=True)
    try:
        ground_tool = make_grounder(grounder, sample=world, sam3_checkpoint=sam3_checkpoint, placement=placement)
        vlm = make_backend(backend, model, timeout_s=timeout or _interactive_timeout(backend), **options)
        if protocol == "function" and not vlm.supports_function_calling:
            usage_error(f"the {backend} backend has no function calling; use --protocol text")
    except (ValueError, FileNotFoundError, BackendError) as e:
        usage_error(str(e))
    model_name = _reach(vlm, model)
    _check_context(vlm, question, max_tokens)
    vlm = with_convention(vlm, coords)
    refused = None
    if world is None and (embedded or grounder == "world"):
        refused = _out_of_scope(pixels, question, tiny=embedded, world_grounder=grounder == "world")

    store = open_store(db, create=True)
    run_id = store.start_run("ask", command=command_line(), backend=vlm.name, model=model_name,
                             grounder=ground_tool.name, config={"kind": grounding, "protocol": protocol,
                                                                "coords": convention_name(vlm),
                                                                **(placement.as_dict() if placement else {})})
    limits = AskLimits(max_turns, max_tool_calls, max_tokens, temperature)
    if refused is not None:
        trace_id = _store_refusal(store, run_id, sample, refused, vlm, model_name, ground_tool.name,
                                  {"protocol": protocol, "kind": grounding})
        state: dict = {"trace_id": trace_id}
        row = None
    else:
        state, row = _run(store, run_id, pixels, sample, vlm, ground_tool, grounding, protocol, limits, json_out)
    outcome = refused or run_outcome(state, limits)
    if save is not None and row is not None:
        write_trace_png(row, save)
    result = {
        "status": outcome.status, "reason": outcome.reason, "stop_reason": outcome.stop_reason,
        "trace_id": state["trace_id"], "run_id": run_id,
        "answer": state.get("answer") if outcome.status == "answered" else None, "gold": sample.gold_answer,
        "correct": state.get("correct"), "thought": chunks_text(state.get("chunks", [])),
        "groundings": state.get("groundings", []), "verified_fraction": state.get("verified_fraction"),
        "error": state.get("error"), "backend": vlm.name,
        "model": model_name, "grounder": ground_tool.name, "turns": state.get("turns", 0),
        "tool_calls": state.get("tool_calls", 0), "image": str(image),
        "saved": str(save) if save and row is not None else None,
        "device": placement.label if placement else None, "server_modes": state.get("server_modes"),
        "coords": convention_name(vlm),
    }
    if json_out:
        print_json(result)
    elif refused is None:
        _print_result(result, console.is_terminal)
    else:
        _print_footer(result)
    if outcome.status != "answered":
        work_failed(f"{outcome.status.replace('_', ' ')}: {outcome.reason}")


def _interactive_timeout(backend: str) -> float | None:
    """A server's per-request timeout when a person is waiting; an in-process model takes none (and so the
    openai client is not imported for it)."""
    if backend != "openai":
        return None
    from vgt_agent.backends.openai_backend import INTERACTIVE_TIMEOUT_S

    return INTERACTIVE_TIMEOUT_S


def _reach(vlm: VLMBackend, model: str | None) -> str:
    """The model's name; for a server, asked for it (or pinged) before anything is written. A server that does
    not answer is work that failed (exit 1), named by its URL."""
    from vgt_agent.backends import BackendError

    openai_backend = sys.modules.get("vgt_agent.backends.openai_backend")  # not loaded: vlm is no OpenAIBackend
    try:
        if openai_backend is not None and isinstance(vlm, openai_backend.OpenAIBackend) and model:
            vlm.ping()
        return vlm.model
    except BackendError as e:
        where = getattr(vlm, "display_url", None) or getattr(vlm, "base_url", "")
        message = str(e)
        work_failed(message if str(where) in message else f"{message} (server {where})")


def _check_context(vlm: VLMBackend, question: str, max_tokens: int) -> None:
    """A model that declares its context (the transformers backend) must fit the question and the answer
    budget in it; else exit 2 naming the limit, before the model runs."""
    limit, tokenizer = getattr(vlm, "context_tokens", None), getattr(vlm, "tokenizer", None)
    if not limit or tokenizer is None:
        return
    n = len(tokenizer(question, add_special_tokens=False)["input_ids"])
    if n + max_tokens > limit:
        usage_error(f"the question is {n} tokens and --max-tokens is {max_tokens}; model {vlm.model} reads at "
                    f"most {limit} tokens (prompt and answer together)")


def _out_of_scope(pixels, question: str, *, tiny: bool, world_grounder: bool) -> Outcome | None:
    """A refusal when the image is no shapes scene or the question names things the shapes world lacks."""
    from vgt_agent.cli.ask_outcome import refusal
    from vgt_agent.grounders.world_scope import image_scope
    from vgt_agent.world.scope import question_scope

    reason = image_scope(pixels) or question_scope(question)
    return refusal(reason, tiny=tiny, world_grounder=world_grounder) if reason else None


def _store_refusal(store: TraceStore, run_id: str, sample: SampleRecord, outcome: Outcome, vlm: VLMBackend,
                   model_name: str, grounder_name: str, meta: dict) -> str:
    """The refused question as a trace with no answer, and its run ended `refused`."""
    from vgt_agent.store import TraceRecord

    trace_id = store.put_trace(TraceRecord(run_id=run_id, sample=sample, variant="agent", status="refused",
                                           reason=outcome.reason, backend=vlm.name, model=model_name,
                                           grounder=grounder_name, meta=meta))
    store.end_run(run_id, status="refused", error=outcome.reason)
    store.close()
    return trace_id


def _run(store: TraceStore, run_id: str, pixels, sample: SampleRecord, vlm: VLMBackend, ground_tool, kind: str,
         protocol: str, limits: AskLimits, json_out: bool) -> tuple[dict, dict | None]:
    """The agent loop, streamed to a terminal; the run ends with the outcome's status (`interrupted` on
    Ctrl-C or SIGTERM, exit 130)."""
    from vgt_agent.cli.ask_outcome import run_outcome
    from vgt_agent.graphs.ask import AskContext, run_ask

    streaming = not json_out and console.is_terminal

    def on_event(event: str, payload: object) -> None:
        if event == "token" and streaming:
            console.print(plain_text(payload), end="", markup=False, highlight=False)
        elif event == "tool" and streaming:
            console.print(f"\n[magenta]tool ›[/] {safe_text(payload)}", highlight=False)

    ctx = AskContext(image=pixels, sample=sample, backend=vlm, grounder=ground_tool, kind=kind, protocol=protocol,
                     limits=limits, store=store, run_id=run_id, on_event=on_event)
    try:
        state = run_ask(ctx)
    except KeyboardInterrupt:
        store.end_run(run_id, status="interrupted")
        store.close()
        interrupted(f"run {run_id} is stored as interrupted")
    outcome = run_outcome(state, limits)
    store.end_run(run_id, status="done" if outcome.status == "answered" else outcome.status,
                  error=outcome.reason if outcome.status != "answered" else None,
                  metrics={"correct": state.get("correct"), "verified_fraction": state.get("verified_fraction"),
                           "server_modes": state.get("server_modes")})
    row = store.trace(state["trace_id"])
    store.close()
    return state, row


def _print_result(r: dict, streamed: bool) -> None:
    """The human view: the thought, the answer (or why there is none), what produced it."""
    from rich.panel import Panel

    from vgt_agent.cli.thought_view import highlight_thought

    if streamed:
        console.print()
    console.print(Panel(highlight_thought(r["thought"]), title="grounded thought", title_align="left"))
    if r["status"] == "answered":
        verdict = {True: "[green]✓ correct[/]", False: "[red]✗ wrong[/]", None: ""}[r["correct"]]
        gold = f" · gold {safe_text(r['gold'])}" if r["gold"] is not None else ""
        console.print(f"[bold]answer:[/] {safe_text(r['answer'])}{gold} {verdict}")
    else:
        console.print(f"[bold red]{r['status'].replace('_', ' ')}:[/] {safe_text(r['reason'])}")
    model_groundings = [g for g in r["groundings"] if g["source"] == "model"]
    if model_groundings:
        ok = sum(bool(g.get("verified")) for g in model_groundings)
        console.print(f"self-written groundings verified: {ok}/{len(model_groundings)}")
    _print_footer(r)
    if r["saved"]:
        console.print(f"annotated picture: {safe_text(r['saved'])}")


def _print_footer(r: dict) -> None:
    device = f" · device {r['device']}" if r["device"] else ""
    device += f" · coords {r['coords']}" if r["coords"] != "norm1000" else ""
    turns = f"{r['turns']} turns · {r['tool_calls']} tool calls · stop: {r['stop_reason']} · " if r["turns"] else ""
    console.print(safe_text(f"backend {r['backend']} · model {r['model']} · grounder {r['grounder']}{device} · "
                            f"{turns}trace {r['trace_id']}"), style="dim")
