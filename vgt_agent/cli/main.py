"""The `vgt` command: one typer app with a sub-app per area, run under one exit-code contract (cli/common.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

import typer

from vgt_agent import __version__
from vgt_agent.cli import ask, repro, synth, traces, train, world
from vgt_agent.cli import eval as eval_cli
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
from vgt_agent.store.locks import LOCK_TIMEOUT_ENV
from vgt_agent.store.trace_store import StoreLocked
from vgt_agent.terminal import plain_text

app = typer.Typer(
    name="vgt",
    help="Visually grounded thinking for VLMs: ask, synthesize traces, train, evaluate, inspect.",
    epilog="Exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items()) + ".",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("ask")(ask.ask)
app.command("synth")(synth.synth)
app.add_typer(traces.app, name="traces")
app.add_typer(world.app, name="world")
app.add_typer(train.app, name="train")
app.add_typer(eval_cli.app, name="eval")
app.add_typer(repro.app, name="repro")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vgt {__version__}")
        raise typer.Exit()


@app.callback()
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
        code = app(args=list(argv), prog_name="vgt", standalone_mode=False)
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


def main() -> None:
    stop_on_sigterm()
    quiet_loading()
    code = run(sys.argv[1:])
    if code == EXIT_INTERRUPTED:
        # The command has ended its run `interrupted` and closed its store; requests still in flight in worker
        # threads (a server that never answers) must not hold the exit until their timeouts.
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":  # `python -m vgt_agent.cli.main ...` works like `vgt ...`
    main()
