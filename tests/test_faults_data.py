"""The data-side faults found by trying to break vgt, one test each, named for the fault, its repro in the
docstring: parsers of model output, the store (merge, corruption, locks, read-only media, export targets) and
image decoding. Every test here failed on the code before its fix.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any


class _TooSlow(Exception):
    pass


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Fail the block after `seconds` of wall time (the regex engine checks signals, so a runaway match stops)."""

    def expire(*_: Any) -> None:
        raise _TooSlow(f"took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _seconds(fn: Callable[[str], Any], text: str, limit: float) -> float:
    start = time.perf_counter()
    with _deadline(limit):
        fn(text)
    return time.perf_counter() - start


# ---- parsers of model output ---------------------------------------------------------------------------


def test_answer_tag_with_a_whitespace_run_is_not_cubic() -> None:
    """`extract_answer("<answer>" + " " * 4000)` took 20 s (a lazy `.*?` between `\\s*`s backtracks cubically)."""
    from vgt_agent.answers import extract_answer

    assert _seconds(extract_answer, "<answer>" + " " * 100_000, 2.0) < 2.0


def test_repeated_answer_openers_are_not_quadratic() -> None:
    """`extract_answer("<answer>" * 20_000)` (160 KB) took 65 s: every opener scanned to the end for a closer."""
    from vgt_agent.answers import extract_answer

    assert _seconds(extract_answer, "<answer>" * 20_000, 2.0) < 2.0


def test_a_boxed_count_past_the_int_digit_limit_is_read_not_raised() -> None:
    """`check_answer("\\boxed{" + "1" * 5000 + "}", 3, "count")` raised ValueError (int() refuses > 4300 digits),
    crashing the reward or eval that scored it."""
    from vgt_agent.answers import check_answer, normalise_count

    check = check_answer("\\boxed{" + "1" * 5000 + "}", 3, "count")
    assert check.correct is False and check.predicted == "1" * 5000
    assert normalise_count("0" * 6000 + "7") == "7"


def test_router_reply_of_blank_lines_is_not_quadratic() -> None:
    """`parse_router_reply("\\n" * 100_000, 5, 5)` took minutes: `^\\W*` ran from every line start to the end."""
    from vgt_agent.routing import parse_router_reply

    assert _seconds(lambda s: parse_router_reply(s, 5, 5), "\n" * 100_000, 2.0) < 2.0
    assert _seconds(lambda s: parse_router_reply(s, 5, 5), "-\n" * 50_000, 2.0) < 2.0


def test_extractor_fence_strip_on_a_whitespace_run_is_not_quadratic() -> None:
    """The LLM extractor's fence regex `\\s*```$` on `"{" + " " * 100_000 + "}"` took 40 s: every position of
    the run scanned it to its end."""
    from vgt_agent.synthesis import extract

    assert _seconds(lambda s: extract._FENCE.sub("", s), "{" + " " * 100_000 + "}", 2.0) < 2.0


def test_grounding_agent_tool_call_of_repeated_openers_is_not_quadratic() -> None:
    """`parse_tool_call("<tool>" * 30_000)` took seconds: `<tool>(.*?)</tool>` scanned to the end per opener."""
    from vgt_agent.synthesis.vlm_policy import parse_tool_call

    assert _seconds(parse_tool_call, "<tool>" * 30_000, 2.0) < 2.0
