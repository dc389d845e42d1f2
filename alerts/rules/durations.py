"""Durations as rule files write them: ``30s``, ``10m``, ``4h``, ``1d``, ``1h30m``, ``500ms``."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$")


def parse_duration(text: str) -> float:
    """Seconds in a duration string; ``ValueError`` naming the accepted form otherwise."""
    compact = str(text).strip().replace(" ", "")
    if not compact or not _WHOLE.match(compact):
        raise ValueError(f"{text!r} is not a duration (use a number and a unit: 30s, 10m, 4h, 1d, 1h30m, 500ms)")
    return sum(float(number) * _UNITS[unit] for number, unit in _PART.findall(compact))


def format_duration(seconds: float) -> str:
    """A short readable form: ``90`` -> ``1m30s``."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    out, rest = "", int(round(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out or "0s"
