"""TRL arguments for a run: TRL's defaults < the device's needs < `--config` YAML < explicit CLI flags.

The YAML holds plain `SFTConfig` / `GRPOConfig` fields (e.g. `learning_rate: 1.0e-5`); an unknown key is a
usage error naming it, never silently ignored. Without CUDA the run is put on the CPU the only way TRL
trains there (`use_cpu=True`, `bf16=False`, `gradient_checkpointing=False`), overriding what the YAML says.
An explicit `--device`/`--dtype` placement decides `use_cpu`/`bf16`/`fp16` (`devices.trainer_device_args`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from vgt_agent.devices import CPU_FLOAT32, Placement, resolve_placement, trainer_device_args

T = TypeVar("T")

CPU_ARGS: dict[str, Any] = trainer_device_args(CPU_FLOAT32)


class ConfigError(ValueError):
    """A config the run cannot start with (one line, for the CLI's exit 2)."""


def load_yaml(path: Path | None) -> dict[str, Any]:
    """The TRL arguments in a YAML file; {} without a file."""
    if path is None:
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror or e}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"config {path} is not valid YAML: {str(e).splitlines()[0]}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping of TRL arguments, not {type(data).__name__}")
    return data


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def build_args(config_cls: type[T], *, yaml_args: Mapping[str, Any], overrides: Mapping[str, Any],
               defaults: Mapping[str, Any] | None = None, reserved: Mapping[str, str] | None = None,
               cuda: bool | None = None, placement: Placement | None = None) -> T:
    """The TRL config: `defaults`, then YAML, then `overrides` (None values skipped), then what the device
    needs: an explicit `placement`'s settings, or without one the CPU settings when there is no GPU. Without
    a placement on a real GPU, `--dtype auto`'s precision (bf16, fp16 where the GPU has no bf16) goes in
    before the YAML, so the YAML may still choose another. `reserved` keys (vgt sets them from its own flags)
    may not come from the YAML."""
    known = {f.name for f in dataclasses.fields(config_cls)}  # type: ignore[arg-type]
    unknown = sorted(set(yaml_args) - known)
    if unknown:
        raise ConfigError(f"unknown {config_cls.__name__} argument(s) in the config: {', '.join(unknown)}")
    for key, flag in (reserved or {}).items():
        if key in yaml_args:
            raise ConfigError(f"set {key} with {flag}, not in the config file")
    merged: dict[str, Any] = dict(defaults or {})
    gpu = has_cuda() if cuda is None else cuda
    if placement is None and gpu:
        auto = resolve_placement("auto", "auto")
        if auto.kind == "cuda":
            merged.update({k: v for k, v in trainer_device_args(auto).items() if k in known})
    merged.update(yaml_args)
    merged.update({k: v for k, v in overrides.items() if v is not None})
    if placement is not None:
        merged.update({k: v for k, v in trainer_device_args(placement).items() if k in known})
    elif not gpu:
        merged.update({k: v for k, v in CPU_ARGS.items() if k in known})
    try:
        return config_cls(**merged)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"invalid {config_cls.__name__}: {str(e).strip().splitlines()[0]}") from e


def loggable(args: Any) -> dict[str, Any]:
    """The JSON-able part of a TRL config, for the run record in the store."""
    out = {}
    for key, value in args.to_dict().items():
        if value is None or isinstance(value, bool | int | float | str):
            out[key] = value
        elif isinstance(value, list | tuple) and all(isinstance(v, bool | int | float | str) for v in value):
            out[key] = list(value)
    return out
