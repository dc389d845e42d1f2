"""A run's metrics over steps, downsampled for a chart (``GET /api/v1/runs/{id}/series``, the run page).

Reading is the cost: a run of a million points is a million history rows in MessagePack chunks. The
chunks that overlap the range are decoded with msgspec into a struct that holds only ``_step`` and the
keys asked for (every other key of a row is skipped without being built), several times faster than
decoding whole rows; a chunk that does not fit that shape (a key holding text, a row that is not a
map) is decoded whole and picked through. Numbers only: text, lists and histograms logged under a key
are not points of its series (bools neither).

Visibility is the caller's business (the route checks the run's owner first).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from operator import attrgetter
from typing import Any, Optional, Sequence

import msgspec
from sqlalchemy import select

from alerts.server.downsample import Downsampled, downsample
from alerts.store import jsoncodec
from alerts.store.db import Store
from alerts.store.models import HistoryChunk

DEFAULT_POINTS = 1000
MAX_POINTS = 10_000
MAX_KEYS = 20


class _Columns:
    """The steps and values of each key, filled chunk by chunk."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = list(keys)
        self.steps: dict[str, list[int]] = {key: [] for key in keys}
        self.values: dict[str, list[float]] = {key: [] for key in keys}


def _decoder(keys: Sequence[str], typed: bool) -> tuple[msgspec.msgpack.Decoder, list[attrgetter]]:
    # Field names are made up (a key may be any text: "train/loss", "_step"); ``rename`` maps each to
    # the key it reads. ``typed``: numbers only, so a chunk decodes without a type check per value
    # (msgspec reads an int into a float field; anything else fails the chunk, read again untyped).
    value_type = Optional[float] if typed else Any
    fields = [("s", Optional[int], None)] + [(f"k{i}", value_type, None) for i in range(len(keys))]
    rename = {"s": "_step", **{f"k{i}": key for i, key in enumerate(keys)}}
    row = msgspec.defstruct("Row", fields, rename=rename, forbid_unknown_fields=False)
    return msgspec.msgpack.Decoder(list[row]), [attrgetter(f"k{i}") for i in range(len(keys))]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Reader:
    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = keys
        self.typed, self.typed_getters = _decoder(keys, True)
        self.loose, self.loose_getters = _decoder(keys, False)
        self.step_of = attrgetter("s")

    def add(self, data: bytes, low: Optional[int], high: Optional[int], out: _Columns) -> None:
        try:
            rows = self.typed.decode(data)
            getters, checked = self.typed_getters, True
        except (msgspec.ValidationError, msgspec.DecodeError):
            try:
                rows = self.loose.decode(data)
                getters, checked = self.loose_getters, False
            except (msgspec.ValidationError, msgspec.DecodeError):
                self._add_plain(jsoncodec.unpack_rows(data), low, high, out)
                return
        steps = list(map(self.step_of, rows))
        if None in steps:  # a row without a step: not a point of any series
            keep = [i for i, step in enumerate(steps) if isinstance(step, int)]
            rows, steps = [rows[i] for i in keep], [steps[i] for i in keep]
        first = bisect_left(steps, low) if low is not None else 0
        stop = bisect_right(steps, high) if high is not None else len(steps)
        if first or stop < len(steps):
            rows, steps = rows[first:stop], steps[first:stop]
        for key, get in zip(self.keys, getters):
            values = list(map(get, rows))
            if checked and None not in values:  # the common case: the key is in every row, a number
                out.steps[key].extend(steps)
                out.values[key].extend(values)
                continue
            key_steps, key_values = out.steps[key], out.values[key]
            for step, value in zip(steps, values):
                if value is not None and (checked or _is_number(value)):
                    key_steps.append(step)
                    key_values.append(value)

    def _add_plain(self, rows: list, low: Optional[int], high: Optional[int], out: _Columns) -> None:
        for row in rows:
            if not isinstance(row, dict):
                continue
            step = row.get("_step")
            if not isinstance(step, int) or (low is not None and step < low) or (high is not None and step > high):
                continue
            for key in self.keys:
                value = row.get(key)
                if _is_number(value):
                    out.steps[key].append(step)
                    out.values[key].append(value)


def read_columns(store: Store, run_id: str, keys: Sequence[str], start: Optional[int] = None,
                 end: Optional[int] = None) -> _Columns:
    """The numeric points of ``keys`` in the run's history, steps ``start..end`` (inclusive)."""
    columns = (HistoryChunk.first_step, HistoryChunk.last_step, HistoryChunk.data)
    query = select(*columns).where(HistoryChunk.run_id == run_id)
    if end is not None:
        query = query.where(HistoryChunk.first_step <= end)
    if start is not None:
        query = query.where(HistoryChunk.last_step >= start)
    query = query.order_by(HistoryChunk.first_step, HistoryChunk.id)
    out = _Columns(keys)
    reader = _Reader(keys)
    with store.engine.connect() as conn:
        for first_step, last_step, data in conn.execute(query):
            # Only a chunk that straddles an end of the range needs its rows cut to it.
            low = start if start is not None and first_step < start else None
            high = end if end is not None and last_step > end else None
            reader.add(data, low, high, out)
    return out


def _point(point: Optional[tuple[int, float]]) -> Optional[dict]:
    return None if point is None else {"step": point[0], "value": point[1]}


def series_view(key: str, reduced: Downsampled) -> dict:
    """One key's series as the API returns it."""
    return {
        "key": key, "count": reduced.count, "downsampled": reduced.downsampled,
        "bucket_width": reduced.bucket_width, "points": [[s, v] for s, v in reduced.points],
        "marks": [{"step": m.step, "value": m.value, "count": m.count} for m in reduced.marks],
        "min": _point(reduced.min), "max": _point(reduced.max),
    }


def run_series(store: Store, run_id: str, keys: Sequence[str], start: Optional[int] = None,
               end: Optional[int] = None, points: int = DEFAULT_POINTS) -> dict:
    """Each key's series over ``start..end`` (default: the steps the keys were logged at), reduced to
    at most ``points`` points: ``points // 4`` buckets of M4, shared by every key (their x axes agree)."""
    keys = list(dict.fromkeys(keys))  # once each, in the order asked
    columns = read_columns(store, run_id, keys, start, end)
    firsts = [columns.steps[k][0] for k in keys if columns.steps[k]]
    lasts = [columns.steps[k][-1] for k in keys if columns.steps[k]]
    lo = start if start is not None else (min(firsts) if firsts else None)
    hi = end if end is not None else (max(lasts) if lasts else None)
    buckets = max(1, points // 4)
    series = {}
    for key in keys:
        reduced = (downsample(columns.steps[key], columns.values[key], lo, hi, buckets)
                   if lo is not None and hi is not None else Downsampled())
        series[key] = series_view(key, reduced)
    return {"run_id": run_id, "start": lo, "end": hi, "points": points, "series": series}


def is_finite_number(value: Any) -> bool:
    """A value that can be drawn as a point (a summary's last value of a metric, say)."""
    return _is_number(value) and (not isinstance(value, float) or math.isfinite(value))
