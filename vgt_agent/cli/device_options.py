"""`--device` and `--dtype`, shared by every command that runs a model in-process (`vgt_agent.devices`)."""

from __future__ import annotations

import typer

from vgt_agent.cli.common import usage_error
from vgt_agent.devices import DEVICE_CHOICES, DTYPES, DeviceError, Placement, resolve_placement

DeviceOption = typer.Option(
    None, "--device", envvar="VGT_DEVICE", show_default=False,
    help=f"Where in-process models run: {' | '.join(DEVICE_CHOICES)} (default auto: CUDA, else MPS, else CPU).",
)
DtypeOption = typer.Option(
    None, "--dtype", envvar="VGT_DTYPE", show_default=False,
    help=f"Their precision: {' | '.join(DTYPES)} (default auto: bfloat16 on CUDA, float16 on GPUs without "
         "bf16, float32 on MPS and the CPU).",
)


def placement_or_exit(device: str | None, dtype: str | None) -> Placement:
    """The resolved placement, or exit 2 with one line (a device that is not here, a precision it cannot do)."""
    try:
        return resolve_placement(device, dtype)
    except DeviceError as e:
        usage_error(str(e))
