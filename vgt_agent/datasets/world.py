"""The embedded world as a dataset: splits generated on first use, then read from disk.

Generation is deterministic (a sample is a pure function of split seed, index and style), so a cached folder
is as good as a fresh one as long as it was written by the same generator version in the split's style; a
stale cache is rebuilt. The `-varied` twins of the benchmarks load the same way as the canonical splits.
The world modules are imported on first use, so loading the adapters does not load the scene generator.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from vgt_agent.home import vgt_home
from vgt_agent.sample import Sample


def world_cache_dir(split: str) -> Path:
    """Where a generated split is cached: `$VGT_HOME/world/<split>`."""
    return vgt_home() / "world" / split


def is_world_dir(path: Path) -> bool:
    """Whether `path` is a complete world split folder."""
    from vgt_agent.world import storage

    return storage.is_split_dir(path)


def ensure_split(split: str, path: Path | None = None) -> Path:
    """The folder of `split`, generated (default size, seed and style) when missing, from an older generator
    or in another style (a folder from before styles existed is canonical)."""
    from vgt_agent.world import storage
    from vgt_agent.world.generate import GENERATOR_VERSION
    from vgt_agent.world.splits import get_split

    out = path if path is not None else world_cache_dir(split)
    if storage.is_split_dir(out):
        info = storage.read_info(out)
        if (
            info.get("split") == split and str(info.get("generator_version")) == GENERATOR_VERSION
            and info.get("style", "canonical") == get_split(split).style
        ):
            return out
    storage.make_split(out, split)
    return out


def read_world(path: Path) -> Iterator[Sample]:
    """The samples of an existing world split folder."""
    from vgt_agent.world import storage

    return storage.load_split(path)


def world_split_name(path: Path) -> str:
    """The split a world folder was generated from (from its info.json)."""
    from vgt_agent.world import storage

    return str(storage.read_info(path)["split"])
