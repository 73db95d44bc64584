"""`vgt_agent/cli/coercion.py` converts command-line values as typer does, without pydantic.

The module relies on typer internals (a parameter's lazily built `_runtime_param`, its `type_descriptor`,
`typer._coercion.build_runtime_param`); these tests use the same ones, so a typer release that changes them
fails here, and each value's result is compared with typer's own conversion of it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import pytest
import typer
from typer._coercion import build_runtime_param
from typer.main import get_command

from vgt_agent.cli.coercion import TYPER, Conversion, converter_for, install_all

ROOT = Path(__file__).resolve().parent.parent

probe = typer.Typer()


@probe.command()
def _probe(
    where: Path = typer.Argument(None),
    text: str = typer.Option(None),
    count: int = typer.Option(20, min=1),
    ratio: float = typer.Option(None, min=0, max=1e6),
    path: Path = typer.Option(None),
    kind: Literal["point", "box"] | None = typer.Option(None),
    coords: Literal["unit", "Unit2", "UNIT"] | None = typer.Option(None, case_sensitive=False),
    flag: bool = typer.Option(None, "--flag/--no-flag"),
) -> None:
    """A parameter of each type vgt's commands use."""


TEXTS = ["abc", "", " a b ", "-", "--x", "a\x00b", "é✓", "\udcff", "[red]x[/]"]
PATHS = ["a", "", ".", "/", "/tmp", "/nonexistent/x.db", "~/x", "a/../b/", "-", "a\x00b", "x" * 300, "\udcff",
         "/etc/shadow", "/root"]
# (parameter, values): the values typer converts trivially come first; this module must convert those itself
CASES: dict[str, tuple[list[Any], list[Any]]] = {
    "text": (["abc", "", " a b ", "-", "é✓", "[red]x[/]"], ["a\x00b", "\udcff", 3]),
    "count": (["1", "20", "12345678901234567890", 20, 5], ["0", "-0", "-1", "007", "1_0", " 5", "１", "x", "1.0", 1.5,
                                                              True, 0]),
    "ratio": (["0", "0.5", "-0", "-0.0", "1000000", "12.25", 0.5, 1e6],
              ["1e3", "nan", "inf", "-1", "1000001", "1.", ".5", "x", " 1", 5, True]),
    "where": (["a", ".", "/tmp", "/nonexistent/x.db", "~/x", "a/../b/", "-", "/root", "x" * 300], ["", 3]),
    "path": (["a", "/", "/tmp", "/nonexistent/x.db"], ["", "a\x00b", "\udcff"]),
    "kind": (["point", "box"], ["POINT", "x", "", "\udcff"]),
    "coords": (["unit", "Unit", "UNIT", "unit2", "Unit2"], ["x", ""]),
    "flag": ([], ["yes", "0"]),
}


def _outcome(convert: Any, value: Any) -> tuple[Any, ...]:
    try:
        result = convert(value)
    except Exception as e:  # noqa: BLE001 - the kind and message of any error are what is compared
        return ("error", type(e).__name__, str(e))
    return ("ok", type(result), result)


@pytest.fixture(scope="module")
def command() -> Any:
    return get_command(probe)


def _param(command: Any, name: str) -> Any:
    return next(p for p in command.params if p.name == name)


@pytest.mark.parametrize("name", list(CASES))
def test_each_value_converts_as_typer_converts_it(command: Any, name: str) -> None:
    param = _param(command, name)
    ctx = typer.Context(command)
    typers = build_runtime_param(param.type_descriptor)
    convert = converter_for(param.type_descriptor.annotation, param.type_descriptor.parameter_info)
    assert convert is not None
    ours = Conversion(convert)
    plain, other = CASES[name]
    for value in [None, *plain, *other]:
        expected = _outcome(lambda v: typers.coerce(v, param=param, ctx=ctx), value)
        assert _outcome(lambda v: ours.coerce(v, param=param, ctx=ctx), value) == expected, value
    for value in plain:  # converted here, without pydantic
        assert convert(value, ctx) is not TYPER, value


def test_typer_uses_the_installed_conversion(command: Any) -> None:
    """The hook itself: typer calls what is in `_runtime_param` instead of building its own."""
    install_all(command)
    param = _param(command, "count")
    assert isinstance(param._runtime_param, Conversion)
    assert param.get_runtime_param() is param._runtime_param
    ctx = command.make_context("probe", ["--count", "3", "--kind", "box"])
    assert (ctx.params["count"], ctx.params["kind"], ctx.params["text"]) == (3, "box", None)


def test_every_parameter_of_the_light_commands_converts_without_typer() -> None:
    """The root's options, `vgt traces list|show|stats|runs`, `vgt ask` and every `--help` option."""
    from vgt_agent.cli.main import build_app

    root = get_command(build_app(("ask", "traces")))
    commands = [root, root.commands["ask"], root.commands["traces"],
                *(root.commands["traces"].commands[n] for n in ("list", "show", "stats", "runs"))]
    for cmd in commands:
        for param in [*cmd.params, cmd.get_help_option(typer.Context(cmd))]:
            assert isinstance(param._runtime_param, Conversion), (cmd.name, param.name)


@pytest.mark.parametrize("argv", [("--help",), ("ask", "--help"), ("traces", "list"), ("traces", "show", "abcd"),
                                  ("traces", "stats"), ("traces", "runs", "--kind", "ask", "--json"),
                                  ("--lock-timeout", "2.5", "traces", "list", "--limit", "5", "--variant",
                                   "candidate", "--correct")])
def test_the_light_commands_import_no_pydantic(tmp_path: Path, argv: tuple[str, ...]) -> None:
    """Fails when a typer release stops using `_runtime_param`: pydantic would load again."""
    db = [] if argv[-1] == "--help" else ["--db", str(tmp_path / "missing.db")]
    code = ("import sys; from vgt_agent.cli.main import run; code = run(sys.argv[1:]); "
            "sys.stderr.write('\\n' + str('pydantic' in sys.modules)); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code, *argv, *db], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode in (0, 2), done.stderr  # 2: no store there (the options were all read by then)
    assert done.stderr.splitlines()[-1] == "False"


def test_a_bad_value_still_gets_typers_message(tmp_path: Path) -> None:
    """Values this module does not convert go to typer, whose message is the one line on stderr."""
    code = "from vgt_agent.cli.main import main; main()"
    done = subprocess.run([sys.executable, "-c", code, "traces", "list", "--limit", "0", "--db",
                           str(tmp_path / "x.db")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr == ("error: Invalid value for '--limit': Input should be greater than or equal to 1 "
                           "(see `vgt traces list --help`)\n")
    assert done.stdout == ""
