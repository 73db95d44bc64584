"""Text from a model or a store made safe to print on a terminal: the commands' printers and the training
report's tables go through these two functions."""

from __future__ import annotations

import re

from rich.markup import escape

# C0 and C1 control characters (ESC, CSI, BEL, CR, backspace, ...) except tab and newline, DEL, and lone
# surrogates (bytes that were not UTF-8 where the text came from).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


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
