"""The rules engine: pure state machines, one per (rule, run, metric).

::

    inactive --condition holds--> pending --held for `for`--> firing --clear for `keep_firing_for`--> inactive
        ^                            |                          (emits "firing")      (emits "resolved")
        +------condition clears------+

:func:`step_state` is the whole machine: it takes a state, whether the condition holds now, and
``now``, and returns the status to emit (``"firing"``, ``"resolved"`` or ``None``). The observers
below feed it: :class:`ThresholdSeries` and :class:`ChangeSeries` keep a bounded window of the
series (constant memory per series; means are rolling, O(1) a point), :func:`check_stalled` compares
the time of the last data with ``now``. Nothing here reads a clock, a file or a database.

:class:`RunRules` applies a rule set to one run: which rules watch a metric is worked out once per
(run, metric) and cached, so a point costs work only for the rules that match it.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass, field
from itertools import accumulate, repeat
from operator import add, ge, le, sub, truediv
from typing import Any, Iterable, Optional, Union

from alerts.rules.durations import format_duration
from alerts.rules.schema import ChangeRule, RunInfo, RunStateRule, StalledRule, ThresholdRule

INACTIVE, PENDING, FIRING = "inactive", "pending", "firing"
RESOLVED = "resolved"

MetricRule = Union[ThresholdRule, ChangeRule]


@dataclass
class SeriesState:
    """Where one (rule, run, metric) series is: its phase, counters and recent values."""

    phase: str = INACTIVE
    count: int = 0  # consecutive evaluations the condition held (pending) or cleared (while firing)
    since: Optional[float] = None  # when that streak began
    buffer: Optional[deque] = None  # the last window values (min/max/last aggregates)
    fired_at: Optional[float] = None


@dataclass(frozen=True)
class Transition:
    """A series went firing or resolved: what becomes an alert."""

    rule: Any
    status: str  # firing | resolved
    run: RunInfo
    at: float
    metric: Optional[str] = None
    value: Optional[float] = None
    step: Optional[int] = None
    fields: dict = field(default_factory=dict)  # template values beyond the common ones


def step_state(state: SeriesState, active: bool, now: float, hold=None, keep_firing_for=None,
               repeat_interval: Optional[float] = None) -> Optional[str]:
    """Advance the state machine by one evaluation; return ``"firing"``/``"resolved"`` or None.

    A series still firing ``repeat_interval`` seconds after it last said so says ``"firing"`` again
    (Alertmanager's repeat_interval: a long problem is not forgotten after one message).
    """
    if active:
        if state.phase == FIRING:
            state.count, state.since = 0, None  # a clear streak, if any, is broken
            if repeat_interval is not None and now - state.fired_at >= repeat_interval:
                state.fired_at = now
                return FIRING
            return None
        if state.phase == INACTIVE:
            state.phase, state.count, state.since = PENDING, 0, now
        state.count += 1
        if hold is None or hold.held(state.count, state.since, now):
            state.phase, state.count, state.since, state.fired_at = FIRING, 0, None, now
            return FIRING
        return None
    if state.phase == PENDING:
        state.phase, state.count, state.since = INACTIVE, 0, None  # a spike shorter than `for`
        return None
    if state.phase == FIRING:
        if state.since is None:
            state.since = now
        state.count += 1
        if keep_firing_for is None or keep_firing_for.held(state.count, state.since, now):
            state.phase, state.count, state.since = INACTIVE, 0, None
            return RESOLVED
    return None


# A rolling sum is recomputed exactly after this many updates.
RESUM_EVERY = 10_000


class RollingMean:
    """The mean of the last ``size`` values in O(1) a value, NaN- and infinity-aware.

    Finite values are summed; non-finite ones are counted (NaN, or both infinities, make the mean
    NaN; one kind of infinity makes it that infinity). The sum is recomputed exactly now and then so
    that rounding does not drift over a long run.
    """

    __slots__ = ("size", "values", "total", "nan", "pos_inf", "neg_inf", "odd", "updates")

    def __init__(self, size: int) -> None:
        self.size = size
        self.values: deque = deque()
        self.total = 0.0
        self.nan = self.pos_inf = self.neg_inf = self.updates = 0
        self.odd = 0  # non-finite values in the window, of any kind: 0 lets ChangeSeries take its fast path

    def _count(self, value: float, delta: int) -> None:
        self.odd += delta
        if value != value:
            self.nan += delta
        elif value == math.inf:
            self.pos_inf += delta
        elif value == -math.inf:
            self.neg_inf += delta
        else:
            self.total += value * delta

    def push(self, value: float) -> Optional[float]:
        """Add a value; return the one that fell out of the window (None while filling)."""
        values = self.values
        values.append(value)
        if value - value == 0.0:  # finite (NaN - NaN and inf - inf are NaN): the common case, inline
            self.total += value
        else:
            self._count(value, 1)
        evicted = None
        if len(values) > self.size:
            evicted = values.popleft()
            if evicted - evicted == 0.0:
                self.total -= evicted
            else:
                self._count(evicted, -1)
        self.updates += 1
        if self.updates >= RESUM_EVERY:
            self.resum()
        return evicted

    def resum(self) -> None:
        """Recompute the sum exactly (rounding must not drift over a long run)."""
        self.updates = 0
        self.total = math.fsum(v for v in self.values if math.isfinite(v))

    @property
    def full(self) -> bool:
        return len(self.values) >= self.size

    def mean(self) -> float:
        if self.nan or (self.pos_inf and self.neg_inf):
            return math.nan
        if self.pos_inf:
            return math.inf
        if self.neg_inf:
            return -math.inf
        return self.total / len(self.values)


_AGGREGATES = {"min": min, "max": max}


class Series:
    """One (rule, run, metric) series: its state, and how a new value is evaluated."""

    __slots__ = ("rule", "state", "hold", "keep", "repeat")

    def __init__(self, rule: MetricRule, state: Optional[SeriesState] = None) -> None:
        self.rule = rule
        self.state = state or SeriesState()
        self.hold, self.keep, self.repeat = rule.for_, rule.keep_firing_for, rule.repeat_interval

    def push(self, value: float, now: float) -> Optional[tuple[str, dict]]:
        """Evaluate ``value``; ``(status, template fields)`` on a transition, else None."""
        raise NotImplementedError

    def push_many(self, values: list, nows: list) -> Optional[list]:
        """:meth:`push` each value in order (``nows[i]`` the time of ``values[i]``): the transitions
        as ``(index, status, fields)``, or None. Subclasses take shortcuts with the same results."""
        out = None
        push = self.push
        for i, value in enumerate(values):
            result = push(value, nows[i])
            if result is not None:
                if out is None:
                    out = []
                out.append((i, *result))
        return out

    def _advance(self, active: bool, now: float) -> Optional[str]:
        state = self.state
        if not active and state.phase is INACTIVE:
            return None  # the common case, without a call
        return step_state(state, active, now, self.hold, self.keep, self.repeat)


class ThresholdSeries(Series):
    """``condition`` on the last value, or on ``aggregate`` over the last ``window`` values."""

    __slots__ = ("test", "window", "rolling", "skips_nan")

    def __init__(self, rule: ThresholdRule, state: Optional[SeriesState] = None) -> None:
        super().__init__(rule, state)
        self.test = rule.condition.test
        self.skips_nan = rule.condition.op not in ("nan", "non-finite")
        self.window = rule.window if rule.window > 1 else None
        self.rolling = RollingMean(rule.window) if rule.window > 1 and rule.aggregate == "mean" else None
        if self.window and self.state.buffer is None and self.rolling is None:
            self.state.buffer = deque(maxlen=rule.window)

    def push_many(self, values: list, nows: list) -> Optional[list]:
        # The common case, a rule on the last value that is not firing, when no value of the batch
        # makes it hold: one C loop, no change of state (each push would have returned None).
        if self.window is None and self.state.phase is INACTIVE:
            if self.rule.condition.op == "non-finite":
                total = sum(values)  # finite values only: the sum is finite (or overflowed: checked below)
                if total - total == 0.0:
                    return None
            elif not any(map(self.test, values)):
                return None
        return Series.push_many(self, values, nows)

    def measure(self, value: float) -> Optional[float]:
        if self.window is None:
            return value
        if self.rolling is not None:
            self.rolling.push(value)
            return self.rolling.mean() if self.rolling.full else None
        buffer = self.state.buffer
        buffer.append(value)
        if len(buffer) < self.window:
            return None  # not enough points yet: no evaluation
        if self.rule.aggregate == "last":
            return value
        if any(v != v for v in buffer):
            return math.nan
        return _AGGREGATES[self.rule.aggregate](buffer)

    def push(self, value: float, now: float) -> Optional[tuple[str, dict]]:
        if self.window is None:
            measured = value
        else:
            measured = self.measure(value)
            if measured is None:
                return None
        if self.skips_nan and measured != measured:
            return None  # NaN says nothing about "> 10": no evaluation (nan/non-finite rules see it)
        active = self.test(measured)
        state = self.state
        if not active and state.phase is INACTIVE:
            return None  # the common case, inline
        status = step_state(state, active, now, self.hold, self.keep, self.repeat)
        if status is None:
            return None
        rule = self.rule
        return status, {"value": measured, "threshold": rule.condition.threshold, "condition": str(rule.condition),
                        "aggregate": rule.aggregate, "window": rule.window}


class ChangeSeries(Series):
    """The mean of the last ``window`` values against the mean of the ``prior_window`` before them."""

    __slots__ = ("current", "prior", "by", "relative", "direction")

    def __init__(self, rule: ChangeRule, state: Optional[SeriesState] = None) -> None:
        super().__init__(rule, state)
        spec = rule.change
        self.current, self.prior = RollingMean(spec.window), RollingMean(spec.prior)
        self.by, self.relative, self.direction = spec.by, spec.relative, spec.direction

    def push(self, value: float, now: float) -> Optional[tuple[str, dict]]:
        windows = self._means_fast(value) if value - value == 0.0 else self._means(value)
        if windows is None:
            return None
        prior, current = windows
        delta = current - prior
        if delta != delta:
            return None  # a NaN in either window: no evaluation, so a diverging run cannot "resolve"
        if self.relative:
            delta = delta / abs(prior) if prior != 0 else (0.0 if delta == 0 else math.copysign(math.inf, delta))
        if self.direction == "increase":
            active = delta >= self.by
        elif self.direction == "decrease":
            active = -delta >= self.by
        else:
            active = abs(delta) >= self.by
        status = self._advance(active, now)
        if status is None:
            return None
        spec = self.rule.change
        return status, {"value": current, "change": delta, "by": spec.by, "direction": spec.direction,
                        "window": spec.window, "prior_window": spec.prior, "current": current, "prior": prior}


    def push_many(self, values: list, nows: list) -> Optional[list]:
        """:meth:`push` for each value, with the fast path's arithmetic inline in one loop while the
        windows and the batch hold only finite values (the same operations in the same order as
        RollingMean.push and mean(), the sums and counts kept in locals and stored back at the end)."""
        current, prior = self.current, self.prior
        total = sum(values)
        if current.odd or prior.odd or total - total != 0.0:
            return Series.push_many(self, values, nows)
        if self.state.phase is INACTIVE:
            quiet = self._quiet_batch(values)
            if quiet is not None:
                return None  # nothing held: the windows and sums are where the loop would leave them
        out = None
        resum_every = RESUM_EVERY
        cur_values, old_values = current.values, prior.values
        cur_size, old_size = current.size, prior.size
        cur_append, cur_popleft = cur_values.append, cur_values.popleft
        old_append, old_popleft = old_values.append, old_values.popleft
        cur_total, old_total = current.total, prior.total
        cur_updates, old_updates = current.updates, prior.updates
        cur_len, old_len = len(cur_values), len(old_values)
        relative, direction, by, state = self.relative, self.direction, self.by, self.state
        fsum = math.fsum  # RollingMean.resum: every value here is finite
        for i, value in enumerate(values):
            cur_append(value)
            cur_total += value
            cur_updates += 1
            if cur_len < cur_size:
                cur_len += 1
                if cur_updates >= resum_every:
                    cur_updates, cur_total = 0, fsum(cur_values)
                continue
            evicted = cur_popleft()
            cur_total -= evicted
            if cur_updates >= resum_every:
                cur_updates, cur_total = 0, fsum(cur_values)
            old_append(evicted)
            old_total += evicted
            if old_len < old_size:
                old_len += 1
            else:
                old_total -= old_popleft()
            old_updates += 1
            if old_updates >= resum_every:
                old_updates, old_total = 0, fsum(old_values)
            if old_len < old_size:
                continue
            before, now_mean = old_total / old_len, cur_total / cur_len
            delta = now_mean - before
            if relative:
                delta = delta / abs(before) if before != 0 else (0.0 if delta == 0 else math.copysign(math.inf, delta))
            if direction == "increase":
                active = delta >= by
            elif direction == "decrease":
                active = -delta >= by
            else:
                active = abs(delta) >= by
            if not active and state.phase is INACTIVE:
                continue
            if delta != delta:
                continue  # as push(): no evaluation
            status = step_state(state, active, nows[i], self.hold, self.keep, self.repeat)
            if status is None:
                continue
            spec = self.rule.change
            if out is None:
                out = []
            out.append((i, status, {"value": now_mean, "change": delta, "by": spec.by, "direction": spec.direction,
                                    "window": spec.window, "prior_window": spec.prior, "current": now_mean,
                                    "prior": before}))
        current.total, prior.total = cur_total, old_total
        current.updates, prior.updates = cur_updates, old_updates
        return out

    def _quiet_batch(self, values: list) -> Optional[bool]:
        """For a batch of finite values while both windows are full and hold only finite values,
        and no exact re-sum falls inside it: compute every evaluation with C loops (running sums
        through ``itertools.accumulate``, in the loop's order: ``t + v`` then ``+ (-e)``, which is
        ``- e`` exactly), and if the condition holds for none of them, move the windows and sums
        to where the loop would leave them and return True. None (nothing changed) otherwise: the
        caller then runs the loop."""
        current, prior = self.current, self.prior
        cur_size, old_size, count = current.size, prior.size, len(values)
        if (len(current.values) != cur_size or len(prior.values) != old_size
                or current.updates + count >= RESUM_EVERY or prior.updates + count >= RESUM_EVERY):
            return None
        full = [*prior.values, *current.values, *values]  # oldest first
        # Step i adds values[i] to the current window and evicts full[old_size + i] from it, which
        # the prior window adds while evicting full[i].
        steps = [0.0] * (2 * count)
        steps[0::2] = values
        steps[1::2] = [-v for v in full[old_size:old_size + count]]
        cur_totals = list(accumulate(steps, add, initial=current.total))[2::2]
        steps[0::2] = full[old_size:old_size + count]
        steps[1::2] = [-v for v in full[:count]]
        old_totals = list(accumulate(steps, add, initial=prior.total))[2::2]
        befores = list(map(truediv, old_totals, repeat(old_size)))
        deltas = list(map(sub, map(truediv, cur_totals, repeat(cur_size)), befores))
        if self.relative:
            if 0.0 in befores:
                return None
            deltas = list(map(truediv, deltas, map(abs, befores)))
        if self.direction == "increase":
            held = any(map(ge, deltas, repeat(self.by)))
        elif self.direction == "decrease":
            held = any(map(le, deltas, repeat(-self.by)))  # -delta >= by, negation being exact
        else:
            held = any(map(ge, map(abs, deltas), repeat(self.by)))
        if held:
            return None
        current.values.clear()
        current.values.extend(full[-cur_size:])
        prior.values.clear()
        prior.values.extend(full[-cur_size - old_size:-cur_size])
        current.total, prior.total = cur_totals[-1], old_totals[-1]
        current.updates += count
        prior.updates += count
        return True

    def _means(self, value: float) -> Optional[tuple[float, float]]:
        """Push ``value``; ``(prior mean, current mean)`` once both windows are full, else None."""
        evicted = self.current.push(value)
        if evicted is None:
            return None
        self.prior.push(evicted)
        if not self.prior.full:
            return None
        return self.prior.mean(), self.current.mean()

    def _means_fast(self, value: float) -> Optional[tuple[float, float]]:
        """:meth:`_means` for a finite value, inline while both windows hold only finite values: the
        same arithmetic in the same order as RollingMean.push and mean(), without their calls (this
        runs on the training thread for every point of a metric a change rule watches)."""
        current, prior = self.current, self.prior
        if current.odd or prior.odd:
            return self._means(value)
        values = current.values
        values.append(value)
        current.total += value
        current.updates += 1
        if len(values) <= current.size:
            if current.updates >= RESUM_EVERY:
                current.resum()
            return None
        evicted = values.popleft()
        current.total -= evicted
        if current.updates >= RESUM_EVERY:
            current.resum()
        older = prior.values
        older.append(evicted)
        prior.total += evicted
        if len(older) > prior.size:
            prior.total -= older.popleft()
        prior.updates += 1
        if prior.updates >= RESUM_EVERY:
            prior.resum()
        if len(older) < prior.size:
            return None
        return prior.total / len(older), current.total / len(values)


def new_series(rule: MetricRule, state: Optional[SeriesState] = None) -> Series:
    return ThresholdSeries(rule, state) if rule.kind == "threshold" else ChangeSeries(rule, state)


def check_stalled(rule: StalledRule, state: SeriesState, last_data_at: float, now: float) -> Optional[str]:
    """Whether a live run has been silent for ``rule.after``: fires once, resolves when data returns."""
    return step_state(state, now - last_data_at >= rule.after, now, repeat_interval=rule.repeat_interval)


class RunRules:
    """A rule set applied to one run. ``observe_row`` runs on the logging thread for every committed row;
    ``check_stalled`` on a watchdog thread; ``on_end`` when the run ends."""

    def __init__(self, rules: Iterable[Any], run: RunInfo, start: float,
                 previous: Optional["RunRules"] = None) -> None:
        self.run = run
        mine = [rule for rule in rules if rule.applies_to(run)]
        self.metric_rules: list[MetricRule] = [r for r in mine if isinstance(r, (ThresholdRule, ChangeRule))]
        self.stalled_rules: list[StalledRule] = [r for r in mine if isinstance(r, StalledRule)]
        self.state_rules: list[RunStateRule] = [r for r in mine if isinstance(r, RunStateRule)]
        self._cache: dict[str, tuple] = {}
        self._stalled_states = {rule.name: SeriesState() for rule in self.stalled_rules}
        self._stalled_lock = threading.Lock()
        self._stalled_firing = False
        self.last_data_at = start
        self.last_step: Optional[int] = None
        if previous is not None:
            self._carry_over(previous)

    def _carry_over(self, previous: "RunRules") -> None:
        # On reload, a rule that did not change keeps its series (state and window: no spurious
        # refire or resolve); a changed rule starts afresh.
        for metric, entries in _items_of(previous._cache):  # the logging thread may add keys meanwhile
            old = {series.rule.name: series for series in entries}
            self._cache[metric] = tuple(
                old[series.rule.name] if series.rule.name in old and old[series.rule.name].rule == series.rule
                else series
                for series in self._resolve(metric))
        old_stalled = {rule.name: rule for rule in previous.stalled_rules}
        for rule in self.stalled_rules:
            if old_stalled.get(rule.name) == rule:
                self._stalled_states[rule.name] = previous._stalled_states[rule.name]
        self.last_data_at, self.last_step = previous.last_data_at, previous.last_step
        self._stalled_firing = any(s.phase == FIRING for s in self._stalled_states.values())

    def restore_firing(self, firing: Iterable[tuple[str, Optional[str], float]]) -> None:
        """Continue series that were firing when the run's last process ended: ``(rule, metric, when
        it last notified)``. A resumed run whose metric is still bad does not notify again before
        its ``repeat_interval``, and one that recovered resolves (the notification log, Alertmanager
        style, so that a restart does not re-send)."""
        for rule_name, metric, notified_at in firing:
            if metric is None:
                state = self._stalled_states.get(rule_name)
                if state is not None:
                    state.phase, state.fired_at = FIRING, notified_at
                    self._stalled_firing = True
                continue
            entries = self._cache.get(metric)
            if entries is None:
                entries = self._cache[metric] = self._resolve(metric)
            for series in entries:
                if series.rule.name == rule_name:
                    series.state.phase, series.state.fired_at = FIRING, notified_at

    def _resolve(self, metric: str) -> tuple:
        if metric.startswith("_"):
            return ()
        return tuple(new_series(rule) for rule in self.metric_rules if rule.watches(metric))

    def observe_row(self, row: dict, step: int, now: float) -> Optional[list[Transition]]:
        """Evaluate every rule that watches a key of ``row``; the transitions, or None."""
        out: Optional[list[Transition]] = None
        if self._stalled_firing:
            out = self._data_arrived(now)
        self.last_data_at, self.last_step = now, step
        cache = self._cache
        for key, value in row.items():
            entries = cache.get(key)
            if entries is None:
                entries = cache[key] = self._resolve(key)
            if not entries:
                continue
            kind = type(value)
            if kind is not float:
                if kind is not int and kind is not bool:
                    continue  # strings, media, lists: nothing to compare
                try:
                    value = float(value)
                except OverflowError:  # an int beyond a float's range
                    value = math.inf if value > 0 else -math.inf
            for series in entries:
                result = series.push(value, now)
                if result is not None:
                    if out is None:
                        out = []
                    status, fields = result
                    out.append(Transition(series.rule, status, self.run, now, key, fields["value"], step, fields))
        return out

    def observe_rows(self, rows: list, nows: list) -> Optional[list[Transition]]:
        """:meth:`observe_row` for each committed row in order (its step under ``_step``, its time
        ``nows[i]``), evaluated a metric at a time over the whole batch: the same transitions, in
        the same order, with one pass per watched metric instead of one call per row and key."""
        out: Optional[list[Transition]] = None
        if not rows:
            return None
        if self._stalled_firing:
            out = self._data_arrived(nows[0])
        self.last_data_at, self.last_step = nows[-1], rows[-1]["_step"]
        cache = self._cache
        found = []  # (row index, key, series index, status, fields): sorted into observe_row's order
        for key in set().union(*rows):
            if type(key) is not str:
                continue  # the writer's own key (ROW_RUN)
            entries = cache.get(key)
            if entries is None:
                entries = cache[key] = self._resolve(key)
            if not entries:
                continue
            values, at, where = _column(rows, nows, key)
            if not values:
                continue
            for position, series in enumerate(entries):
                hits = series.push_many(values, at)
                if hits:
                    found.extend((where[i] if where is not None else i, key, position, status, fields)
                                 for i, status, fields in hits)
        if not found:
            return out
        if len(found) > 1:  # a row's transitions in its keys' order, then the rules' order, as observe_row
            found.sort(key=lambda hit: (hit[0], _key_index(rows[hit[0]], hit[1]), hit[2]))
        out = out or []
        for index, key, position, status, fields in found:
            series = cache[key][position]
            out.append(Transition(series.rule, status, self.run, nows[index], key, fields["value"],
                                  rows[index]["_step"], fields))
        return out

    def check_stalled(self, now: float) -> Optional[list[Transition]]:
        """Evaluate the stalled rules at ``now``; the transitions, or None."""
        if not self.stalled_rules:
            return None
        out = None
        with self._stalled_lock:
            for rule in self.stalled_rules:
                status = check_stalled(rule, self._stalled_states[rule.name], self.last_data_at, now)
                if status is not None:
                    if out is None:
                        out = []
                    fields = {"after": format_duration(rule.after),
                              "since": format_duration(max(0.0, now - self.last_data_at))}
                    out.append(Transition(rule, status, self.run, now, step=self.last_step, fields=fields))
            self._stalled_firing = any(s.phase == FIRING for s in self._stalled_states.values())
        return out

    def stalled_overruled(self, rule_name: str, firing_since: Optional[float], last_data_at: float) -> None:
        """A stalled verdict of this engine that was not recorded, because the store knows better (a
        server replica sharing the run): ``firing_since`` is when another replica notified it (the
        series goes on firing, a repeat counted from then), or None: the run logged through another
        replica at ``last_data_at`` (the series is inactive again, silence counted from then)."""
        with self._stalled_lock:
            self.last_data_at = max(self.last_data_at, last_data_at)
            state = self._stalled_states.get(rule_name)
            if state is not None:
                if firing_since is None:
                    state.phase, state.count, state.since, state.fired_at = INACTIVE, 0, None, None
                else:
                    state.phase, state.fired_at = FIRING, firing_since
            self._stalled_firing = any(s.phase == FIRING for s in self._stalled_states.values())

    def _data_arrived(self, now: float) -> Optional[list[Transition]]:
        """Data came back to a run a stalled rule fires for: resolve it, saying how long it was silent."""
        out = []
        with self._stalled_lock:
            silence = format_duration(max(0.0, now - self.last_data_at))
            for rule in self.stalled_rules:
                if step_state(self._stalled_states[rule.name], False, now) == RESOLVED:
                    fields = {"after": format_duration(rule.after), "since": silence}
                    out.append(Transition(rule, RESOLVED, self.run, now, step=self.last_step, fields=fields))
            self._stalled_firing = False
        return out or None

    def on_end(self, state: str, now: float, error: Optional[str] = None,
               exit_code: Optional[int] = None) -> list[Transition]:
        """The run ended in ``state``: the run-state rules that fire (once; they never resolve)."""
        fields = {"run.state": state, "error": error or "", "exit_code": 0 if exit_code is None else exit_code}
        return [Transition(rule, FIRING, self.run, now, step=self.last_step, fields=fields)
                for rule in self.state_rules if state in rule.states]


_ABSENT = object()


def _column(rows: list, nows: list, key: str) -> tuple[list, list, Optional[list]]:
    """The values of ``key`` in ``rows`` as floats, as observe_row reads them (ints and bools
    converted, anything else skipped), with their times and, when some rows were skipped, their
    row indexes (None: every row, in order)."""
    values = [row.get(key, _ABSENT) for row in rows]
    if type(values[0]) is float and len(set(map(type, values))) == 1:  # the common case: a float in every row
        return values, nows, None
    kept, at, where = [], [], []
    for i, value in enumerate(values):
        kind = type(value)
        if kind is not float:
            if kind is not int and kind is not bool:
                continue  # absent, strings, media, lists: nothing to compare
            try:
                value = float(value)
            except OverflowError:  # an int beyond a float's range
                value = math.inf if value > 0 else -math.inf
        kept.append(value)
        at.append(nows[i])
        where.append(i)
    return kept, at, where


def _key_index(row: dict, key: str) -> int:
    # list() in one C call: the writer's thread may take its key out of the row meanwhile.
    return list(row).index(key)


def _items_of(cache: dict) -> list:
    """A copy of a dict's items that another thread may be adding to: even ``list(d.items())`` can
    let that thread in (a garbage collection while it allocates) and fail with "changed size during
    iteration", so copy again until one copy completes."""
    while True:
        try:
            return list(cache.items())
        except RuntimeError:
            continue
