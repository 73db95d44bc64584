"""Test-wide settings: no test may reach a model or dataset hub (the machines have no internet), and torch
stays on one thread per process so `pytest -n 2` does not oversubscribe two cores."""

from __future__ import annotations

import os

for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(var, "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
