"""A wall-time budget for a training run (`vgt train sft --max-minutes`): measure, then fit the steps to it.

Why: a recipe that promises a time (`vgt repro tiny`) runs on machines of different speeds, and a fixed
step count over- or undershoots it. After `measure` optimizer steps of this session the
callback knows the seconds per step; when the planned `max_steps` would not fit in the budget it lowers them
to what fits and re-targets the learning-rate schedule at the new last step (a cosine then decays to its
floor there; the warmup is unchanged), so a shortened run is a complete smaller run, not a cut-off one.
It never lengthens a run. On `--resume` the budget counts from the resumed step.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from transformers import TrainerCallback

MEASURE_STEPS = 50


def retarget_schedule(scheduler: Any, total: int) -> bool:
    """Point a transformers schedule (a LambdaLR over `partial(..., num_training_steps=N)`) at a new last step;
    False when it has no such step (e.g. constant: nothing to re-target)."""
    inner = getattr(scheduler, "scheduler", scheduler)  # accelerate's AcceleratedScheduler wraps the LambdaLR
    changed = False
    for i, fn in enumerate(getattr(inner, "lr_lambdas", None) or []):
        if isinstance(fn, functools.partial) and "num_training_steps" in fn.keywords:
            inner.lr_lambdas[i] = functools.partial(fn.func, *fn.args, **{**fn.keywords, "num_training_steps": total})
            changed = True
    return changed


class WallTimeBudget(TrainerCallback):
    """Fit a run's steps into `minutes` of wall time, measured over its first `measure` steps."""

    def __init__(self, minutes: float, measure: int = MEASURE_STEPS) -> None:
        self.seconds = minutes * 60
        self.measure = measure
        self.started = 0.0
        self.first_step = 0
        self.report: dict[str, Any] = {"max_minutes": minutes}

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.started = time.perf_counter()
        self.first_step = state.global_step
        self.report.update(planned_steps=state.max_steps)

    def on_step_end(self, args: Any, state: Any, control: Any, lr_scheduler: Any = None, **kwargs: Any) -> None:
        done = state.global_step - self.first_step
        if done == self.measure:
            per_step = (time.perf_counter() - self.started) / done
            fits = self.first_step + int(self.seconds / per_step)
            self.report.update(seconds_per_step=round(per_step, 4), fitted_steps=min(fits, state.max_steps))
            if fits < state.max_steps:
                state.max_steps = max(state.global_step, fits)
                self.report["schedule_retargeted"] = retarget_schedule(lr_scheduler, state.max_steps)
        if state.global_step >= state.max_steps:
            control.should_training_stop = True
