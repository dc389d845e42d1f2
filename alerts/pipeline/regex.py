"""Regexes of silence matchers, run in linear time (RE2, as Alertmanager's are).

A silence's regex is tried against every delivery it may mute, in the relay that sends everyone's
alerts. Python's backtracking ``re`` can take exponential time on a pattern such as ``(a+)+$`` (or
high polynomial time on ``.*a.*a.*a.*a.*b``), so one silence, made by any user of the server, could
stall every delivery. RE2 matches in time linear in the text; it refuses what it cannot do so
(backreferences, lookaround), which a silence has no use for.
"""

from __future__ import annotations

import functools
import re

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a bad pattern is our ValueError, not a line on stderr
MAX_PATTERN = 1000  # characters: enough for any label regex


@functools.lru_cache(maxsize=1024)
def compile_linear(pattern: str):
    """``pattern`` compiled by RE2; ``ValueError`` saying why if it is not a regex RE2 runs."""
    if len(pattern) > MAX_PATTERN:
        raise ValueError(f"a regex is at most {MAX_PATTERN} characters")
    try:
        re.compile(pattern)  # Python's messages say where the mistake is
    except re.error as exc:
        raise ValueError(f"bad regex: {exc}") from None
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        problem = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(f"bad regex: {problem} (RE2 syntax: no backreferences or lookaround)") from None


def fullmatch(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches all of ``text`` (linear time)."""
    return compile_linear(pattern).fullmatch(text) is not None
