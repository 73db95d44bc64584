"""Dataset adapters: a name -> a loader of Samples (embedded world, local files, Hugging Face datasets)."""

from vgt_agent.datasets.hub import DatasetUnavailable
from vgt_agent.datasets.registry import DATASETS, get_dataset, list_datasets, load_samples, select
from vgt_agent.datasets.sample import AnswerType, GoldObject, Sample
from vgt_agent.datasets.spec import DatasetSpec

__all__ = [
    "DATASETS",
    "AnswerType",
    "DatasetSpec",
    "DatasetUnavailable",
    "GoldObject",
    "Sample",
    "get_dataset",
    "list_datasets",
    "load_samples",
    "select",
]
