"""What the repro commands show while stages run: progress bars on a console bound to the terminal, and the
stages' own output (transformers' log lines, loading bars, warnings) in a log file instead.

Why: the stages are library calls (world make's `progress`, synth's `on_outcome`, the trainers' callbacks
through `training.progress.StepLogger`, eval's `progress`) that report (done, total) each its own way and
print freely; `vgt repro tiny` and `vgt repro table` turn the first into bars with the same columns and
keep the rest for the log. The view console is bound to the output file when it is made, so the bars
still reach the terminal while `quiet` redirects Python's stdout and stderr.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

Update = Callable[[int, int, str], None]  # (done, total, info)


def bind_console(console: Console) -> Console:
    """A console writing where `console` writes now, whatever later redirects sys.stdout."""
    return Console(file=console.file, width=console.width, force_terminal=console.is_terminal,
                   no_color=console.no_color)


@contextlib.contextmanager
def logged_output(log: Path) -> Iterator[None]:
    """Python's stdout/stderr (transformers' bars and warnings) go to a log file (appended) meanwhile."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        yield


def quiet(log: Path, fn: Callable[..., Any], *args: Any) -> Any:
    """Run fn with its output in a log file."""
    with logged_output(log):
        return fn(*args)


class StageProgress:
    """`with stages.stage(name) as bar:` then `update = bar(description, total)`; each stage's output goes to
    `logs/<name>.log`, its wall time to `seconds`."""

    def __init__(self, console: Console, logs: Path) -> None:
        self.view = bind_console(console)
        self.logs = logs
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[Callable[[str, int], Update]]:
        started = time.perf_counter()
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[info]}"), TimeElapsedColumn())
        with Progress(*columns, console=self.view) as progress, \
                logged_output(self.logs / (name.replace(" ", "-") + ".log")):

            def bar(description: str, total: int) -> Update:
                task = progress.add_task(description, total=total, info="")
                return lambda done, total, info: progress.update(task, completed=done, total=total, info=info)

            yield bar
        self.seconds[name] = round(time.perf_counter() - started, 1)
