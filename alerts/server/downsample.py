"""Downsampling a metric's series for a chart: M4 per step bucket, every non-finite value kept as a mark.

The steps ``lo..hi`` are cut into at most ``buckets`` buckets of equal width (in steps, so that the
series of several keys, and the alert marks, line up). Each bucket keeps the first, the lowest, the
highest and the last of its finite points (M4: the line drawn through them has the shape, and every
extreme, of the line through all the points), and for NaN, +Infinity and -Infinity the first step
where each occurs in the bucket, with how many there are. A chart therefore draws at most
``4 * buckets`` points and ``3 * buckets`` marks however long the run, and a NaN is never averaged
away or lost in a gap: at full zoom (a bucket a step wide) every one is its own mark.

Pure functions over sequences (lists or ``array``\\ s): no store, no clock. A long series may come with
a :class:`BlockIndex` (each block of :data:`BLOCK` points summarised once): a bucket is then the
summaries of the blocks it covers plus its two partial blocks, so a request costs about
``buckets * 2 * BLOCK`` point visits whatever the series' length, with exactly the same answer. The
work per point is done by C built-ins (``sum``, ``min``, ``max``, ``index`` over a slice); only slices
that hold a non-finite value are walked point by point.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Optional, Sequence

NAN, POS_INF, NEG_INF = "NaN", "Infinity", "-Infinity"
# Points per block of a BlockIndex.
BLOCK = 512


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


@dataclass
class Summary:
    """What M4 needs of a run of consecutive points, by index: the first and last finite point, the
    lowest and highest, and per non-finite kind its first index and count."""

    first: Optional[int] = None
    last: Optional[int] = None
    low: Optional[int] = None
    high: Optional[int] = None
    marks: dict = field(default_factory=dict)  # kind -> [first index, count]


def _kind(value: float) -> str:
    if value != value:
        return NAN
    return POS_INF if value > 0 else NEG_INF


def _is_finite(value) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float is still a finite number
        return True


def summarize(values: Sequence, start: int, end: int) -> Summary:
    """The :class:`Summary` of ``values[start:end]`` (indices into ``values``)."""
    out = Summary()
    if end <= start:
        return out
    chunk = values[start:end]
    try:
        all_finite = math.isfinite(sum(chunk))  # NaN or an infinity makes the sum non-finite
    except OverflowError:  # ints past a float's range: finite, but take the careful path
        all_finite = False
    if all_finite:
        out.first, out.last = start, end - 1
        out.low, out.high = start + chunk.index(min(chunk)), start + chunk.index(max(chunk))
        return out
    finite: list[int] = []
    for offset, value in enumerate(chunk):
        if _is_finite(value):
            finite.append(offset)
            continue
        mark = out.marks.get(_kind(value))
        if mark is None:
            out.marks[_kind(value)] = [start + offset, 1]
        else:
            mark[1] += 1
    if finite:
        out.first, out.last = start + finite[0], start + finite[-1]
        out.low = start + min(finite, key=chunk.__getitem__)
        out.high = start + max(finite, key=chunk.__getitem__)
    return out


def _merge(into: Summary, other: Summary, values: Sequence) -> None:
    """Fold ``other`` (later points) into ``into``."""
    if other.first is not None:
        if into.first is None:
            into.first, into.low, into.high = other.first, other.low, other.high
        else:
            if values[other.low] < values[into.low]:
                into.low = other.low
            if values[other.high] > values[into.high]:
                into.high = other.high
        into.last = other.last
    for kind, (first, count) in other.marks.items():
        mark = into.marks.get(kind)
        if mark is None:
            into.marks[kind] = [first, count]
        else:
            mark[1] += count


class BlockIndex:
    """The :class:`Summary` of each block of ``BLOCK`` consecutive points of a series (block ``b`` holds
    indices ``b * BLOCK`` to ``(b + 1) * BLOCK - 1``), built once for a series that is read often."""

    def __init__(self, values: Sequence, block: int = BLOCK) -> None:
        self.block = block
        self.length = len(values)
        self.blocks = [summarize(values, start, min(start + block, len(values)))
                       for start in range(0, len(values), block)]

    def copy(self) -> "BlockIndex":
        twin = BlockIndex.__new__(BlockIndex)
        twin.block, twin.length, twin.blocks = self.block, self.length, list(self.blocks)
        return twin

    def extend(self, values: Sequence) -> None:
        """Take in the points appended to ``values`` since the index was built (the last, partial
        block is summarised again)."""
        kept = self.length // self.block
        del self.blocks[kept:]
        self.blocks += [summarize(values, start, min(start + self.block, len(values)))
                        for start in range(kept * self.block, len(values), self.block)]
        self.length = len(values)

    def summarize(self, values: Sequence, start: int, end: int) -> Summary:
        """``summarize(values, start, end)``, from the blocks wholly inside and the two partial ends."""
        size = self.block
        first_whole, last_whole = -(-start // size), end // size  # blocks [first_whole, last_whole)
        if first_whole >= last_whole:
            return summarize(values, start, end)
        out = summarize(values, start, first_whole * size)
        for b in range(first_whole, last_whole):
            _merge(out, self.blocks[b], values)
        _merge(out, summarize(values, last_whole * size, end), values)
        return out


def downsample(steps: Sequence[int], values: Sequence, lo: int, hi: int, buckets: int,
               index: Optional[BlockIndex] = None) -> Downsampled:
    """``values`` logged at ``steps`` (ascending, same length), reduced to at most ``buckets`` buckets
    over the steps ``lo..hi`` (inclusive; points outside are ignored). With no more points than
    ``4 * buckets`` in the range, every point is kept as it is. ``index``: a :class:`BlockIndex` of
    ``values``, which makes a long series cheaper and changes nothing in the answer."""
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
        for i in range(first, stop):
            if _is_finite(values[i]):
                _extend(out, steps[i], values[i])
            else:
                out.marks.append(Mark(steps[i], _kind(values[i])))
        return out
    out.downsampled = True
    width = out.bucket_width = -(-(hi - lo + 1) // buckets)  # ceiling division: at most ``buckets``
    reduce = index.summarize if index is not None else summarize
    start = first
    bucket_end_step = lo + width
    while start < stop:
        end = bisect_left(steps, bucket_end_step, start, stop)
        if end > start:
            summary = reduce(values, start, end)
            out.marks.extend(sorted((Mark(steps[i], kind, count) for kind, (i, count) in summary.marks.items()),
                                    key=lambda m: m.step))
            if summary.first is not None:
                for i in sorted({summary.first, summary.low, summary.high, summary.last}):
                    _extend(out, steps[i], values[i])
        start = end
        bucket_end_step += width
    return out


def _extend(out: Downsampled, step: int, value) -> None:
    value = float(value)
    out.points.append((step, value))
    if out.min is None or value < out.min[1]:
        out.min = (step, value)
    if out.max is None or value > out.max[1]:
        out.max = (step, value)
