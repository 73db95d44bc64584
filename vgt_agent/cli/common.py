"""What every command shares: the exit-code contract, safe terminal text, redacted command lines, JSON output.

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
from rich.markup import escape

from vgt_agent.backends.base import redact_url

console = Console()
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_CODES = {
    EXIT_OK: "done",
    EXIT_FAILED: "the work failed (no answer, refused, every sample failed, unreachable server, store locked)",
    EXIT_USAGE: "bad input or usage (one line on stderr, nothing written)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C or SIGTERM; the run ends `interrupted`)",
}

# C0 and C1 control characters (ESC, CSI, BEL, CR, backspace, ...) except tab and newline, DEL, and lone
# surrogates (bytes that were not UTF-8 where the text came from).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_JSON_UNSAFE = re.compile(r"[\x7f-\x9f\ud800-\udfff]")  # json.dumps escapes C0 itself, not these
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")  # a URL inside free text (a command line, a message)


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # Unicode's control pictures: ESC shows as ␛, CR as ␍, BEL as ␇
    return "\u2421" if code == 0x7F else "\ufffd"


def plain_text(text: object) -> str:
    """Text from a model or a store, safe to write to a terminal as is: each control character (escape
    sequences, carriage returns, bells) and lone surrogate becomes one visible character, so offsets into
    the text (grounding spans) still hold."""
    return _CONTROL.sub(_visible, str(text))


def safe_text(text: object) -> str:
    """`plain_text` escaped for Rich markup: `[/]` or `[green]` from a model prints as those characters.
    Every printer that puts model or store text inside a markup string goes through this."""
    return escape(plain_text(text))


def redact_credentials(text: str) -> str:
    """Every URL in `text` redacted as the backends show one (`user:key@` and secret query values -> `***`),
    so no key reaches the terminal, a log or the store."""
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
