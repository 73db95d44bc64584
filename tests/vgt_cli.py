"""`vgt ARGS` through the real entry point (`cli.main.run`), in process: what a user sees, including click's
own usage errors as the one line `run` makes of them (typer's CliRunner shows click's multi-line box)."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

from vgt_agent.cli.main import run


@dataclass(frozen=True)
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def vgt(*args: str) -> Result:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run(list(args))
    return Result(code, out.getvalue(), err.getvalue())
