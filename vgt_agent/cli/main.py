"""The `vgt` command: one typer app with a sub-app per area, run under one exit-code contract (cli/common.py).

Start-up: a run imports only the command it runs (`vgt traces list` loads nothing of ask, synth or train, and
each command module loads its heavy libraries inside the command); `vgt --help` and anything that names no
known command get every command. A run that loaded torch skips the interpreter's slow teardown once its
output is flushed and no store is open (`_exit_now`). `benchmarks/cli_startup.py` measures both.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

import typer

from vgt_agent import __version__
from vgt_agent.cli.coercion import VgtGroup
from vgt_agent.cli.common import (
    EXIT_CODES,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    err_console,
    quiet_loading,
    undecodable,
)
from vgt_agent.store.errors import StoreLocked
from vgt_agent.store.locks import LOCK_TIMEOUT_ENV
from vgt_agent.terminal import plain_text

# Every command, in the order `vgt --help` lists them: a command function or a sub-app, by module.
COMMANDS = ("ask", "synth", "traces", "world", "train", "eval", "repro")
_FUNCTIONS = ("ask", "synth")  # the others are sub-apps (`vgt traces list`)


def build_app(commands: Sequence[str] = COMMANDS) -> typer.Typer:
    """The `vgt` app with `commands` registered (all of them by default); only their modules are imported."""
    app = typer.Typer(
        name="vgt",
        help="Visually grounded thinking for VLMs: ask, synthesize traces, train, evaluate, inspect.",
        epilog="Exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items()) + ".",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,  # click's plain help: typer's rich help costs ~0.1 s of imports and layout a run
        cls=VgtGroup,  # converts option values without pydantic where typer's result is plain (cli/coercion.py)
    )
    for name in COMMANDS:
        if name in commands:
            module = importlib.import_module(f"vgt_agent.cli.{name}")
            if name in _FUNCTIONS:
                app.command(name)(getattr(module, name))
            else:
                app.add_typer(module.app, name=name)
    app.callback()(root)
    return app


def commands_for(argv: Sequence[str]) -> tuple[str, ...]:
    """The commands a run of `vgt ARGV` needs: the one it names (after the root's `--lock-timeout S`), else all
    of them (`vgt`, `vgt --help`, `vgt --version`, an unknown command and its suggestions)."""
    args = list(argv)
    while args and (args[0] == "--lock-timeout" or args[0].startswith("--lock-timeout=")):
        args = args[2:] if args[0] == "--lock-timeout" else args[1:]
    return (args[0],) if args and args[0] in COMMANDS else COMMANDS


def __getattr__(name: str) -> Any:
    if name == "app":  # the whole app, for `from vgt_agent.cli.main import app` (tests, CliRunner)
        globals()["app"] = value = build_app()
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vgt {__version__}")
        raise typer.Exit()


def root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit."),
         lock_timeout: float = typer.Option(None, "--lock-timeout", envvar=LOCK_TIMEOUT_ENV, min=0, max=1e6,
                                            help="Seconds to wait for another writer's lock on the trace store "
                                                 "before giving up (exit 1). Default 10.")) -> None:
    """vgt: grounded reasoning agent, trace synthesis, SFT/GRPO training and evaluation."""
    if lock_timeout is not None:  # every store this process (and its workers) opens reads it from there
        os.environ[LOCK_TIMEOUT_ENV] = str(lock_timeout)


def _terminated(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def stop_on_sigterm() -> None:
    """SIGTERM (`kill`, a scheduler's time limit) stops a command as Ctrl-C does: its store run is ended
    `interrupted` with what it measured, not left `running`, each command's resume rules apply, exit 130."""
    signal.signal(signal.SIGTERM, _terminated)


def run(argv: Sequence[str]) -> int:
    """Run `vgt ARGV` and return its exit code: 0 done, 1 failed, 2 bad input or usage (one line on stderr,
    nothing written), 130 interrupted. Arguments or VGT_* settings that are not UTF-8 are bad input."""
    settings = [v for k, v in os.environ.items() if k.startswith("VGT_")]
    bad = undecodable([*argv, *settings])
    if bad is not None:
        err_console.print(f"error: '{plain_text(bad)}' is not valid UTF-8; pass paths and text as UTF-8",
                          markup=False)
        return EXIT_USAGE
    try:
        code = build_app(commands_for(argv))(args=list(argv), prog_name="vgt", standalone_mode=False)
    except typer.TyperException as e:  # click's errors as typer vendors them
        if type(e).__name__ == "NoArgsIsHelpError":  # `vgt` or `vgt traces` alone: the help, as click shows it
            e.show()
            return e.exit_code
        # usage errors (unknown option, missing argument): one line
        where = f" (see `{e.ctx.command_path} --help`)" if getattr(e, "ctx", None) is not None else ""
        message = " ".join(e.format_message().split())
        err_console.print(f"error: {message}{where}", markup=False)
        return e.exit_code
    except typer.Abort:  # end of input at a prompt
        return EXIT_FAILED
    except StoreLocked as e:  # another writer held the store past the lock timeout, wherever the command wrote
        err_console.print(f"error: {plain_text(e)}", markup=False)
        return EXIT_FAILED
    return code if isinstance(code, int) else EXIT_OK


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _store_open() -> bool:
    """Whether this process still has a trace store open."""
    trace_store = sys.modules.get("vgt_agent.store.trace_store")
    return trace_store is not None and bool(trace_store._OPEN_FILES)


def _exit_now(code: int) -> None:
    """End a run that loaded torch without the interpreter's teardown (~2 s of freeing torch's and
    transformers' modules, `docs/cli-startup.md`), when that is safe: every store closed, no other thread
    that a normal exit would wait for, the atexit handlers run (logging, temporary files, worker pools) and
    stdout/stderr flushed. Otherwise nothing happens and the caller exits normally, with the same code."""
    if "torch" not in sys.modules or _store_open():
        return
    main_thread = threading.main_thread()
    if any(t is not main_thread and t.is_alive() and not t.daemon for t in threading.enumerate()):
        return
    run_exitfuncs = getattr(atexit, "_run_exitfuncs", None)
    if run_exitfuncs is None:  # not CPython
        return
    run_exitfuncs()
    _flush()
    os._exit(code)


def main() -> None:
    stop_on_sigterm()
    quiet_loading()
    code = run(sys.argv[1:])
    if code == EXIT_INTERRUPTED:
        # The command has ended its run `interrupted` and closed its store; requests still in flight in worker
        # threads (a server that never answers) must not hold the exit until their timeouts.
        _flush()
        os._exit(code)
    _exit_now(code)
    sys.exit(code)


if __name__ == "__main__":  # `python -m vgt_agent.cli.main ...` works like `vgt ...`
    main()
