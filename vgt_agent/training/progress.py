"""What a training run keeps: every logged value, for the run's metrics in the store.

TRL's progress bar shows the rate, the ETA and each log step's values (loss, lr, every reward function's
mean and std); this callback collects the same values so the run record in the store is complete.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback


def _round(value: Any) -> Any:
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.6g}")
    return value


class RunLogger(TrainerCallback):
    """Keep the history of logged numbers (main process only)."""

    def __init__(self) -> None:
        self.history: list[dict[str, Any]] = []

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if state.is_world_process_zero and logs:
            self.history.append({"step": state.global_step,
                                 **{k: _round(v) for k, v in logs.items() if isinstance(v, int | float)}})

    def last(self, key: str) -> Any:
        """The most recent logged value of `key`, or None."""
        return next((h[key] for h in reversed(self.history) if key in h), None)

    def first(self, key: str) -> Any:
        """The earliest logged value of `key`, or None."""
        return next((h[key] for h in self.history if key in h), None)


class StepLogger(RunLogger):
    """A RunLogger that also reports (step, max_steps, the latest loss / reward) after every optimizer step, for
    callers drawing their own progress bars (`max_steps` follows a wall-time budget that lowers it)."""

    def __init__(self, report: Callable[[int, int, str], None]) -> None:
        super().__init__()
        self.report = report

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        info = " · ".join(f"{k} {v:.3f}" for k in ("loss", "reward") if isinstance(v := self.last(k), float))
        self.report(state.global_step, state.max_steps, info)


class LoggedRun:
    """A store run around a block: started on entry, ended done / failed / interrupted with its metrics.

    Only the main process of a multi-process (accelerate) launch writes; elsewhere `id` is None.
    """

    def __init__(self, store: Any, kind: str, *, main: bool = True, **start: Any) -> None:
        self.store, self.kind, self.main, self.start = store, kind, main, start
        self.id: str | None = None
        self.metrics: dict[str, Any] = {}

    def __enter__(self) -> LoggedRun:
        if self.main:
            self.id = self.store.start_run(self.kind, **self.start)
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self.id is None:
            return
        if exc is None:
            self.store.end_run(self.id, status="done", metrics=self.metrics)
        elif isinstance(exc, KeyboardInterrupt):
            self.store.end_run(self.id, status="interrupted", metrics=self.metrics)
        else:
            error = " ".join(str(exc).split())[:500] or type(exc).__name__
            self.store.end_run(self.id, status="failed", error=error, metrics=self.metrics)
