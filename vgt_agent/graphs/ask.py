"""The ask agent: a LangGraph loop in which a VLM calls a grounding tool while it reasons.

    think -> ground -> think -> ... -> answer -> verify -> log

`think` is one model turn; `ground` runs the grounder for each requested phrase and writes the instances
back as `<obj>` tags, so the whole thought reads in one syntax; `answer` reads `\\boxed{}`; `verify` scores
the groundings the model wrote itself against the grounder with the functions the RL rewards use; `log`
writes the trace to the store, also when the run failed midway. Pixels never enter graph state: the image
lives in the run's context, the state holds its path and hash.

In-text protocol turns reach the backend in the form it asks for (`backends/turns.py`: separate turns, or one
continued prefill); `server_modes` in the final state (and the trace's meta) records that form and how stop
strings were applied. A backend failure of any kind ends the run with `error` set, never an exception.
"""

from __future__ import annotations

import functools
import operator
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypedDict

import numpy as np
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from PIL import Image

from vgt_agent.answers import check_answer, extract_answer
from vgt_agent.backends.base import BackendError, Message, VLMBackend, backend_modes
from vgt_agent.backends.turns import agent_messages
from vgt_agent.format import Grounding, parse, render_tool_result
from vgt_agent.geometry import encode_rle, norm_from_pixel_box, norm_from_pixel_point
from vgt_agent.grounders.base import Grounder, GroundingResult
from vgt_agent.grounding_scores import ReferenceObject, score_grounding
from vgt_agent.prompts import AGENT_FUNCTION_TOOL, AGENT_TEXT_TOOL, SEGMENT_PHRASE_TOOL, image_question_messages
from vgt_agent.store import GroundingRecord, MaskRecord, SampleRecord, TraceRecord, TraceStore

Protocol = Literal["text", "function"]
Kind = Literal["point", "box"]
EventSink = Callable[[str, Any], None]  # ("token" | "tool" | "turn" | "error", payload)


@dataclass(frozen=True)
class AskLimits:
    """Bounds on one run: model turns, tool calls, and completion tokens in total."""

    max_turns: int = 8
    max_tool_calls: int = 8
    max_tokens: int = 1024
    temperature: float = 0.0


@dataclass
class AskContext:
    """Everything a run needs that is not state: the image, the models, the store, gold when known."""

    image: Image.Image
    sample: SampleRecord
    backend: VLMBackend
    grounder: Grounder
    kind: Kind = "point"
    protocol: Protocol = "text"
    limits: AskLimits = field(default_factory=AskLimits)
    store: TraceStore | None = None
    run_id: str | None = None
    variant: str = "agent"
    attempt: int = 0
    on_event: EventSink | None = None
    system_prompt: str | None = None
    _grounded: dict[str, GroundingResult] = field(default_factory=dict)

    def emit(self, kind: str, payload: Any) -> None:
        if self.on_event is not None:
            self.on_event(kind, payload)

    def ground(self, phrase: str) -> GroundingResult:
        """Ground a phrase once per run (verification reuses what the tool call already computed)."""
        key = phrase.strip().lower()
        if key not in self._grounded:
            self._grounded[key] = self.grounder.ground(self.image, phrase)
        return self._grounded[key]


class AskState(TypedDict, total=False):
    question: str
    image_path: str
    image_hash: str
    chunks: Annotated[list[dict[str, Any]], operator.add]  # {"role": "assistant"|"tool", "content", ...}
    pending: list[dict[str, str]]  # tool requests of the last turn: {"phrase", "id"}
    seen_phrases: Annotated[list[str], operator.add]
    tool_masks: Annotated[list[dict[str, Any]], operator.add]
    turns: int
    tool_calls: int
    tokens: int
    stop_reason: str  # answered | max_turns | max_tool_calls | max_tokens | repeated_call | error
    problems: Annotated[list[str], operator.add]
    error: str | None
    answer: str | None
    answer_source: str | None
    correct: bool | None
    groundings: list[dict[str, Any]]
    verified_fraction: float | None
    model_s: Annotated[float, operator.add]
    tool_s: Annotated[float, operator.add]
    started: float
    trace_id: str | None
    server_modes: dict[str, str]  # {"stop": ..., "turns": ...} as the backend served this run


def chunks_text(chunks: list[dict[str, Any]]) -> str:
    """The whole thought: model text and tool results in order, as the model sees it."""
    return "".join(c["content"] for c in chunks)


def _messages(state: AskState, ctx: AskContext, form: str = "turns") -> list[Message]:
    """What the backend is sent: system, user (image + question), then the thought so far.

    In-text protocol: `agent_messages` in the backend's turn form. Function calling: assistant/tool turns.
    """
    system = ctx.system_prompt or (AGENT_TEXT_TOOL if ctx.protocol == "text" else AGENT_FUNCTION_TOOL)
    chunks = state.get("chunks", [])
    if ctx.protocol == "text":
        return agent_messages(system, state["question"], ctx.sample.choices, chunks, form)  # type: ignore[arg-type]
    messages: list[Message] = image_question_messages(system, state["question"], ctx.sample.choices)
    for c in chunks:
        if c["role"] == "assistant":
            m: Message = {"role": "assistant", "content": c["content"]}
            if c.get("tool_calls"):
                m["tool_calls"] = c["tool_calls"]
            messages.append(m)
        else:
            messages.append({"role": "tool", "tool_call_id": c.get("tool_call_id", ""), "content": c["content"]})
    return messages


def think(state: AskState, runtime: Runtime[AskContext]) -> dict[str, Any]:
    """One model turn; collects the tool requests it ends with."""
    ctx = runtime.context
    budget = ctx.limits.max_tokens - state.get("tokens", 0)
    if budget <= 0:
        return {"stop_reason": "max_tokens", "pending": []}
    start = time.perf_counter()
    try:
        form = backend_modes(ctx.backend)["turns"]  # may ask the server (once per backend)
        gen = ctx.backend.generate(
            _messages(state, ctx, form), [ctx.image], max_tokens=budget, temperature=ctx.limits.temperature,
            stop=["</ground>"] if ctx.protocol == "text" else [],
            tools=[SEGMENT_PHRASE_TOOL] if ctx.protocol == "function" else None,
            stream=(lambda t: ctx.emit("token", t)) if ctx.on_event else None,
        )
    except Exception as e:  # noqa: BLE001 - any backend failure ends the run with its one-line error
        message = str(e) if isinstance(e, BackendError) else f"{type(e).__name__}: {' '.join(str(e).split())}"
        ctx.emit("error", message)
        return {"stop_reason": "error", "error": message, "pending": [], "model_s": time.perf_counter() - start,
                "server_modes": _modes(ctx)}
    elapsed = time.perf_counter() - start
    # How the turn ended ("stop" with no stop sequence = EOS): an RL rollout closes its token sequence with
    # the end token only when the model wrote one.
    chunk: dict[str, Any] = {"role": "assistant", "content": gen.text, "finish_reason": gen.finish_reason,
                             "stop_sequence": gen.stop_sequence}
    pending: list[dict[str, str]] = []
    if ctx.protocol == "function" and gen.tool_calls:
        chunk["tool_calls"] = gen.assistant_message()["tool_calls"]
        for call, call_id in zip(gen.tool_calls, gen.tool_call_ids, strict=True):
            phrase = str(call.arguments.get("phrase", "")).strip() if call.name == "segment_phrase" else ""
            pending.append({"phrase": phrase, "id": call_id, "name": call.name})
    elif ctx.protocol == "text" and gen.stop_sequence == "</ground>":
        requests = parse(gen.text, expect_answer=False).tool_requests
        pending = [{"phrase": r.phrase, "id": ""} for r in requests[-1:]]  # the request it stopped on
    update: dict[str, Any] = {
        "chunks": [chunk], "pending": pending, "turns": state.get("turns", 0) + 1, "model_s": elapsed,
        "tokens": state.get("tokens", 0) + gen.completion_tokens, "server_modes": _modes(ctx),
    }
    ctx.emit("turn", {"text": gen.text, "latency_s": gen.latency_s, "finish_reason": gen.finish_reason})
    if not pending:
        update["stop_reason"] = "max_tokens" if gen.finish_reason == "length" else "answered"
    return update


def _modes(ctx: AskContext) -> dict[str, str]:
    """The backend's modes after a call; a probe that fails here leaves them unknown, never raises."""
    try:
        return backend_modes(ctx.backend)
    except Exception:  # noqa: BLE001 - the call's own error is what the run reports
        return {"stop": "unknown", "turns": "unknown"}


def ground(state: AskState, runtime: Runtime[AskContext]) -> dict[str, Any]:
    """Run the grounder for each requested phrase; write the instances back as `<obj>` tags."""
    ctx = runtime.context
    width, height = ctx.image.size
    chunks, masks, seen, problems = [], [], [], []
    start = time.perf_counter()
    calls = state.get("tool_calls", 0)
    stop_reason = None
    for request in state.get("pending", []):
        phrase = request["phrase"]
        if not phrase or request.get("name", "segment_phrase") != "segment_phrase":
            content = f"Unknown tool call {request.get('name')!r}; call segment_phrase with a phrase."
            problems.append("bad_tool_call")
        elif phrase.lower() in {p.lower() for p in state.get("seen_phrases", [])}:
            stop_reason = "repeated_call"
            problems.append(f"repeated_call:{phrase}")
            content = f"Already grounded {phrase}; use the result above and answer."
        else:
            calls += 1
            result = ctx.ground(phrase)
            if ctx.kind == "point":
                coords = [norm_from_pixel_point(i.point[0] + 0.5, i.point[1] + 0.5, width, height) for i in result]
            else:
                coords = [norm_from_pixel_box(i.box, width, height) for i in result]
            content = render_tool_result(phrase, ctx.kind, coords)
            seen.append(phrase)
            masks += [{"concept": phrase, "rle": encode_rle(i.mask), "box": list(i.box), "point": list(i.point),
                       "score": float(i.score)} for i in result]
        if ctx.protocol == "text":
            content = "\n" + content + "\n"
        chunks.append({"role": "tool", "content": content, "tool_call_id": request.get("id", ""), "phrase": phrase})
        ctx.emit("tool", content.strip())
    update: dict[str, Any] = {"chunks": chunks, "tool_masks": masks, "seen_phrases": seen, "problems": problems,
                              "tool_calls": calls, "pending": [], "tool_s": time.perf_counter() - start}
    if stop_reason:
        update["stop_reason"] = stop_reason
    elif calls >= ctx.limits.max_tool_calls:
        update["stop_reason"] = "max_tool_calls"
    elif state.get("turns", 0) >= ctx.limits.max_turns:
        update["stop_reason"] = "max_turns"
    return update


def after_think(state: AskState) -> str:
    return "ground" if state.get("pending") and not state.get("stop_reason") else "answer"


def after_ground(state: AskState) -> str:
    return "answer" if state.get("stop_reason") else "think"


def answer(state: AskState, runtime: Runtime[AskContext]) -> dict[str, Any]:
    """Read the final answer and check it against gold when the sample has one."""
    ctx = runtime.context
    text = "".join(c["content"] for c in state.get("chunks", []) if c["role"] == "assistant")
    sample = ctx.sample
    if sample.gold_answer is not None and sample.answer_type:
        check = check_answer(text, sample.gold_answer, sample.answer_type, sample.choices)
        update: dict[str, Any] = {  # no answer at all counts as wrong
            "answer": check.predicted if check.predicted is not None else check.extracted,
            "answer_source": check.source, "correct": check.correct}
    else:
        extracted = extract_answer(text)
        update = {"answer": extracted.text, "answer_source": extracted.source}
    thought = parse(chunks_text(state.get("chunks", [])))
    update["problems"] = [p.code for p in thought.problems]
    return update


def _tool_spans(chunks: list[dict[str, Any]]) -> list[tuple[int, int]]:
    spans, pos = [], 0
    for c in chunks:
        end = pos + len(c["content"])
        if c["role"] == "tool":
            spans.append((pos, end))
        pos = end
    return spans


def verify(state: AskState, runtime: Runtime[AskContext]) -> dict[str, Any]:
    """Score each grounding the model wrote itself against the grounder's instances for its phrase."""
    ctx = runtime.context
    chunks = state.get("chunks", [])
    thought = parse(chunks_text(chunks))
    tool_spans = _tool_spans(chunks)
    records, verified = [], []
    height, width = ctx.image.size[1], ctx.image.size[0]
    for g in thought.groundings:
        from_tool = any(s <= g.span[0] and g.span[1] <= e for s, e in tool_spans)
        record: dict[str, Any] = {"phrase": g.phrase, "kind": g.kind, "coords": [list(c) for c in g.coords],
                                  "source": "tool" if from_tool else "model", "span": list(g.span)}
        if not from_tool:
            score = _verify_one(g, ctx, height, width)
            record.update(score=score.score, verified=score.verified)
            verified.append(score.verified)
        records.append(record)
    fraction = float(np.mean(verified)) if verified else None
    return {"groundings": records, "verified_fraction": fraction}


def _verify_one(g: Grounding, ctx: AskContext, height: int, width: int):
    result = ctx.ground(g.phrase)
    masks = np.stack([i.mask for i in result]) if len(result) else np.zeros((0, height, width), dtype=bool)
    return score_grounding(g, ReferenceObject(g.phrase, masks))


def log(state: AskState, runtime: Runtime[AskContext]) -> dict[str, Any]:
    """Write the trace (with its error, if any) to the store in one transaction."""
    ctx = runtime.context
    if ctx.store is None or ctx.run_id is None:
        return {"trace_id": None}
    chunks = state.get("chunks", [])
    groundings = [GroundingRecord(g["phrase"], g["kind"], g["coords"], g["source"], g.get("verified"),
                                  g.get("score"), tuple(g["span"])) for g in state.get("groundings", [])]
    tool_index = {g.phrase.lower(): i for i, g in enumerate(groundings) if g.source == "tool"}
    masks = [MaskRecord(m["concept"], m["rle"], m["box"], m["point"], m["score"], ctx.grounder.name,
                        tool_index.get(m["concept"].lower())) for m in state.get("tool_masks", [])]
    error = state.get("error")
    status = "error" if error else "ok"
    reason = state.get("stop_reason")
    timings = {"total_s": time.perf_counter() - state.get("started", time.perf_counter()),
               "model_s": state.get("model_s", 0.0), "tool_s": state.get("tool_s", 0.0)}
    trace = TraceRecord(
        run_id=ctx.run_id, sample=ctx.sample, variant=ctx.variant, attempt=ctx.attempt, status=status,
        messages=[{"role": c["role"], "content": c["content"]} for c in chunks],
        completion=chunks_text(chunks), answer=state.get("answer"), answer_source=state.get("answer_source"),
        correct=state.get("correct"), verified_fraction=state.get("verified_fraction"), reason=reason,
        error=error, backend=ctx.backend.name, model=ctx.backend.model, grounder=ctx.grounder.name,
        timings=timings, groundings=groundings, masks=masks,
        meta={"protocol": ctx.protocol, "kind": ctx.kind, "turns": state.get("turns", 0),
              "tool_calls": state.get("tool_calls", 0), "tokens": state.get("tokens", 0),
              "problems": state.get("problems", []), "server_modes": state.get("server_modes")},
    )
    return {"trace_id": ctx.store.put_trace(trace)}


@functools.cache
def build_ask_graph():
    """The compiled graph; run it with `graph.invoke(initial_state(...), context=AskContext(...))`."""
    graph = StateGraph(AskState, context_schema=AskContext)
    for name, node in (("think", think), ("ground", ground), ("answer", answer), ("verify", verify), ("log", log)):
        graph.add_node(name, node)
    graph.add_edge(START, "think")
    graph.add_conditional_edges("think", after_think, {"ground": "ground", "answer": "answer"})
    graph.add_conditional_edges("ground", after_ground, {"think": "think", "answer": "answer"})
    graph.add_edge("answer", "verify")
    graph.add_edge("verify", "log")
    graph.add_edge("log", END)
    return graph.compile()


def run_ask(ctx: AskContext) -> AskState:
    """Run the agent once on the context's sample and return the final state."""
    state: AskState = {"question": ctx.sample.question, "image_path": ctx.sample.image.path,
                       "image_hash": ctx.sample.image.hash, "started": time.perf_counter()}
    limit = 4 * (ctx.limits.max_turns + ctx.limits.max_tool_calls) + 10
    return build_ask_graph().invoke(state, context=ctx, config={"recursion_limit": limit})


