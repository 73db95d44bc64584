"""Command-line values converted without pydantic, for the parameter types vgt's commands use.

typer converts every parameter's value (even an absent one) through a pydantic `TypeAdapter` it builds the
first time the parameter is processed: importing pydantic and building the adapters is ~0.1 s of CPU, more
than the rest of `vgt traces list`. A value typer would return as it is or convert trivially (no value, a
string, a path, a plain decimal number within the option's bounds, exactly one of a `Literal`'s choices) gets
the same result here; any other value, and every bad one, goes to typer's own conversion, so results, error
messages and exit codes are typer's.

This uses typer internals, checked by `tests/test_cli_coercion.py` against typer's own conversion: a
`typer.core._TyperParameter` builds its converter lazily into `_runtime_param` (from its `type_descriptor`)
unless one is there, and calls `coerce(value, param=, ctx=)` on it. A parameter without those attributes is
left to typer.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import typer.core

TYPER = object()  # "not a value this module converts": typer's own conversion decides
Converter = Callable[[Any, Any], Any]  # (value, click context) -> the converted value, or TYPER
_TYPER_PARAMETER = getattr(typer.core, "_TyperParameter", None)  # absent: every parameter is left to typer


def _text(value: Any) -> bool:
    """A plain `str` that is valid UTF-8 (anything else, lone surrogates included, is left to typer)."""
    if type(value) is not str:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _integer(text: str) -> bool:
    """`-?(0|[1-9][0-9]*)`: a plain decimal integer (no sign but minus, no leading zeros, spaces or `_`)."""
    digits = text[1:] if text.startswith("-") else text
    return _digits(digits) and (digits == "0" or not digits.startswith("0"))


def _decimal(text: str) -> bool:
    """A plain integer, or one with `.` and digits after it (no exponent, inf or nan)."""
    whole, dot, fraction = text.partition(".")
    return _integer(whole) and (not dot or _digits(fraction))


def _within(number: float, info: Any) -> bool:
    return (info.min is None or number >= info.min) and (info.max is None or number <= info.max)


def _convert_str(value: Any, ctx: Any) -> Any:
    return value if _text(value) else TYPER


def _converter_number(number: type, plain: Callable[[str], bool], info: Any) -> Converter:
    """An int or float option: its own type, or plain text of one (`plain`), within the option's bounds."""
    def convert(value: Any, ctx: Any) -> Any:
        if _text(value) and plain(value):
            value = number(value)
        return value if type(value) is number and _within(value, info) else TYPER

    return convert


def _converter_path(path_type: type[Path], info: Any) -> Converter:
    def convert(value: Any, ctx: Any) -> Any:
        if not _text(value) or not value or "\x00" in value:
            return TYPER
        path = path_type(value)
        try:
            os.stat(path)
        except OSError:  # a path that is not there yet is fine (no `exists=True`)
            return path
        return TYPER if info.readable and not os.access(path, os.R_OK) else path

    return convert


def _converter_choice(choices: tuple[str, ...], case_sensitive: bool) -> Converter:
    """The first choice equal to the value (casefolded when not case-sensitive), as typer picks it."""

    def fold(text: str) -> str:
        return text if case_sensitive else text.casefold()

    def convert(value: Any, ctx: Any) -> Any:
        if getattr(ctx, "token_normalize_func", None) is not None or not _text(value):
            return TYPER
        return next((choice for choice in choices if fold(choice) == fold(value)), TYPER)

    return convert


def _plain_path_options(info: Any) -> bool:
    """A `Path` option with typer's default checks (no exists/resolve/dash/writable, files and dirs both ok)."""
    return (info.path_type is None and not info.exists and not info.resolve_path and not info.allow_dash
            and not info.writable and info.file_okay and info.dir_okay)


def converter_for(annotation: Any, info: Any) -> Converter | None:
    """The converter for a parameter typed `annotation` (typer's, Optional already removed) with typer's
    `ParameterInfo` `info`, or None when this module leaves the type to typer."""
    if info.parser is not None:
        return None
    if annotation is bool:  # typer passes a flag's True/False through; only `None` (no value) reaches coerce
        return lambda value, ctx: TYPER
    if annotation is str:
        return _convert_str
    if annotation is int and not info.clamp:
        return _converter_number(int, _integer, info)
    if annotation is float and not info.clamp:
        return _converter_number(float, _decimal, info)
    if isinstance(annotation, type) and issubclass(annotation, Path) and _plain_path_options(info):
        return _converter_path(annotation, info)
    if get_origin(annotation) is Literal:
        choices = get_args(annotation)
        if all(type(c) is str for c in choices):
            return _converter_choice(choices, info.case_sensitive)
    return None


@dataclass
class Conversion:
    """What typer calls to convert one parameter's value: this module's converter, else typer's own."""

    convert: Converter
    typers: Any = field(default=None, repr=False)  # typer's own conversion, built when first needed

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None:  # installed on single-value parameters only: no value stays None, as typer has it
            return None
        converted = self.convert(value, ctx)
        if converted is not TYPER:
            return converted
        if self.typers is None:
            from typer._coercion import build_runtime_param

            self.typers = build_runtime_param(param.type_descriptor)
        return self.typers.coerce(value, param=param, ctx=ctx)


def install(param: Any) -> bool:
    """Give one typer parameter this module's conversion, when its type is one it converts; whether it did."""
    if _TYPER_PARAMETER is None or not isinstance(param, _TYPER_PARAMETER):
        return False
    if getattr(param, "_runtime_param", TYPER) is not None:
        return False
    if param.nargs != 1 or param.multiple:
        return False
    descriptor = getattr(param, "type_descriptor", None)
    convert = None if descriptor is None else converter_for(descriptor.annotation, descriptor.parameter_info)
    if convert is None:
        return False
    param._runtime_param = Conversion(convert)
    return True


def install_all(command: Any, parent: Any = None) -> None:
    """Install on every parameter of `command`, its help option included, and of every command under it.

    click makes a command's `--help` option when a run first asks for it, with the names its context has
    (`help_option_names`, from `context_settings` or the parent's); it is made here the same way, from a
    context made as `make_context` makes it."""
    ctx = command.context_class(command, parent=parent, **command.context_settings)
    for param in [*command.params, command.get_help_option(ctx)]:
        install(param)
    for sub in getattr(command, "commands", {}).values():
        install_all(sub, ctx)


class VgtGroup(typer.core.TyperGroup):
    """The root `vgt` group (`typer.Typer(cls=VgtGroup)`): every command under it converts values here."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        install_all(self)
