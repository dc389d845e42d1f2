"""The rules engine: pure state machines, one per (rule, run, metric).

::

    inactive --condition holds--> pending --held for `for`--> firing --clear for `keep_firing_for`--> inactive
        ^                            |                          (emits "firing")      (emits "resolved")
        +------condition clears------+

:func:`step_state` is the whole machine: it takes a state, whether the condition holds now, and
``now``, and returns the status to emit (``"firing"``, ``"resolved"`` or ``None``). The observers
below feed it: :func:`observe_threshold` and :func:`observe_change` keep a bounded window of the
series (constant memory per series), :func:`check_stalled` compares the time of the last data with
``now``. Nothing here reads a clock, a file or a database.

:class:`RunRules` applies a rule set to one run: which rules watch a metric is worked out once per
(run, metric) and cached, so a point costs work only for the rules that match it.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass, field
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
    buffer: Optional[deque] = None  # the last window (+ prior window) values
    last_value: Optional[float] = None
    last_step: Optional[int] = None
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


def step_state(state: SeriesState, active: bool, now: float, hold=None, keep_firing_for=None) -> Optional[str]:
    """Advance the state machine by one evaluation; return ``"firing"``/``"resolved"`` or None."""
    if active:
        if state.phase == FIRING:
            state.count, state.since = 0, None  # a clear streak, if any, is broken
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


def _aggregate(values: Iterable[float], how: str) -> float:
    values = list(values)
    if how == "last":
        return values[-1]
    if any(math.isnan(v) for v in values):
        return math.nan
    if how == "mean":
        return math.fsum(values) / len(values)
    return min(values) if how == "min" else max(values)


def observe_threshold(rule: ThresholdRule, state: SeriesState, value: float, now: float) -> tuple[Optional[str], dict]:
    """One point of a threshold rule's series: update the window, evaluate, advance."""
    if rule.window == 1:
        measured = value
    else:
        if state.buffer is None:
            state.buffer = deque(maxlen=rule.window)
        state.buffer.append(value)
        if len(state.buffer) < rule.window:
            return None, {}  # not enough points yet: no evaluation
        measured = _aggregate(state.buffer, rule.aggregate)
    status = step_state(state, rule.condition.test(measured), now, rule.for_, rule.keep_firing_for)
    return status, {"value": measured, "threshold": rule.condition.threshold, "condition": str(rule.condition),
                    "aggregate": rule.aggregate, "window": rule.window}


def observe_change(rule: ChangeRule, state: SeriesState, value: float, now: float) -> tuple[Optional[str], dict]:
    """One point of a change rule's series: the last window's mean against the prior window's."""
    spec = rule.change
    if state.buffer is None:
        state.buffer = deque(maxlen=spec.window + spec.prior)
    state.buffer.append(value)
    if len(state.buffer) < spec.window + spec.prior:
        return None, {}
    values = list(state.buffer)
    prior = _aggregate(values[:spec.prior], "mean")
    current = _aggregate(values[spec.prior:], "mean")
    delta = current - prior
    if spec.relative:
        delta = delta / abs(prior) if prior != 0 else (0.0 if delta == 0 else math.copysign(math.inf, delta))
    if spec.direction == "increase":
        active = delta >= spec.by
    elif spec.direction == "decrease":
        active = -delta >= spec.by
    else:
        active = abs(delta) >= spec.by
    status = step_state(state, active, now, rule.for_, rule.keep_firing_for)
    return status, {"value": current, "change": delta, "by": spec.by, "direction": spec.direction,
                    "window": spec.window, "prior_window": spec.prior, "current": current, "prior": prior}


def check_stalled(rule: StalledRule, state: SeriesState, last_data_at: float, now: float) -> Optional[str]:
    """Whether a live run has been silent for ``rule.after``: fires once, resolves when data returns."""
    return step_state(state, now - last_data_at >= rule.after, now)


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
        # On reload, a rule that did not change keeps its series states (no spurious refire/resolve);
        # a changed rule starts afresh.
        for metric, entries in previous._cache.items():
            old = {rule.name: (rule, state) for rule, state in entries}
            self._cache[metric] = tuple(
                (rule, old[rule.name][1] if rule.name in old and old[rule.name][0] == rule else state)
                for rule, state in self._resolve(metric))
        old_stalled = {rule.name: rule for rule in previous.stalled_rules}
        for rule in self.stalled_rules:
            if old_stalled.get(rule.name) == rule:
                self._stalled_states[rule.name] = previous._stalled_states[rule.name]
        self.last_data_at, self.last_step = previous.last_data_at, previous.last_step
        self._stalled_firing = any(s.phase == FIRING for s in self._stalled_states.values())

    def _resolve(self, metric: str) -> tuple:
        if metric.startswith("_"):
            return ()
        return tuple((rule, SeriesState()) for rule in self.metric_rules if rule.watches(metric))

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
            if kind is not float and kind is not int and kind is not bool:
                continue  # strings, media, lists: nothing to compare
            value = float(value)
            for rule, state in entries:
                if rule.kind == "threshold":
                    status, fields = observe_threshold(rule, state, value, now)
                else:
                    status, fields = observe_change(rule, state, value, now)
                state.last_value, state.last_step = value, step
                if status is not None:
                    if out is None:
                        out = []
                    out.append(Transition(rule, status, self.run, now, key, fields.get("value", value), step, fields))
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
