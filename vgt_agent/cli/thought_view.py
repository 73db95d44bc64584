"""A grounded thought as rich text: groundings, tool requests and the boxed answer highlighted."""

from __future__ import annotations

from rich.text import Text

from vgt_agent.terminal import plain_text


def highlight_thought(text: str) -> Text:
    """Colour each `<obj>` tag by its phrase (as the annotated PNG does), `<ground>` requests and `\\boxed{}`.

    The text is shown as text: Rich markup in it (`[/]`, `[green]`) prints literally, and control characters
    (terminal escape sequences, carriage returns) print as visible symbols of the same length, so the spans
    parsed from the original text still line up."""
    from vgt_agent.format import find_boxed, parse
    from vgt_agent.mark_colours import phrase_colours

    out = Text(plain_text(text))
    thought = parse(text)
    for g, (r, gr, b) in zip(thought.groundings, phrase_colours([g.phrase for g in thought.groundings]),
                             strict=True):
        out.stylize(f"bold rgb({r},{gr},{b})", *g.span)
    for request in thought.tool_requests:
        out.stylize("bold magenta reverse", *request.span)
    for _, span in find_boxed(text):
        out.stylize("bold black on yellow", *span)
    return out
