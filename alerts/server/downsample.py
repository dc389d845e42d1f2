"""Downsampling a metric's series for a chart: M4 per step bucket, every non-finite value kept as a mark.

The steps ``lo..hi`` are cut into at most ``buckets`` buckets of equal width (in steps, so that the
series of several keys, and the alert marks, line up). Each bucket keeps the first, the lowest, the
highest and the last of its finite points (M4: the line drawn through them has the shape, and every
extreme, of the line through all the points), and for NaN, +Infinity and -Infinity the first step
where each occurs in the bucket, with how many there are. A chart therefore draws at most
``4 * buckets`` points and ``3 * buckets`` marks however long the run, and a NaN is never averaged
away or lost in a gap: at full zoom (a bucket a step wide) every one is its own mark.

Pure functions over plain lists: no store, no clock. The work per point is done by C built-ins
(``sum``, ``min``, ``max``, ``list.index`` over a bucket's slice); only buckets that hold a non-finite
value are walked point by point.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Optional, Sequence

NAN, POS_INF, NEG_INF = "NaN", "Infinity", "-Infinity"


@dataclass
class Mark:
    """Non-finite values of one kind in one bucket: the first step holding one, and how many."""

    step: int
    value: str  # NaN | Infinity | -Infinity
    count: int = 1


@dataclass
class Downsampled:
    """A series reduced for a chart (see the module's docstring)."""

    points: list[tuple[int, float]] = field(default_factory=list)  # finite, in step order
    marks: list[Mark] = field(default_factory=list)  # in step order
    count: int = 0  # the points (finite or not) in the range
    bucket_width: int = 1  # steps per bucket; 1 and downsampled False: every point is here
    downsampled: bool = False
    min: Optional[tuple[int, float]] = None  # the lowest finite point in the range, and the highest
    max: Optional[tuple[int, float]] = None


def _kind(value: float) -> str:
    if value != value:
        return NAN
    return POS_INF if value > 0 else NEG_INF


def _is_finite(value) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float is still a finite number
        return True


def downsample(steps: Sequence[int], values: Sequence[float], lo: int, hi: int, buckets: int) -> Downsampled:
    """``values`` logged at ``steps`` (ascending, same length), reduced to at most ``buckets`` buckets
    over the steps ``lo..hi`` (inclusive; points outside are ignored). With no more points than
    ``4 * buckets`` in the range, every point is kept as it is."""
    if buckets < 1:
        raise ValueError("buckets must be at least 1")
    out = Downsampled()
    if hi < lo:
        return out
    first, stop = bisect_left(steps, lo), bisect_left(steps, hi + 1)
    out.count = stop - first
    if out.count == 0:
        return out
    if out.count <= 4 * buckets:
        _keep_all(steps, values, first, stop, out)
        return out
    out.downsampled = True
    width = out.bucket_width = -(-(hi - lo + 1) // buckets)  # ceiling division: at most ``buckets``
    start = first
    bucket_end_step = lo + width
    while start < stop:
        end = bisect_left(steps, bucket_end_step, start, stop)
        if end > start:
            _bucket(steps, values, start, end, out)
        start = end
        bucket_end_step += width
    return out


def _keep_all(steps, values, first: int, stop: int, out: Downsampled) -> None:
    for i in range(first, stop):
        value = values[i]
        if _is_finite(value):
            _extend(out, steps[i], value)
        else:
            out.marks.append(Mark(steps[i], _kind(value)))


def _extend(out: Downsampled, step: int, value) -> None:
    value = float(value)
    out.points.append((step, value))
    if out.min is None or value < out.min[1]:
        out.min = (step, value)
    if out.max is None or value > out.max[1]:
        out.max = (step, value)


def _bucket(steps, values, start: int, end: int, out: Downsampled) -> None:
    chunk = values[start:end]
    try:
        all_finite = math.isfinite(sum(chunk))  # NaN or an infinity makes the sum non-finite
    except OverflowError:  # ints past a float's range: finite, but take the careful path
        all_finite = False
    if all_finite:
        picks = (0, chunk.index(min(chunk)), chunk.index(max(chunk)), len(chunk) - 1)
    else:
        finite: list[int] = []
        seen: dict[str, Mark] = {}
        for offset, value in enumerate(chunk):
            if _is_finite(value):
                finite.append(offset)
                continue
            kind = _kind(value)
            mark = seen.get(kind)
            if mark is None:
                seen[kind] = Mark(steps[start + offset], kind)
            else:
                mark.count += 1
        out.marks.extend(sorted(seen.values(), key=lambda m: m.step))
        if not finite:
            return
        low = min(finite, key=chunk.__getitem__)
        high = max(finite, key=chunk.__getitem__)
        picks = (finite[0], low, high, finite[-1])
    for offset in sorted(set(picks)):
        _extend(out, steps[start + offset], chunk[offset])
