"""What every command shares: the exit-code contract, redacted command lines, JSON output (safe terminal text
is `vgt_agent/terminal.py`).

Exit codes, the same for every `vgt` command:

    0    done
    1    the work failed: no answer, refused, every sample failed, an unreachable server,
         a store locked by another writer (one line on stderr; the run is stored with its status)
    2    bad input or usage (one line on stderr, nothing written)
    130  interrupted (Ctrl-C or SIGTERM; the store run ends `interrupted`, resumable where the command says)
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import typer
from rich.console import Console

from vgt_agent.terminal import plain_text

console = Console()
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_CODES = {
    EXIT_OK: "done",
    EXIT_FAILED: "the work failed (no answer, refused, every sample failed, unreachable server, store locked)",
    EXIT_USAGE: "bad input or usage (one line on stderr, nothing written)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C or SIGTERM; the run ends `interrupted`)",
}

_JSON_UNSAFE = re.compile(r"[\x7f-\x9f\ud800-\udfff]")  # json.dumps escapes C0 itself, not these
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")  # a URL inside free text (a command line, a message)


def redact_credentials(text: str) -> str:
    """Every URL in `text` redacted as the backends show one (`user:key@` and secret query values -> `***`),
    so no key reaches the terminal, a log or the store."""
    from vgt_agent.backends.base import redact_url

    return _URL.sub(lambda m: redact_url(m.group()), text)


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command line as a run records it (`runs.command`): credentials in URLs redacted."""
    return redact_credentials(" ".join(sys.argv if argv is None else argv))


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def undecodable(values: Sequence[str]) -> str | None:
    """The first value that was not valid UTF-8 where it came from (argv, environment), shown escaped."""
    for value in values:
        if _has_surrogates(value):
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return None


def _one_line(message: str) -> str:
    return " ".join(redact_credentials(plain_text(message)).split())


def usage_error(message: str) -> NoReturn:
    """Bad input: one line on stderr, exit 2."""
    err_console.print(f"error: {_one_line(message)}", markup=False)
    raise typer.Exit(EXIT_USAGE)


def work_failed(message: str) -> NoReturn:
    """The work itself failed: one line on stderr, exit 1."""
    err_console.print(f"error: {_one_line(message)}", markup=False)
    raise typer.Exit(EXIT_FAILED)


def interrupted(message: str) -> NoReturn:
    """Stopped by Ctrl-C or SIGTERM: one line on stderr saying how to continue, exit 130."""
    err_console.print(f"interrupted: {_one_line(message)}", markup=False)
    raise typer.Exit(EXIT_INTERRUPTED)


def quiet_loading(*, transformers_now: bool = False) -> None:
    """No library progress bars on stderr ("Loading weights"): a successful command writes nothing there.
    The environment covers libraries imported later; `transformers_now` also switches transformers' bars off
    in this process (commands that load a model in-process call it first)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # read by huggingface_hub and transformers
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    if transformers_now or "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def print_json(data: Any) -> None:
    """Machine-readable output on stdout, one document (control characters JSON-escaped, never raw)."""
    text = json.dumps(data, indent=2, default=str, ensure_ascii=False)
    sys.stdout.write(_JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")
