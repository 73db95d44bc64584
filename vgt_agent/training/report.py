"""`vgt eval report`: the paper's results table from the eval runs in the store, as text, CSV, JSON and PNG.

Rows are configurations (a run's label: Base, Non-grounded thinking, Box / Point with and without the
grounding reward, ...), columns the counting then spatial benchmarks, each cell "Acc / pass@N" in percent,
and one average per group. A group average exists only for rows that have every column of that group, so
rows evaluated on different subsets are never averaged unfairly. The latest run wins when several runs
give the same row and benchmark.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont
from rich.table import Table

from vgt_agent.store import TraceStore
from vgt_agent.terminal import safe_text

PAPER_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("tallybench", "TallyBench", "counting"), ("countqa", "CountQA", "counting"),
    ("world-tally", "world-tally", "counting"), ("world-countqa", "world-countqa", "counting"),
    ("vsr", "VSR", "spatial"), ("embspatial", "EmbSpatial", "spatial"), ("spatialmqa", "SpatialMQA", "spatial"),
    ("multihopspatial", "MultihopSpatial", "spatial"), ("world-vsr", "world-vsr", "spatial"),
    ("world-embspatial", "world-embspatial", "spatial"), ("world-spatialmqa", "world-spatialmqa", "spatial"),
    ("world-multihop", "world-multihop", "spatial"),
)
GROUPS = ("counting", "spatial", "other")
_MODE_ORDER = {"direct": 0, "think": 1, "box": 2, "point": 3}
_STAGE_ORDER = {"base": 0, "sft": 1, "rl": 2, "rl+ground": 3}


class ReportError(ValueError):
    """Nothing to report, or a run that is not an eval run (one line, for the CLI's exit 2)."""


@dataclass(frozen=True)
class Cell:
    acc: float
    pass_k: float
    k: int
    grounding: float | None
    samples: int
    run_id: str


@dataclass
class Report:
    rows: list[str]
    columns: list[tuple[str, str, str]]  # (benchmark key, title, group)
    cells: dict[tuple[str, str], Cell]

    @property
    def groups(self) -> list[str]:
        present = {group for _, _, group in self.columns}
        return [g for g in GROUPS if g in present]

    @property
    def k(self) -> str:
        ks = {c.k for c in self.cells.values()}
        return str(ks.pop()) if len(ks) == 1 else "N"

    def average(self, row: str, group: str) -> tuple[float, float] | None:
        """(acc, pass@N) averaged over the group's columns; None unless the row has all of them."""
        cells = [self.cells.get((row, key)) for key, _, g in self.columns if g == group]
        if not cells or any(c is None for c in cells):
            return None
        return (sum(c.acc for c in cells) / len(cells), sum(c.pass_k for c in cells) / len(cells))  # type: ignore[union-attr]


def _eval_runs(store: TraceStore, run_ids: Sequence[str]) -> list[dict[str, Any]]:
    if not run_ids:
        runs = [r for r in store.runs("eval") if r["status"] == "done"]
        if not runs:
            raise ReportError(f"no finished eval runs in {store.path}; run `vgt eval` first")
        return runs
    runs = []
    for run_id in run_ids:
        run = store.run(run_id) or next((r for r in store.runs("eval") if r["name"] == run_id), None)
        if run is None or run["kind"] != "eval":
            raise ReportError(f"{run_id!r} is not an eval run in {store.path}")
        runs.append(run)
    return runs


def build_report(store: TraceStore, run_ids: Sequence[str] = ()) -> Report:
    """The table from the given eval runs (default: every finished one)."""
    runs = sorted(_eval_runs(store, run_ids), key=lambda r: r["started_at"] or 0.0)
    cells: dict[tuple[str, str], Cell] = {}
    order: dict[str, tuple[Any, ...]] = {}
    groups: dict[str, str] = {}
    for run in runs:
        config = run.get("config") or {}
        label = config.get("label") or run["name"]
        order[label] = (label != "Base", _MODE_ORDER.get(config.get("mode"), 9), bool(config.get("agent")),
                        _STAGE_ORDER.get(config.get("stage"), 9), label)
        for key, m in ((run.get("metrics") or {}).get("benchmarks") or {}).items():
            if m.get("acc") is None:
                continue
            groups[key] = m.get("group", "other")
            cells[(label, key)] = Cell(m["acc"], m["pass@k"], m["k"], m.get("grounding"), m["samples"], run["id"])
    if not cells:
        raise ReportError("the eval runs hold no benchmark results")
    known = {key for key, _, _ in PAPER_COLUMNS}
    columns = [c for c in PAPER_COLUMNS if c[0] in groups]
    columns += sorted(((k, k, groups[k] if groups[k] in GROUPS else "other") for k in groups if k not in known),
                      key=lambda c: (GROUPS.index(c[2]), c[0]))
    columns.sort(key=lambda c: GROUPS.index(c[2]))  # stable: paper order within each group
    return Report(sorted(order, key=order.__getitem__), columns, cells)


def _pct(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"


def _cell_text(pair: tuple[float, float] | None) -> str:
    return "–" if pair is None else f"{_pct(pair[0])} / {_pct(pair[1])}"


def rich_table(report: Report) -> Table:
    """The paper layout: rows = configurations, columns = benchmarks then the group average, Acc / pass@N."""
    table = Table(title=f"Acc / pass@{report.k} (%)", show_lines=False)
    table.add_column("configuration")
    for group in report.groups:
        for _, title, g in report.columns:
            if g == group:
                table.add_column(safe_text(title), justify="right")
        table.add_column(f"{group} avg", justify="right", style="bold")
    for row in report.rows:
        cells = []
        for group in report.groups:
            for key, _, g in report.columns:
                if g == group:
                    c = report.cells.get((row, key))
                    cells.append(_cell_text(None if c is None else (c.acc, c.pass_k)))
            cells.append(_cell_text(report.average(row, group)))
        table.add_row(safe_text(row), *cells)  # labels are what users typed (--label) or stored
    return table


def report_json(report: Report) -> dict[str, Any]:
    return {
        "k": report.k,
        "columns": [{"benchmark": key, "title": title, "group": g} for key, title, g in report.columns],
        "rows": [{
            "configuration": row,
            "benchmarks": {key: vars(c) for (r, key), c in report.cells.items() if r == row},
            "averages": {g: (None if (a := report.average(row, g)) is None else {"acc": a[0], "pass@k": a[1]})
                         for g in report.groups},
        } for row in report.rows],
    }


def report_csv(report: Report) -> str:
    """One line per configuration; per benchmark and group average an acc and a pass@N column (fractions)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    header = ["configuration"]
    for key, _, _ in report.columns:
        header += [f"{key} acc", f"{key} pass@{report.k}", f"{key} grounding"]
    for g in report.groups:
        header += [f"{g} avg acc", f"{g} avg pass@{report.k}"]
    writer.writerow(header)
    for row in report.rows:
        line: list[Any] = [row]
        for key, _, _ in report.columns:
            c = report.cells.get((row, key))
            line += ["", "", ""] if c is None else [f"{c.acc:.4f}", f"{c.pass_k:.4f}",
                                                    "" if c.grounding is None else f"{c.grounding:.4f}"]
        for g in report.groups:
            a = report.average(row, g)
            line += ["", ""] if a is None else [f"{a[0]:.4f}", f"{a[1]:.4f}"]
        writer.writerow(line)
    return buffer.getvalue()


_PALETTE = ((99, 110, 114), (225, 112, 85), (9, 132, 227), (0, 184, 148), (253, 203, 110), (108, 92, 231),
            (232, 67, 147), (45, 52, 54), (214, 48, 49), (0, 206, 201))


def bar_chart(report: Report, path: Path, *, bar_width: int = 16, height: int = 420) -> Path:
    """Grouped bars of accuracy (pass@N as a thin outline above) per benchmark and group average, one colour
    per configuration, drawn with Pillow (no plotting dependency)."""
    slots = [(title, [(report.cells.get((r, key)).acc, report.cells.get((r, key)).pass_k)  # type: ignore[union-attr]
                      if (r, key) in report.cells else None for r in report.rows])
             for key, title, _ in report.columns]
    slots += [(f"{g} avg", [report.average(r, g) for r in report.rows]) for g in report.groups]
    font = ImageFont.load_default()
    left, top, bottom = 50, 30, 40
    slot_w = max(bar_width * max(1, len(report.rows)), *(int(font.getlength(t)) for t, _ in slots)) + 20
    legend_h = 18 * len(report.rows) + 10
    width = left + slot_w * len(slots) + 20
    image = Image.new("RGB", (max(width, 360), height + legend_h), "white")
    draw = ImageDraw.Draw(image)
    plot_h = height - top - bottom

    def y(v: float) -> float:
        return top + plot_h * (1 - v)

    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        draw.line([(left, y(tick)), (width - 10, y(tick))], fill=(225, 225, 225))
        draw.text((8, y(tick) - 6), f"{int(tick * 100)}%", fill="black", font=font)
    draw.text((left, 8), f"accuracy (filled) and pass@{report.k} (outline)", fill="black", font=font)
    for s, (title, values) in enumerate(slots):
        x0 = left + s * slot_w + 12
        for r, value in enumerate(values):
            if value is None:
                continue
            colour = _PALETTE[r % len(_PALETTE)]
            x = x0 + r * bar_width
            draw.rectangle([x, y(value[0]), x + bar_width - 3, y(0)], fill=colour)
            draw.rectangle([x, y(value[1]), x + bar_width - 3, y(0)], outline=colour)
        draw.text((x0, height - bottom + 8), title, fill="black", font=font)
    for r, row in enumerate(report.rows):
        yy = height + 4 + 18 * r
        draw.rectangle([left, yy + 2, left + 12, yy + 12], fill=_PALETTE[r % len(_PALETTE)])
        draw.text((left + 18, yy), row, fill="black", font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path
