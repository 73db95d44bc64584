"""Dataset adapters: a name -> a loader of Samples (embedded world, local files, Hugging Face datasets)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vgt_agent.lazy import lazy_getattr

# Loaded on first use, so importing one adapter module does not load every adapter and, through them, the
# answers, format and image-decoding modules.
_LAZY = {
    "DatasetUnavailable": "vgt_agent.datasets.hub",
    **dict.fromkeys(("DATASETS", "get_dataset", "list_datasets", "load_samples", "select"),
                    "vgt_agent.datasets.registry"),
    "DatasetSpec": "vgt_agent.datasets.spec",
}

if TYPE_CHECKING:
    from vgt_agent.datasets.hub import DatasetUnavailable
    from vgt_agent.datasets.registry import DATASETS, get_dataset, list_datasets, load_samples, select
    from vgt_agent.datasets.spec import DatasetSpec

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "DatasetUnavailable",
    "get_dataset",
    "list_datasets",
    "load_samples",
    "select",
]


__getattr__ = lazy_getattr(__name__, _LAZY)
