"""The report from the store's eval runs: the baselines, one `Row` per configuration, the markdown tables,
the findings computed from the numbers, and the markdown, PNG and JSON that `write_report` writes."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vgt_agent.tiny.table.config import (
    GROUNDED,
    MODES,
    STAGE_TITLES,
    STAGES,
    TableConfig,
)
from vgt_agent.tiny.table.job_graph import Job, applicable, jobs
from vgt_agent.tiny.table.stages import Paths, StageLog, eval_done, eval_run_id
from vgt_agent.world.splits import BENCHMARKS, COUNTING_BENCHMARKS, SPATIAL_BENCHMARKS


@dataclass
class Baselines:
    """Per benchmark: uniform chance over the options (None for counts) and the answer prior (the
    world-train majority answer of the question's family, what a blind model can learn)."""

    chance: dict[str, float | None]
    prior: dict[str, float]
    questions: dict[str, int]


def baselines(cfg: TableConfig, paths: Paths) -> Baselines:
    from vgt_agent.world.storage import load_split

    by_family: dict[str, Counter] = {}
    for i, s in enumerate(load_split(paths.data / "world-train")):
        if i >= cfg.train_samples:
            break
        by_family.setdefault(s.meta["family"], Counter())[s.answer] += 1
    majority = {fam: c.most_common(1)[0][0] for fam, c in by_family.items()}
    chance, prior, questions = {}, {}, {}
    for bench in BENCHMARKS:
        samples = list(load_split(paths.data / bench))[: cfg.eval_questions]
        options = [len(s.choices) if s.choices else (2 if s.answer_type == "yes_no" else 0) for s in samples]
        chance[bench] = None if 0 in options else sum(1 / n for n in options) / len(options)
        prior[bench] = sum(majority.get(s.meta["family"]) == s.answer for s in samples) / len(samples)
        questions[bench] = len(samples)
    return Baselines(chance, prior, questions)


def _pct(v: float | None) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


@dataclass
class Row:
    """One configuration of the table, with what the report, the eval run and the trainings say."""

    mode: str
    stage: str
    label: str
    cells: dict[str, tuple[float, float]]  # benchmark -> (acc, pass@k)
    eval_metrics: dict[str, dict[str, Any]]
    training: dict[str, Any]  # the training run's metrics
    run_id: str  # the eval run

    def avg(self, benches: tuple[str, ...]) -> float | None:
        if not all(b in self.cells for b in benches):
            return None
        return _mean([self.cells[b][0] for b in benches])

    def avg_pass(self, benches: tuple[str, ...]) -> float | None:
        if not all(b in self.cells for b in benches):
            return None
        return _mean([self.cells[b][1] for b in benches])

    def se(self, benches: tuple[str, ...], questions: dict[str, int]) -> float:
        """Standard error of a group average, counting questions (not their correlated samples) as the unit."""
        terms = []
        for b in benches:
            if b in self.cells:
                n = max(1, questions[b])
                p = (self.cells[b][0] * n + 1) / (n + 2)  # Laplace: 0% or 100% of a few questions is not certain
                terms.append(p * (1 - p) / n)
        return math.sqrt(sum(terms)) / max(1, len(terms))

    def diag(self, key: str) -> float | None:
        return _mean([m[key] for m in self.eval_metrics.values() if m.get(key) is not None])


def collect_rows(cfg: TableConfig, paths: Paths, store: Any) -> tuple[list[Row], Any]:
    """Every configuration that has a finished eval run, in the report's order, and report.py's Report."""
    from vgt_agent.training.model import read_provenance
    from vgt_agent.training.report import build_report

    runs = {j: store.run(eval_run_id(cfg, paths, j)) for j in jobs()
            if j.kind == "eval" and eval_done(store, cfg, paths, j)}
    if not runs:
        return [], None
    report = build_report(store, [r["id"] for r in runs.values()])
    rows = []
    for job, run in runs.items():
        label = run["config"]["label"]
        cells = {key: (c.acc, c.pass_k) for (row, key), c in report.cells.items() if row == label}
        provenance = read_provenance(paths.model(Job("train", job.stage, job.mode))) or {}
        training = (store.run(provenance["run_id"]) or {}).get("metrics", {}) if provenance.get("run_id") else {}
        rows.append(Row(job.mode, job.stage, label, cells, run["metrics"]["benchmarks"], training, run["id"]))
    order = {label: i for i, label in enumerate(report.rows)}
    rows.sort(key=lambda r: order.get(r.label, 99))
    return rows, report


def row_label(mode: str, stage: str) -> str:
    """The label `vgt eval` gives a model of this mode and stage (`training.eval.default_label`)."""
    from vgt_agent.training.eval import MODE_LABELS

    return f"{MODE_LABELS[mode]} · " + {"sft": "SFT", "rl": "RL", "rlg": "RL + r_ground"}[stage]


def results_table(rows: list[Row], base: Baselines, k: int) -> str:
    """Markdown in report.py's layout: configurations x (counting, spatial) splits, Acc / pass@k, averages."""
    head = ["configuration", *COUNTING_BENCHMARKS, "**counting avg**", *SPATIAL_BENCHMARKS, "**spatial avg**"]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]

    def best(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return max(present) if present else None

    columns: list[tuple[str, Callable[[Row], tuple[float | None, float | None]]]] = []
    for group in (COUNTING_BENCHMARKS, SPATIAL_BENCHMARKS):
        for b in group:
            columns.append((b, lambda r, b=b: r.cells.get(b, (None, None))))
        columns.append(("avg", lambda r, g=group: (r.avg(g), r.avg_pass(g))))
    tops = [best([f(r)[0] for r in rows]) for _, f in columns]

    def ref_row(name: str, per: dict[str, float | None]) -> str:
        cells = []
        for group in (COUNTING_BENCHMARKS, SPATIAL_BENCHMARKS):
            cells += [_pct(per[b]) for b in group]
            vals = [per[b] for b in group]
            cells.append("–" if None in vals else f"*{_pct(_mean(vals))}*")  # type: ignore[arg-type]
        return f"| *{name}* | " + " | ".join(cells) + " |"

    lines.append(ref_row("chance (uniform over the options)", base.chance))  # type: ignore[arg-type]
    lines.append(ref_row("prior (train majority answer per question type)", base.prior))  # type: ignore[arg-type]
    by = {(r.mode, r.stage): r for r in rows}
    for mode in MODES:
        for stage in STAGES:
            r = by.get((mode, stage))
            if r is None:
                text = "n/a" if not applicable(stage, mode) else "not run"
                lines.append(f"| {row_label(mode, stage)} | " + " | ".join([text] * len(columns)) + " |")
                continue
            cells = []
            for (_, f), top in zip(columns, tops, strict=True):
                acc, pk = f(r)
                text = "–" if acc is None else f"{_pct(acc)} / {_pct(pk)}"
                cells.append(f"**{text}**" if acc is not None and top is not None and acc == top and acc > 0 else text)
            lines.append(f"| {r.label} | " + " | ".join(cells) + " |")
    note = (f"Cells: accuracy over {_n(k, 'sample')} / pass@{k}, in percent; the best accuracy of each column in "
            "bold; *n/a*: GRPO with the grounding reward needs groundings, which direct answers and plain thoughts "
            "do not have; *not run*: the stage failed or has not run yet (see the time table). Reference rows "
            "(italic) are not models: *chance* answers uniformly among the options "
            "(none for counts), *prior* always gives the most frequent training answer of the question's type.")
    return "\n".join(lines) + "\n\n" + note


def diagnostics_table(rows: list[Row]) -> str:
    lines = ["| configuration | grounding score | boxed answer | truncated | completion tokens | "
             "training: loss or reward, first → last |", "|---|---:|---:|---:|---:|---|"]
    for r in rows:
        t = r.training
        if r.stage == "sft":
            before, after = t.get("eval_loss_before"), t.get("eval_loss_after")
            train = (f"held-out loss {before:.3f} → {after:.3f}" if before is not None and after is not None
                     else f"loss {t.get('first_loss')} → {t.get('last_loss')}")
        else:
            reward = t.get("reward") or {}
            answer = (t.get("rewards") or {}).get("answer_reward") or {}
            ground = (t.get("rewards") or {}).get("grounding_reward") or {}
            train = f"R {_num(reward.get('first'))} → {_num(reward.get('last'))}, r_ans {_num(answer.get('first'))}" \
                    f" → {_num(answer.get('last'))}"
            if ground:
                train += f", r_ground {_num(ground.get('first'))} → {_num(ground.get('last'))}"
        g = r.diag("grounding") if r.mode in GROUNDED else None
        tokens = r.diag("mean_completion_tokens")
        lines.append(f"| {r.label} | {'–' if g is None else f'{g:.3f}'} | {_pct(r.diag('boxed_rate'))}% | "
                     f"{_pct(r.diag('truncated_rate'))}% | {'–' if tokens is None else f'{tokens:.0f}'} | {train} |")
    return "\n".join(lines) + "\n\nGrounding score: the reward's own scorer against the gold masks (points: F1 of " \
        "points inside the masks; boxes: IoU of the box unions), mean over the splits. Boxed answer / truncated: " \
        "share of generations with a `\\boxed{}` answer / cut at the token limit. Training numbers: SFT's loss on " \
        "held-out training images before and after; GRPO's mean reward R and its parts over the first and last " \
        "logged steps (one step: a few groups, so noisy)."


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _num(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, int | float) else "–"


def findings(rows: list[Row], base: Baselines, cfg: TableConfig) -> list[str]:
    """What comes out, in sentences computed from the numbers (2 standard errors as the bar for a difference)."""
    if not rows:
        return ["No configuration finished its evaluation."]
    q = base.questions
    groups = {"counting": COUNTING_BENCHMARKS, "spatial": SPATIAL_BENCHMARKS}
    by = {(r.mode, r.stage): r for r in rows}
    out = []

    def gap(a: Row, b: Row | None, g: tuple[str, ...]) -> tuple[float, float] | None:
        """(difference of group averages a - b, 2 SE of that difference)."""
        if b is None or a.avg(g) is None or b.avg(g) is None:
            return None
        return a.avg(g) - b.avg(g), 2 * math.hypot(a.se(g, q), b.se(g, q))  # type: ignore[operator]

    def pts(d: float) -> str:
        return f"{100 * d:+.1f}"

    def called(d: tuple[float, float]) -> str:
        """A gap in points, marked when it is within noise."""
        return pts(d[0]) + ("" if abs(d[0]) > d[1] else " (within noise)")

    def effects(modes: tuple[str, ...], before: str, after: str, head: Callable[[Row], str], key: str,
                moved: str) -> list[str]:
        """Per mode with both stages: `head: counting +x, spatial +y` (after minus before), then how the
        diagnostic `key` moved, its two values formatted by `moved`."""
        lines = []
        for mode in modes:
            old, new = by.get((mode, before)), by.get((mode, after))
            if old is None or new is None:
                continue
            parts = [f"{name} {called(d)}" for name, g in groups.items() if (d := gap(new, old, g)) is not None]
            v0, v1 = old.diag(key), new.diag(key)
            tail = moved.format(v0, v1) if v0 is not None and v1 is not None else ""
            lines.append(f"{head(old)}: {', '.join(parts)}{tail}")
        return lines

    noise = {name: 2 * _mean([r.se(g, q) for r in rows if r.avg(g) is not None] or [0.0]) for name, g in groups.items()}
    out.append(f"**Noise first.** {cfg.eval_questions} questions per split × {_n(cfg.eval_samples, 'sample')}: two "
               f"standard errors of a group average are about ±{100 * noise['counting']:.1f} points (counting) and "
               f"±{100 * noise['spatial']:.1f} (spatial); a difference of two rows needs about 1.4× that. Smaller "
               "differences below are called *within noise*, not findings.")
    for name, g in groups.items():
        ranked = sorted((r for r in rows if r.avg(g) is not None), key=lambda r: -r.avg(g))  # type: ignore[operator]
        if ranked:
            top = ranked[0]
            out.append(f"**Best on {name}:** {top.label} with {_pct(top.avg(g))}% (pass@{cfg.eval_samples} "
                       f"{_pct(top.avg_pass(g))}%); worst: {ranked[-1].label} with {_pct(ranked[-1].avg(g))}%.")
    base_row = by.get(("direct", "sft"))
    if base_row is not None:
        for name, g in groups.items():
            above, below = [], []
            for r in rows:
                if r is base_row or (d := gap(r, base_row, g)) is None:
                    continue
                if d[0] > d[1]:
                    above.append(f"{r.label} ({pts(d[0])})")
                elif -d[0] > d[1]:
                    below.append(f"{r.label} ({pts(d[0])})")
            out.append(f"**Against the direct-answer baseline on {name}** (Direct answer · SFT, "
                       f"{_pct(base_row.avg(g))}%): " + (f"clearly better: {', '.join(above)}; " if above else
                                                         "no configuration is clearly better; ")
                       + (f"clearly worse: {', '.join(below)}." if below else "none is clearly worse.")
                       + " The rest are within noise.")
    for name, g in groups.items():
        prior = _mean([base.prior[b] for b in g])
        chance_vals = [base.chance[b] for b in g]
        chance = None if None in chance_vals else _mean(chance_vals)  # type: ignore[arg-type]
        floor = max(v for v in (prior, chance) if v is not None)  # type: ignore[type-var]
        beat = [f"{r.label} ({_pct(r.avg(g))}%)" for r in rows
                if r.avg(g) is not None and r.avg(g) - floor > 2 * r.se(g, q)]  # type: ignore[operator]
        ref = f"prior {_pct(prior)}%" + (f", chance {_pct(chance)}%" if chance is not None else "")
        out.append(f"**Against chance and the answer prior on {name}** ({ref}): "
                   + (f"above both by more than 2 SE: {', '.join(beat)}." if beat else
                      "no configuration is above them by more than 2 SE: at this scale the models do not use the "
                      "image beyond what the question type predicts."))
    rl_lines = effects(MODES, "sft", "rl", lambda r: r.label.split(" · ")[0], "mean_completion_tokens",
                       ", completions {:.0f} → {:.0f} tokens")
    if rl_lines:
        out.append("**GRPO with the answer reward, against SFT** (points of accuracy): " + "; ".join(rl_lines)
                   + f". ({cfg.rl_steps} steps of {cfg.rl_prompts_per_step} prompts × {cfg.generations} generations; "
                   "the paper sees non-grounded thinking shrink and degrade under RL, grounded thinking stay stable.)")
    g_lines = effects(GROUNDED, "rl", "rlg", lambda r: r.mode, "grounding", ", grounding score {:.3f} → {:.3f}")
    if g_lines:
        out.append("**Adding the grounding reward** (RL + r_ground against RL): " + "; ".join(g_lines)
                   + ". (The paper: +1 to +2.8 points for boxes, nothing for points.)")
    for stage in ("sft", "rl"):
        think = by.get(("think", stage))
        parts = []
        for mode in GROUNDED:
            r = by.get((mode, stage))
            if r is None or think is None:
                continue
            for name, g in groups.items():
                if (d := gap(r, think, g)) is not None:
                    parts.append(f"{mode} {name} {called(d)}")
        if parts:
            out.append(f"**Grounded against non-grounded thinking after {STAGE_TITLES[stage].split(',')[0]}:** "
                       + ", ".join(parts) + ".")
    pb = [(stage, by.get(("point", stage)), by.get(("box", stage))) for stage in STAGES]
    pb_parts = [f"{STAGE_TITLES[s].split(',')[0] if s != 'rlg' else 'RL + r_ground'} {called(d)}"
                for s, p, b in pb if p is not None and (d := gap(p, b, COUNTING_BENCHMARKS)) is not None]
    if pb_parts:
        out.append("**Points against boxes on counting** (point minus box): " + ", ".join(pb_parts)
                   + ". (The paper: points win on counting.)")
    grounded = [r for r in rows if r.mode in GROUNDED and r.diag("grounding") is not None]
    if grounded:
        best = max(grounded, key=lambda r: r.diag("grounding"))  # type: ignore[arg-type,return-value]
        score = best.diag("grounding")
        verdict = ("the coordinates the models write rarely land on the objects, so their grounded thoughts carry "
                   "little visual evidence at this scale" if score < 0.2 else
                   "the models do localise a good share of the objects they name")  # type: ignore[operator]
        out.append(f"**Grounding quality:** the best mean grounding score is {score:.3f} ({best.label}; points: "
                   f"F1, boxes: IoU): {verdict}.")
    return out


def write_markdown(path: Path, cfg: TableConfig, rows: list[Row], report: Any, base: Baselines,
                   stages: StageLog, info: dict[str, Any], png: Path) -> None:
    m = cfg.model
    sizes = [
        ("world-train samples through synthesis", f"{cfg.train_samples} ({info.get('kept', '?')} kept, each as "
                                                  "point, box and plain thought; direct targets = gold answers)"),
        ("model", f"random tiny Gemma3, {info.get('params', 0) / 1e6:.2f} M parameters: {m.image_size} px images, "
                  f"patch {m.patch_size}, {m.mm_tokens_per_image} image tokens, text {m.layers} layers × {m.hidden}, "
                  f"vision {m.vision_layers} layers × {m.vision_hidden}, vocabulary {info.get('vocab', '?')}"),
        ("SFT", f"{cfg.sft_steps} steps × batch {cfg.sft_batch}, lr {cfg.sft_lr:g} cosine, from the same random init "
                "per mode (TRL SFTTrainer, assistant-only loss)"),
        ("GRPO", f"{cfg.rl_steps} steps × {cfg.rl_prompts_per_step} prompts × {cfg.generations} generations, "
                 f"lr {cfg.rl_lr:g}, temperature {cfg.temperature:g}, from the SFT model; answer reward only = "
                 f"R_base (answer + 0.1 think format + 0.1 tag format + truncation), w_ground 0; answer + grounding "
                 f"= R_base + {cfg.ground_weight:g} N(r_ground)"),
        ("eval", f"{cfg.eval_questions} questions per split × {_n(cfg.eval_samples, 'sample')} at temperature "
                 f"{cfg.temperature:g}; at most {', '.join(f'{k} {v}' for k, v in cfg.max_tokens.items())} tokens"),
    ]
    timing = ["| stage | wall minutes | CPU minutes | |", "|---|---:|---:|---|"]
    order = ["data", "synth", "init"] + [j.key for j in jobs()] + ["report"]
    for key in order:
        s = stages.data.get(key)
        if s:
            cpu = s.get("cpu_seconds")
            timing.append(f"| {key} | {s.get('seconds', 0) / 60:.1f} | {'–' if cpu is None else f'{cpu / 60:.1f}'} "
                          f"| {s['status']}{': ' + s['error'] if s.get('error') else ''} |")
    db = Path(info.get("work_dir", "vgt-table-work")) / "traces.db"
    job_minutes = sum(stages.data.get(j.key, {}).get("seconds", 0) for j in jobs()) / 60
    wall = info.get("wall_seconds")
    text = [
        "# The table in miniature",
        "",
        "Self-grounding on the embedded world: the model grounds by itself, no tool at inference. "
        "Direct answer, non-grounded thinking, box- and point-grounded thinking, each after SFT on the "
        "world-oracle's synthesised traces, after GRPO with the answer reward only, and after GRPO with answer + "
        "grounding rewards, evaluated on the six world splits as the paper evaluates its benchmarks. "
        "Generated by one command:",
        "",
        "```bash",
        f"vgt repro table --size {cfg.name} --work-dir {info.get('work_dir', 'vgt-table-work')} --out {path.parent}/",
        "```",
        "",
        "## Sizes",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in sizes],
        "",
        f"## Results (Acc / pass@{cfg.eval_samples}, %)",
        "",
        results_table(rows, base, cfg.eval_samples),
        "",
        f"![accuracy per split and configuration]({png.name})",
        "",
        "## Diagnostics",
        "",
        diagnostics_table(rows),
        "",
        "## What comes out",
        "",
        *[f"- {line}" for line in findings(rows, base, cfg)],
        "",
        "## Time",
        "",
        f"Wall time of the last session {'–' if wall is None else f'{wall / 60:.1f}'} min, {cfg.workers} "
        f"worker(s) with one torch thread each; the jobs add up to {job_minutes:.1f} worker-minutes. A stage "
        "done in an earlier session keeps that session's time; CPU minutes are the job's own process time "
        "(wall minutes above them mean the job waited for a core).",
        "",
        *timing,
        "",
        "## Runs",
        "",
        f"Every stage is a run in the work dir's store (`vgt traces runs --db {db}`); the "
        f"table again: `vgt eval report --db {db} {' '.join(r.run_id for r in rows)}`.",
        "",
    ]
    path.write_text("\n".join(text), encoding="utf-8")


def write_report(cfg: TableConfig, paths: Paths, out_dir: Path, stages: StageLog, info: dict[str, Any]
                 ) -> dict[str, Any]:
    """The markdown, the PNG and the JSON from the store's eval runs."""
    from vgt_agent.store import TraceStore
    from vgt_agent.training.report import bar_chart, report_json

    base = baselines(cfg, paths)
    with TraceStore.open(paths.db, create=False, readonly=True) as store:
        rows, report = collect_rows(cfg, paths, store)
    if report is None:
        raise RuntimeError("no evaluation finished: nothing to report")
    out_dir.mkdir(parents=True, exist_ok=True)
    md, png = out_dir / f"{cfg.file_stem()}.md", out_dir / f"{cfg.file_stem()}.png"
    bar_chart(report, png)
    write_markdown(md, cfg, rows, report, base, stages, info, png)
    result = {"markdown": str(md), "png": str(png), "table": report_json(report),
              "baselines": asdict(base), "findings": findings(rows, base, cfg),
              "rows": [{"label": r.label, "mode": r.mode, "stage": r.stage,
                        "counting": r.avg(COUNTING_BENCHMARKS), "spatial": r.avg(SPATIAL_BENCHMARKS),
                        "grounding": r.diag("grounding"), "completion_tokens": r.diag("mean_completion_tokens")}
                       for r in rows]}
    return result
