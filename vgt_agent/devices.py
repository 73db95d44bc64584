"""Where an in-process model runs and in which precision: `--device` / `--dtype`, resolved once per command.

`auto` picks the fastest place that is really there: CUDA in bfloat16 (float16 on GPUs without bf16 support),
else Apple's MPS in float32, else the CPU in float32. MPS gets float32 because Gemma3's activations overflow
float16 and MPS bfloat16 support depends on the macOS version; `--dtype float16` still asks for it. float16 on
the CPU is refused: torch has no fast CPU kernels for it and several ops (convolutions, some norms) are missing
or slow; bfloat16 on the CPU is allowed (it runs, and halves memory). A device that is not there, or a
precision the device cannot do, is a `DeviceError` with one line (the CLI's exit 2).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
DTYPES = ("auto", "float32", "bfloat16", "float16")
_CUDA = re.compile(r"cuda(?::(\d+))?")


class DeviceError(ValueError):
    """A device or precision that cannot be used here (one line, for the CLI's exit 2)."""


@dataclass(frozen=True)
class Placement:
    """A resolved device ("cpu", "cuda:0", "mps") and dtype name ("float32", "bfloat16", "float16")."""

    device: str
    dtype: str

    @property
    def kind(self) -> str:
        """cpu | cuda | mps: what the training stack needs to know."""
        return self.device.split(":")[0]

    @property
    def torch_dtype(self) -> Any:
        import torch

        return getattr(torch, self.dtype)

    @property
    def torch_device(self) -> Any:
        import torch

        return torch.device(self.device)

    @property
    def label(self) -> str:
        """How results print it: `cpu/float32`, `cuda:0/bfloat16`."""
        return f"{self.device}/{self.dtype}"

    def as_dict(self) -> dict[str, str]:
        return {"device": self.device, "dtype": self.dtype}


CPU_FLOAT32 = Placement("cpu", "float32")


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return f"cuda:{torch.cuda.current_device()}"
        return "mps" if _mps_available() else "cpu"
    if device == "cpu":
        return "cpu"
    if device == "mps":
        if not _mps_available():
            raise DeviceError("--device mps: no Apple MPS device here (torch.backends.mps.is_available() is False)")
        return "mps"
    match = _CUDA.fullmatch(device)
    if match is None:
        raise DeviceError(f"--device must be one of {', '.join(DEVICE_CHOICES)}, not {device!r}")
    if not torch.cuda.is_available():
        build = f"torch {torch.__version__} built for CUDA {torch.version.cuda}" if torch.version.cuda \
            else f"torch {torch.__version__} is a CPU-only build"
        raise DeviceError(f"--device {device}: no CUDA device is available ({build}); use --device cpu or auto")
    index = int(match.group(1)) if match.group(1) is not None else torch.cuda.current_device()
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(f"--device {device}: only {count} CUDA device(s) here (cuda:0..cuda:{count - 1})")
    return f"cuda:{index}"


def _resolve_dtype(dtype: str, device: str) -> str:
    import torch

    kind = device.split(":")[0]
    if dtype == "auto":
        if kind == "cuda":
            return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        return "float32"
    if dtype not in DTYPES:
        raise DeviceError(f"--dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    if kind == "cpu" and dtype == "float16":
        raise DeviceError("--dtype float16 on the CPU is not supported (torch lacks fast CPU float16 kernels); "
                          "use float32 or bfloat16")
    if kind == "cuda" and dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
        raise DeviceError(f"--dtype bfloat16: {device} ({torch.cuda.get_device_name(device)}) has no bfloat16 "
                          "support; use float16 or float32")
    return dtype


def resolve_placement(device: str | None = None, dtype: str | None = None) -> Placement:
    """The placement for `--device` / `--dtype` (None: env `VGT_DEVICE` / `VGT_DTYPE`, else `auto`)."""
    device = (device or os.environ.get("VGT_DEVICE") or "auto").strip().lower()
    dtype = (dtype or os.environ.get("VGT_DTYPE") or "auto").strip().lower()
    resolved = _resolve_device(device)
    return Placement(resolved, _resolve_dtype(dtype, resolved))


def trainer_device_args(placement: Placement) -> dict[str, Any]:
    """The TrainingArguments a placement implies, the one place training decides them.

    CPU: TRL trains there only with `use_cpu=True`, no float16 autocast and no gradient checkpointing;
    bfloat16 on the CPU is CPU autocast. CUDA: bf16 or fp16 mixed precision from the dtype (float32: neither).
    MPS: the Trainer uses it by itself when `use_cpu` is off; float16 autocast is not offered there.
    `activation_checkpointing` is transformers' newer name for `gradient_checkpointing`; callers keep only
    the keys their config class has.
    """
    bf16, fp16 = placement.dtype == "bfloat16", placement.dtype == "float16"
    if placement.kind == "cpu":
        return {"use_cpu": True, "bf16": bf16, "fp16": False, "gradient_checkpointing": False,
                "activation_checkpointing": False}
    if placement.kind == "mps":
        return {"use_cpu": False, "bf16": bf16, "fp16": False}
    return {"use_cpu": False, "bf16": bf16, "fp16": fp16}


def trainer_placement(args: Any) -> Placement:
    """Where a built TrainingArguments trains, as a placement (what the run records): the Trainer picks the
    CUDA index itself (`accelerate launch`, LOCAL_RANK), so a GPU run is recorded as `cuda`."""
    import torch

    if getattr(args, "use_cpu", False):
        device = "cpu"
    elif torch.cuda.is_available():
        device = "cuda"
    else:
        device = "mps" if _mps_available() else "cpu"
    dtype = "bfloat16" if getattr(args, "bf16", False) else "float16" if getattr(args, "fp16", False) else "float32"
    return Placement(device, dtype)
