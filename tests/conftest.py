"""Test-wide settings: no test may reach a model or dataset hub (the machines have no internet), torch
stays on one thread per process so `pytest -n 2` does not oversubscribe two cores, and property tests have
no per-example deadline (a shared machine must not fail them on timing: speed lives in benchmarks/)."""

from __future__ import annotations

import os

for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(var, "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


import pytest  # noqa: E402 - after the environment is set
from hypothesis import settings  # noqa: E402

settings.register_profile("vgt", deadline=None)
settings.load_profile("vgt")


@pytest.fixture
def shared_prefix_calls(monkeypatch) -> list[int]:
    """The prefix length of every batch that `training/shared_prefix.py` computed once (a spy, not a stub)."""
    from vgt_agent.training import shared_prefix

    calls: list[int] = []
    share = shared_prefix.with_shared_prefix

    def spy(model, batch, n):
        calls.append(n)
        return share(model, batch, n)

    monkeypatch.setattr(shared_prefix, "with_shared_prefix", spy)
    return calls
