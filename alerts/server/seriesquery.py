"""A run's metrics over steps, downsampled for a chart (``GET /api/v1/runs/{id}/series``, the run page).

Reading is the cost: a run of a million points is a million history rows in MessagePack chunks. The
chunks are decoded with msgspec into a struct that holds only ``_step`` and the keys asked for (every
other key of a row is skipped without being built), several times faster than decoding whole rows;
a chunk that does not fit that shape (a key holding text, a row that is not a map) is decoded whole
and picked through. Numbers only: text, lists and histograms logged under a key are not points of its
series (bools neither).

A key's points, once read, are kept as a column (two arrays, 16 bytes a point, with a
:class:`~alerts.server.downsample.BlockIndex`) in a per-process cache bounded in points
(:data:`CACHE_POINTS`), so the chart's next requests (a zoom, its reset, another metric of the same
run) cost only the downsampling. A cached column is checked against the run's chunks at every
request (their count and highest id): chunks a live run appended since are read and added; anything
else (chunks deleted by retention, an id that turned up out of order) reads the run again.

Visibility is the caller's business (the route checks the run's owner first).
"""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from operator import attrgetter
from typing import Any, Optional, Sequence

import msgspec
from sqlalchemy import func, select

from alerts.server.downsample import BlockIndex, Downsampled, downsample
from alerts.store import jsoncodec
from alerts.store.db import Store
from alerts.store.models import HistoryChunk

DEFAULT_POINTS = 1000
MAX_POINTS = 10_000
MAX_KEYS = 20
# A column read with more points than this gets its block index at once (a chart of it will need it).
INDEX_FROM = 16 * 1024
# Points kept in the process's cache of columns (16 bytes each, plus the block index: ~70 MB).
CACHE_POINTS = 4_000_000


class Column:
    """One key's numeric points in step order."""

    def __init__(self) -> None:
        self.steps = array("q")
        self.values = array("d")
        self.index: Optional[BlockIndex] = None

    def indexed(self) -> BlockIndex:
        if self.index is None:
            self.index = BlockIndex(self.values)
        elif self.index.length != len(self.values):
            self.index.extend(self.values)
        return self.index


def _decoder(keys: Sequence[str], typed: bool):
    # Field names are made up (a key may be any text: "train/loss"); ``rename`` maps each to the key
    # it reads. ``typed``: numbers only, so a chunk decodes without a type check per value (msgspec
    # reads an int into a float field; anything else fails the chunk, which is read again untyped).
    value_type = Optional[float] if typed else Any
    fields = [("s", Optional[int], None)] + [(f"k{i}", value_type, None) for i in range(len(keys))]
    rename = {"s": "_step", **{f"k{i}": key for i, key in enumerate(keys)}}
    row = msgspec.defstruct("Row", fields, rename=rename)
    return msgspec.msgpack.Decoder(list[row]), [attrgetter(f"k{i}") for i in range(len(keys))]


def _complete(numbers: list) -> bool:
    """No None among ``numbers`` (ints or floats). ``sum`` finds out in C at a few ns a value; ``None
    in numbers`` compares each number with None through the slow generic path."""
    try:
        sum(numbers)
    except TypeError:
        return False
    return True


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Reader:
    """Appends the points of ``keys`` in a chunk to their columns."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = list(keys)
        self.typed, self.typed_getters = _decoder(self.keys, True)
        self.loose, self.loose_getters = _decoder(self.keys, False)
        self.step_of = attrgetter("s")

    def add(self, data: bytes, out: dict[str, tuple[array, list]]) -> None:
        """Append the chunk's points of each key to ``out[key]`` (its steps and its values)."""
        try:
            rows = self.typed.decode(data)
            getters, checked = self.typed_getters, True
        except (msgspec.ValidationError, msgspec.DecodeError):
            try:
                rows = self.loose.decode(data)
                getters, checked = self.loose_getters, False
            except (msgspec.ValidationError, msgspec.DecodeError):
                self._add_plain(jsoncodec.unpack_rows(data), out)
                return
        if not rows:
            return
        # A chunk's rows are in increasing step order (the store's invariant): when the first and last
        # steps are len(rows) - 1 apart, the steps are every one between them, and need not be read.
        first, last = rows[0].s, rows[-1].s
        steps: Any = None
        if isinstance(first, int) and isinstance(last, int) and last - first + 1 == len(rows):
            steps = range(first, last + 1)
        else:
            steps = list(map(self.step_of, rows))
            if not _complete(steps):  # a row without a step: not a point of any series
                keep = [i for i, step in enumerate(steps) if isinstance(step, int)]
                rows, steps = [rows[i] for i in keep], [steps[i] for i in keep]
        chunk_steps = None  # the chunk's steps as an array, made once for every key logged in all its rows
        for key, get in zip(self.keys, getters):
            key_steps, key_values = out[key]
            values = list(map(get, rows))
            if checked and _complete(values):  # the common case: the key is in every row, a number
                if chunk_steps is None:
                    chunk_steps = array("q", steps)
                key_steps.extend(chunk_steps)  # a copy of the memory, not a conversion per step
                key_values += values
                continue
            for step, value in zip(steps, values):
                if value is not None and (checked or _is_number(value)):
                    key_steps.append(step)
                    key_values.append(value)

    def _add_plain(self, rows: list, out: dict[str, tuple[array, list]]) -> None:
        for row in rows:
            step = row.get("_step") if isinstance(row, dict) else None
            if not isinstance(step, int) or isinstance(step, bool):
                continue
            for key in self.keys:
                value = row.get(key)
                if _is_number(value):
                    out[key][0].append(step)
                    out[key][1].append(value)

    def read(self, chunks, columns: dict[str, Column]) -> None:
        """Append the points of ``chunks`` (rows with a ``data`` column) to ``columns``. Values are
        gathered in a list first: a list grows faster than an array converts item by item."""
        out = {key: (array("q"), []) for key in self.keys}
        for chunk in chunks:
            self.add(chunk.data, out)
        shared: list[array] = []  # keys logged at the same steps share one array of them
        for key, (steps, values) in out.items():
            column = columns[key]
            if not len(column.values) and len(values) > INDEX_FROM:
                # Indexed from the list: a pass over a list reads its floats, over an array boxes each.
                column.index = BlockIndex(values)
            if not len(column.steps):
                column.steps = next((twin for twin in shared if twin == steps), steps)
                shared.append(column.steps)
            else:
                column.steps.extend(steps)
            column.values.fromlist(values)


def _chunks(conn, run_id: str, above_id: Optional[int], up_to_id: int):
    query = select(HistoryChunk.id, HistoryChunk.first_step, HistoryChunk.data).where(
        HistoryChunk.run_id == run_id, HistoryChunk.id <= up_to_id)
    if above_id is not None:
        query = query.where(HistoryChunk.id > above_id)
    return conn.execute(query.order_by(HistoryChunk.first_step, HistoryChunk.id)).all()


class _RunEntry:
    def __init__(self, count: int, max_id: int) -> None:
        self.count, self.max_id = count, max_id
        self.columns: dict[str, Column] = {}

    def points(self) -> int:
        return sum(len(c.values) for c in self.columns.values())


class SeriesCache:
    """Columns of recently charted runs, least recently used dropped past ``max_points``."""

    def __init__(self, max_points: int = CACHE_POINTS) -> None:
        self.max_points = max_points
        self._runs: "OrderedDict[tuple[str, str], _RunEntry]" = OrderedDict()
        self._lock = threading.Lock()

    def columns(self, store: Store, run_id: str, keys: Sequence[str]) -> dict[str, Column]:
        """The columns of ``keys``, as the run's chunks stand now."""
        with store.engine.connect() as conn:
            count, max_id = conn.execute(select(func.count(HistoryChunk.id), func.max(HistoryChunk.id))
                                         .where(HistoryChunk.run_id == run_id)).one()
            if not count:
                return {key: Column() for key in keys}
            with self._lock:
                entry = self._runs.get((store.url, run_id))
            if entry is not None and (entry.count, entry.max_id) != (count, max_id):
                entry = self._appended(conn, run_id, entry, count, max_id)
            if entry is None:
                entry = _RunEntry(count, max_id)
            missing = [key for key in keys if key not in entry.columns]
            if missing:
                fresh = {key: Column() for key in missing}
                _Reader(missing).read(_chunks(conn, run_id, None, entry.max_id), fresh)
                grown = _RunEntry(entry.count, entry.max_id)  # a new entry: others may be reading this one
                grown.columns = {**entry.columns, **fresh}
                entry = grown
        found = {key: entry.columns[key] for key in keys}
        self._keep(store.url, run_id, entry)
        return found

    def _appended(self, conn, run_id: str, entry: _RunEntry, count: int, max_id: int) -> Optional[_RunEntry]:
        """``entry`` with the chunks appended since it was read, or None if the run's chunks changed in
        another way (then it is read again)."""
        new = _chunks(conn, run_id, entry.max_id, max_id)
        last_steps = [c.steps[-1] for c in entry.columns.values() if len(c.steps)]
        if count != entry.count + len(new) or (last_steps and new and new[0].first_step <= max(last_steps)):
            return None
        updated = _RunEntry(count, max_id)
        reader = _Reader(list(entry.columns))
        copies = {}
        for key, column in entry.columns.items():  # copied: another request may be reading the old one
            copy = Column()
            copy.steps, copy.values = array("q", column.steps), array("d", column.values)
            copy.index = column.index.copy() if column.index is not None else None
            copies[key] = copy
        reader.read(new, copies)
        updated.columns = copies
        return updated

    def _keep(self, url: str, run_id: str, entry: _RunEntry) -> None:
        with self._lock:
            self._runs[(url, run_id)] = entry
            self._runs.move_to_end((url, run_id))
            total = sum(e.points() for e in self._runs.values())
            while total > self.max_points and self._runs:
                _, dropped = self._runs.popitem(last=False)
                total -= dropped.points()

    def clear(self) -> None:
        with self._lock:
            self._runs.clear()


_cache = SeriesCache()


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
               end: Optional[int] = None, points: int = DEFAULT_POINTS, cache: Optional[SeriesCache] = None) -> dict:
    """Each key's series over ``start..end`` (default: the steps the keys were logged at), reduced to
    at most ``points`` points: ``points // 4`` buckets of M4, shared by every key (their x axes agree)."""
    keys = [key for key in dict.fromkeys(keys) if key != "_step"]  # once each, in the order asked
    columns = (cache or _cache).columns(store, run_id, keys)
    firsts = [c.steps[0] for c in columns.values() if len(c.steps)]
    lasts = [c.steps[-1] for c in columns.values() if len(c.steps)]
    lo = start if start is not None else (min(firsts) if firsts else None)
    hi = end if end is not None else (max(lasts) if lasts else None)
    buckets = max(1, points // 4)
    series = {}
    for key in keys:
        column = columns[key]
        if lo is None or hi is None or not len(column.steps):
            reduced = Downsampled()
        else:
            # The block index pays off only when the range holds many blocks' worth of points.
            first, stop = bisect_left(column.steps, lo), bisect_right(column.steps, hi)
            index = column.indexed() if stop - first > 16 * buckets else None
            reduced = downsample(column.steps, column.values, lo, hi, buckets, index)
        series[key] = series_view(key, reduced)
    return {"run_id": run_id, "start": lo, "end": hi, "points": points, "series": series}
