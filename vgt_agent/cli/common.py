"""What every command shares: the exit-code contract and JSON output.

0 done, 1 the work failed, 2 bad input or usage (one clear line on stderr, nothing written).
"""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def usage_error(message: str) -> NoReturn:
    """Bad input: one line on stderr, exit 2."""
    err_console.print(f"error: {message}", markup=False)
    raise typer.Exit(EXIT_USAGE)


def work_failed(message: str) -> NoReturn:
    """The work itself failed: one line on stderr, exit 1."""
    err_console.print(f"error: {message}", markup=False)
    raise typer.Exit(EXIT_FAILED)


def print_json(data: Any) -> None:
    """Machine-readable output on stdout, one document."""
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
