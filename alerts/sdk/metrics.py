"""``define_metric``: how a metric's summary is kept and which metric is its x-axis, as in wandb.

A definition names one metric, or many with a glob (``"val/*"``; wandb allows only a trailing ``*``,
any ``fnmatch`` pattern works here). An exact name wins over a glob; among globs, the latest
definition wins. A later call for the same name merges with the earlier one (``overwrite=True``
replaces it).

- ``summary``: ``"min"``, ``"max"``, ``"mean"``, ``"first"``, ``"last"``, ``"best"`` (with
  ``goal="minimize"`` or ``"maximize"``, from older wandb), ``"none"``, or several joined by commas.
  The run's summary then holds ``{"min": ..., "max": ...}`` for the key instead of its last value
  (wandb's shape); ``"none"`` leaves the key out. Aggregates take finite numbers only (a NaN loss
  does not become the ``min``); ``first``/``last`` take any value.
- ``step_metric``: the metric's x-axis. With ``step_sync`` (on when a step metric is given), a row
  that logs the metric without its step metric gets the step metric's last logged value.

Only runs that call ``define_metric`` pay for this: ``log()`` keeps its fast path otherwise.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, replace
from typing import Any, Optional

from alerts.errors import Error

SUMMARY_OPS = frozenset({"min", "max", "mean", "first", "last", "best", "none", "copy"})
GOALS = {"minimize": "min", "min": "min", "maximize": "max", "max": "max"}


@dataclass(frozen=True)
class Metric:
    """One ``define_metric`` call, as wandb returns it (the object can be ignored)."""

    name: str
    step_metric: Optional[str] = None
    step_sync: Optional[bool] = None
    hidden: Optional[bool] = None
    summary: Optional[tuple] = None
    goal: Optional[str] = None


def _parse_summary(summary: Optional[str]) -> Optional[tuple]:
    if summary is None:
        return None
    if not isinstance(summary, str):
        raise Error(f"Unhandled define_metric() arg: summary type: {type(summary).__name__}")
    ops = tuple(part.strip().lower() for part in summary.split(",") if part.strip())
    for op in ops:
        if op not in SUMMARY_OPS:
            raise Error(f"Unhandled define_metric() arg: summary op: {op}")
    return ops


class _Aggregate:
    """Running aggregates of one summary key."""

    __slots__ = ("count", "total", "low", "high", "first", "seen")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.low = math.inf
        self.high = -math.inf
        self.first: Any = None
        self.seen = False

    def add(self, value: Any) -> None:
        if not self.seen:
            self.first, self.seen = value, True
        if type(value) in (int, float) and math.isfinite(value):  # bools are not numbers here
            self.count += 1
            self.total += value
            self.low = min(self.low, value)
            self.high = max(self.high, value)

    def summary(self, ops: tuple, goal: Optional[str], last: Any) -> dict:
        out: dict = {}
        for op in ops:
            if op in ("last", "copy"):
                out["last"] = last
            elif op == "first":
                out["first"] = self.first
            elif self.count == 0:
                continue  # no finite number yet: no min, max, mean or best
            elif op == "min":
                out["min"] = self.low
            elif op == "max":
                out["max"] = self.high
            elif op == "mean":
                out["mean"] = self.total / self.count
            elif op == "best":
                out["best"] = self.high if GOALS.get(goal or "minimize") == "max" else self.low
        return out


class MetricDefinitions:
    """The definitions of one run, applied to each committed row."""

    def __init__(self) -> None:
        self._exact: dict[str, Metric] = {}
        self._globs: list[Metric] = []
        self._resolved: dict[str, Optional[Metric]] = {}  # key -> its definition (None: none), cached
        self._aggregates: dict[str, _Aggregate] = {}
        self._last: dict[str, Any] = {}  # last value of each step metric
        self._step_metrics: set[str] = set()

    def define(self, name: str, *, step_metric: Any = None, step_sync: Optional[bool] = None,
               hidden: Optional[bool] = None, summary: Optional[str] = None, goal: Optional[str] = None,
               overwrite: Optional[bool] = None) -> Metric:
        """Add or merge a definition; returns it."""
        if not name or not isinstance(name, str):
            raise Error("define_metric() requires a non-empty name")
        if isinstance(step_metric, Metric):
            step_metric = step_metric.name
        if step_metric is not None and not isinstance(step_metric, str):
            raise Error(f"Unhandled define_metric() arg: step_metric type: {type(step_metric).__name__}")
        if goal is not None and goal not in GOALS:
            raise Error(f"Unhandled define_metric() arg: goal: {goal!r} (minimize or maximize)")
        new = Metric(name=name, step_metric=step_metric, step_sync=step_sync, hidden=hidden,
                     summary=_parse_summary(summary), goal=goal)
        is_glob = any(c in name for c in "*?[")
        old = self._exact.get(name) if not is_glob else next((m for m in self._globs if m.name == name), None)
        if old is not None and not overwrite:
            new = replace(old, **{f: getattr(new, f) for f in ("step_metric", "step_sync", "hidden", "summary", "goal")
                                  if getattr(new, f) is not None})
        if is_glob:
            self._globs = [m for m in self._globs if m.name != name] + [new]
        else:
            self._exact[name] = new
        if new.step_metric is not None:
            self._step_metrics.add(new.step_metric)
        self._resolved.clear()
        return new

    def _definition(self, key: str) -> Optional[Metric]:
        try:
            return self._resolved[key]
        except KeyError:
            pass
        found = self._exact.get(key)
        if found is None:
            for metric in reversed(self._globs):
                if fnmatch.fnmatchcase(key, metric.name):
                    found = metric
                    break
        self._resolved[key] = found
        return found

    def sync_steps(self, row: dict) -> None:
        """Add to ``row`` the last value of the step metric of each metric it logs without it."""
        for key in list(row):
            definition = self._definition(key)
            if definition is None or definition.step_metric is None or definition.step_sync is False:
                continue
            axis = definition.step_metric
            if axis not in row and axis in self._last:
                row[axis] = self._last[axis]
        for axis in self._step_metrics:
            if axis in row:
                self._last[axis] = row[axis]

    def update_summary(self, row: dict, summary: dict) -> None:
        """Fold one committed row into the run's summary."""
        for key, value in row.items():
            definition = self._definition(key) if key[:1] != "_" else None
            ops = definition.summary if definition is not None else None
            if not ops:
                summary[key] = value
                continue
            if "none" in ops:
                summary.pop(key, None)
                continue
            aggregate = self._aggregates.get(key)
            if aggregate is None:
                aggregate = self._aggregates[key] = _Aggregate()
            aggregate.add(value)
            summary[key] = aggregate.summary(ops, definition.goal, value)
