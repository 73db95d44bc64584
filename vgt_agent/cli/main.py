"""The `vgt` command: one typer app with a sub-app per area."""

from __future__ import annotations

import signal
from typing import Any

import typer

from vgt_agent import __version__
from vgt_agent.cli import ask, repro, synth, traces, train, world
from vgt_agent.cli import eval as eval_cli

app = typer.Typer(
    name="vgt",
    help="Visually grounded thinking for VLMs: ask, synthesize traces, train, evaluate, inspect.",
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
                                      help="Print the version and exit.")) -> None:
    """vgt: grounded reasoning agent, trace synthesis, SFT/GRPO training and evaluation."""


def _terminated(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def stop_on_sigterm() -> None:
    """SIGTERM (`kill`, a scheduler's time limit) stops a command as Ctrl-C does: its store run is ended
    `interrupted` with what it measured, not left `running`, and each command's resume rules apply."""
    signal.signal(signal.SIGTERM, _terminated)


def main() -> None:
    stop_on_sigterm()
    app()


if __name__ == "__main__":  # `python -m vgt_agent.cli.main ...` works like `vgt ...`
    main()
