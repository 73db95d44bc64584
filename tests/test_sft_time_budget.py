"""`vgt train sft --max-minutes`: after its measured steps a run is fitted into the budget, its cosine schedule
re-targeted to end at the new last step (warmup unchanged), so a shortened run is a complete shorter run."""

from __future__ import annotations

import pytest
import torch
from transformers import TrainerControl, TrainerState
from transformers.optimization import get_scheduler

from vgt_agent.training import time_budget
from vgt_agent.training.time_budget import WallTimeBudget, retarget_schedule


def _schedule(total: int, kind: str = "cosine_with_min_lr") -> tuple[torch.optim.Optimizer, object]:
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=2e-3)
    extra = {"min_lr": 1e-4} if kind == "cosine_with_min_lr" else None
    return opt, get_scheduler(kind, opt, num_warmup_steps=6, num_training_steps=total, scheduler_specific_kwargs=extra)


def _train(budget: WallTimeBudget, planned: int, seconds_per_step: float, monkeypatch) -> tuple[TrainerState, list]:
    """Steps as the Trainer takes them (optimizer, scheduler, global_step, on_step_end) on a fake clock."""
    clock = [0.0]
    monkeypatch.setattr(time_budget.time, "perf_counter", lambda: clock[0])
    opt, schedule = _schedule(planned)
    state, control = TrainerState(max_steps=planned), TrainerControl()
    budget.on_train_begin(None, state, control)
    lrs = []
    while not control.should_training_stop:
        opt.step()
        schedule.step()
        state.global_step += 1
        clock[0] += seconds_per_step
        budget.on_step_end(None, state, control, lr_scheduler=schedule)
        lrs.append(schedule.get_last_lr()[0])
    return state, lrs


def test_a_slow_run_is_fitted_into_its_budget_with_the_whole_cosine(monkeypatch) -> None:
    budget = WallTimeBudget(minutes=1.0, measure=5)  # 60 s at 1.5 s a step: 40 steps, not 100
    state, lrs = _train(budget, 100, 1.5, monkeypatch)
    assert state.global_step == state.max_steps == 40
    opt, reference = _schedule(40)  # the 40-step run's schedule, step for step
    expected = []
    for _ in range(40):
        opt.step()
        reference.step()
        expected.append(reference.get_last_lr()[0])
    assert lrs == pytest.approx(expected) and lrs[-1] == pytest.approx(1e-4)
    assert budget.report == {"max_minutes": 1.0, "planned_steps": 100, "seconds_per_step": 1.5, "fitted_steps": 40,
                             "schedule_retargeted": True}


def test_a_fast_run_keeps_its_steps(monkeypatch) -> None:
    budget = WallTimeBudget(minutes=1.0, measure=5)
    state, lrs = _train(budget, 30, 0.1, monkeypatch)
    assert state.global_step == state.max_steps == 30 and lrs[-1] == pytest.approx(1e-4)
    assert budget.report == {"max_minutes": 1.0, "planned_steps": 30, "seconds_per_step": 0.1, "fitted_steps": 30}


def test_only_schedules_with_an_end_are_retargeted() -> None:
    _, constant = _schedule(10, "constant_with_warmup")
    _, linear = _schedule(10, "linear")
    assert not retarget_schedule(constant, 5) and retarget_schedule(linear, 5)
    assert retarget_schedule(None, 5) is False
