"""Loading rows from the Hugging Face Hub cache or from a local copy of a dataset's files.

`datasets.load_dataset` retries an unreachable Hub for ~25 s before failing, which is useless on a machine
without internet. So we first ask for the dataset in offline mode (instant: served from the local cache or
refused), and only go online when the Hub host answers a TCP connect within a couple of seconds.
Anything else becomes a one-line `DatasetUnavailable` that says how to get the data.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

PROBE_TIMEOUT_S = 2.0


class DatasetUnavailable(RuntimeError):
    """The dataset's data is neither cached locally nor downloadable from here."""


def _env_offline() -> bool:
    return any(
        os.environ.get(k, "").strip().upper() in {"1", "ON", "YES", "TRUE"}
        for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the Hub endpoint accepts a TCP connection (cached for the process)."""
    if _env_offline():
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _offline(enabled: bool) -> Iterator[None]:
    """Force `datasets`/`huggingface_hub` offline mode for the duration (they read it at import time)."""
    import datasets.config
    import huggingface_hub.constants

    saved = (datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = enabled or saved[0]
    huggingface_hub.constants.HF_HUB_OFFLINE = enabled or saved[1]
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE = saved


def _is_missing_error(e: BaseException) -> bool:
    """Errors that mean "not cached / cannot download", as opposed to bad arguments."""
    return isinstance(e, (ConnectionError, FileNotFoundError, TimeoutError)) or type(e).__name__ in {
        "OfflineModeIsEnabled",
        "LocalEntryNotFoundError",
        "DatasetNotFoundError",
        "RepositoryNotFoundError",
        "HfHubHTTPError",
    }


def load_hub_rows(
    name: str,
    hub_id: str,
    split: str,
    *,
    config: str | None = None,
    data_files: Mapping[str, str] | None = None,
) -> Iterable[Mapping[str, Any]]:
    """The rows of `hub_id`'s `split`, from the local cache, else downloaded if the Hub is reachable."""
    import datasets

    kwargs: dict[str, Any] = {"split": split}
    if config:
        kwargs["name"] = config
    if data_files:
        kwargs["data_files"] = dict(data_files)
    with _offline(True):
        try:
            return datasets.load_dataset(hub_id, **kwargs)
        except Exception as e:  # noqa: BLE001 - classified below
            if not _is_missing_error(e):
                raise
    args = ", ".join(
        [repr(hub_id)]
        + ([repr(config)] if config else [])
        + [f"split={split!r}"]
        + ([f"data_files={dict(data_files)!r}"] if data_files else [])
    )
    how = (
        f'download it on a machine with internet: python -c "import datasets; datasets.load_dataset({args})" '
        "and copy the Hugging Face cache (~/.cache/huggingface) here, "
        "or pass path= to a local copy of its files"
    )
    if not hub_reachable():
        raise DatasetUnavailable(
            f"dataset {name!r} ({hub_id}) is not in the local Hugging Face cache "
            f"and the Hub is unreachable; {how}"
        )
    try:
        with _offline(False):
            return datasets.load_dataset(hub_id, **kwargs)
    except Exception as e:  # noqa: BLE001 - re-raised with context
        if not _is_missing_error(e):
            raise
        raise DatasetUnavailable(f"dataset {name!r} ({hub_id}) could not be downloaded ({e}); {how}") from e


def find_files(root: Path, patterns: Sequence[str]) -> list[Path]:
    """Files under `root` (or `root` itself) matching any glob pattern, in a stable order."""
    if root.is_file():
        return [root]
    found: dict[Path, None] = {}
    for pattern in patterns:
        for p in sorted(root.glob(pattern)) or sorted(root.rglob(Path(pattern).name)):
            if p.is_file():
                found[p] = None
    return list(found)


def load_file_rows(files: Sequence[Path]) -> Iterable[Mapping[str, Any]]:
    """Rows of local JSON/JSONL/parquet files through `datasets` (streaming: nothing is cached)."""
    import datasets

    suffixes = {p.suffix.lower() for p in files}
    if suffixes <= {".json", ".jsonl"}:
        builder = "json"
    elif suffixes == {".parquet"}:
        builder = "parquet"
    else:
        raise ValueError(f"cannot load a mix of file types {sorted(suffixes)}: {[str(p) for p in files]}")
    with _offline(True):
        return datasets.load_dataset(
            builder, data_files=[str(p) for p in files], split="train", streaming=True
        )
