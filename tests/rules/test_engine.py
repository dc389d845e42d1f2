"""The rules engine, table-tested: every kind, every transition, on explicit times (no clock)."""

from __future__ import annotations

import math

import pytest

from alerts.rules.engine import FIRING, INACTIVE, PENDING, RESOLVED, RunRules, SeriesState, step_state
from alerts.rules.schema import RuleFile, RunInfo, parse_hold

RUN = RunInfo(id="r1", name="run-1", project="vision", owner="alice", group="sweep-3", tags=("baseline",))


def rules(*specs: dict):
    return RuleFile.model_validate({"rules": list(specs)}).rules


def feed(rule_specs, values, metric="loss", interval=1.0, run=RUN):
    """Feed one series (None = missing) at times 0, interval, ...; return (step, status) transitions."""
    engine = RunRules(rules(*rule_specs), run, start=0.0)
    out = []
    for step, value in enumerate(values):
        if value is None:
            continue
        for t in engine.observe_row({metric: value}, step, step * interval) or ():
            out.append((step, t.rule.name, t.status))
    return out


# -- the state machine itself ------------------------------------------------------------------------

@pytest.mark.parametrize("hold, keep, sequence, expected", [
    # no `for`: fires on the first active evaluation, resolves on the first clear one
    (None, None, [1, 1, 0, 0], [FIRING, None, RESOLVED, None]),
    # for: 3 evaluations
    (3, None, [1, 1, 1, 1, 0], [None, None, FIRING, None, RESOLVED]),
    # a spike shorter than `for` never fires
    (3, None, [1, 1, 0, 1, 1, 0], [None, None, None, None, None, None]),
    # keep_firing_for: 2 evaluations: a single clear evaluation does not resolve
    (None, 2, [1, 0, 1, 0, 0], [FIRING, None, None, None, RESOLVED]),
])
def test_step_state_by_evaluations(hold, keep, sequence, expected):
    state = SeriesState()
    hold = parse_hold(hold) if hold else None
    keep = parse_hold(keep) if keep else None
    got = [step_state(state, bool(active), float(i), hold, keep) for i, active in enumerate(sequence)]
    assert got == expected


def test_step_state_by_duration():
    state, hold = SeriesState(), parse_hold("2m")
    assert step_state(state, True, 0.0, hold) is None and state.phase == PENDING
    assert step_state(state, True, 119.0, hold) is None
    assert step_state(state, True, 120.0, hold) == FIRING and state.phase == FIRING
    keep = parse_hold("5m")
    assert step_state(state, False, 130.0, hold, keep) is None  # clear, but not for 5 minutes yet
    assert step_state(state, False, 429.0, hold, keep) is None
    assert step_state(state, False, 430.0, hold, keep) == RESOLVED and state.phase == INACTIVE


# -- threshold --------------------------------------------------------------------------------------

@pytest.mark.parametrize("condition, values, expected", [
    ("> 10", [5, 11, 12, 9], [(1, FIRING), (3, RESOLVED)]),
    (">= 10", [10, 9], [(0, FIRING), (1, RESOLVED)]),
    ("< 0.3", [0.5, 0.2], [(1, FIRING)]),
    ("<= 0.3", [0.3], [(0, FIRING)]),
    ("== 0", [1, 0, 0, 1], [(1, FIRING), (3, RESOLVED)]),
    ("!= 1", [1, 2], [(1, FIRING)]),
    ("nan", [1, math.nan, math.inf, 1], [(1, FIRING), (2, RESOLVED)]),
    ("non-finite", [1, math.nan, math.inf, -math.inf, 1], [(1, FIRING), (4, RESOLVED)]),
    ("> 10", [math.nan, math.inf], [(1, FIRING)]),  # NaN compares false; +Inf is greater than 10
])
def test_threshold_conditions(condition, values, expected):
    got = feed([{"name": "r", "metric": "loss", "condition": condition}], values)
    assert [(step, status) for step, _, status in got] == expected


def test_for_holds_back_a_single_spike():
    spec = {"name": "r", "metric": "loss", "condition": "> 10", "for": 3}
    assert feed([spec], [1, 50, 1, 1, 50, 50, 1]) == []
    assert feed([spec], [1, 50, 50, 50, 1]) == [(3, "r", FIRING), (4, "r", RESOLVED)]


def test_for_as_a_duration_uses_the_sample_times():
    spec = {"name": "r", "metric": "loss", "condition": "> 10", "for": "2m"}
    # points a minute apart: pending at 1m, held 2m at 3m
    assert feed([spec], [1, 50, 50, 50, 1], interval=60.0) == [(3, "r", FIRING), (4, "r", RESOLVED)]


def test_flapping_with_keep_firing_for_neither_resolves_nor_refires():
    spec = {"name": "r", "metric": "loss", "condition": "> 10", "keep_firing_for": 3}
    flapping = [50, 1, 50, 1, 1, 50, 1, 50]
    assert feed([spec], flapping) == [(0, "r", FIRING)]
    assert feed([spec], flapping + [1, 1, 1]) == [(0, "r", FIRING), (10, "r", RESOLVED)]
    without = {"name": "r", "metric": "loss", "condition": "> 10"}
    assert len(feed([without], flapping)) == 7  # four notifications and three resolutions, prevented


def test_resolved_is_emitted_once():
    spec = {"name": "r", "metric": "loss", "condition": "> 10"}
    assert feed([spec], [50, 1, 1, 1, 1]) == [(0, "r", FIRING), (1, "r", RESOLVED)]


@pytest.mark.parametrize("aggregate, values, expected", [
    ("mean", [1, 1, 0, 0, 0, 1, 1], [(3, FIRING), (6, RESOLVED)]),  # mean of [1,0,0] < 0.5; [0,1,1] is not
    ("min", [1, 0.2, 1, 1, 1], [(2, FIRING), (4, RESOLVED)]),      # any of the last 3 below 0.5
    ("max", [0.2, 0.1, 0.3, 1], [(2, FIRING), (3, RESOLVED)]),     # all of the last 3 below 0.5
    ("last", [1, 1, 0.2], [(2, FIRING)]),
])
def test_window_aggregates_wait_for_a_full_window(aggregate, values, expected):
    spec = {"name": "r", "metric": "acc", "condition": "< 0.5", "window": 3, "aggregate": aggregate}
    got = feed([spec], values, metric="acc")
    assert [(step, status) for step, _, status in got] == expected


def test_window_mean_with_nan_is_nan():
    spec = {"name": "r", "metric": "loss", "condition": "non-finite", "window": 2, "aggregate": "mean"}
    assert feed([spec], [1, math.nan, 1, 1]) == [(1, "r", FIRING), (3, "r", RESOLVED)]


# -- change -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, values, expected", [
    ({"by": 0.5, "relative": True, "direction": "increase"}, [1, 1, 1.6, 1.6, 3], [(2, FIRING), (3, RESOLVED), (4, FIRING)]),
    ({"by": 0.5, "relative": True, "direction": "increase"}, [1, 0.2], []),
    ({"by": 0.5, "relative": True, "direction": "decrease"}, [1, 0.4], [(1, FIRING)]),
    ({"by": 2, "direction": "any"}, [10, 7, 8], [(1, FIRING), (2, RESOLVED)]),
    ({"by": 2, "direction": "any", "window": 2, "prior_window": 2}, [0, 0, 3, 3], [(3, FIRING)]),
    ({"by": 1, "relative": True, "direction": "increase"}, [0, 0, 1], [(2, FIRING)]),  # from zero: infinite
])
def test_change(change, values, expected):
    spec = {"name": "c", "kind": "change", "metric": "loss", "change": change}
    got = feed([spec], values)
    assert [(step, status) for step, _, status in got] == expected


# -- stalled and run state ----------------------------------------------------------------------------

def test_stalled_fires_once_after_silence_and_resolves_when_data_returns():
    engine = RunRules(rules({"name": "s", "kind": "stalled", "after": "10m"}), RUN, start=0.0)
    engine.observe_row({"loss": 1.0}, 0, 0.0)
    assert engine.check_stalled(599.0) is None
    (fired,) = engine.check_stalled(600.0)
    assert (fired.rule.name, fired.status, fired.step, fired.fields["since"]) == ("s", FIRING, 0, "10m")
    assert engine.check_stalled(1200.0) is None  # still firing: nothing new
    (resolved,) = engine.observe_row({"loss": 1.0}, 1, 1500.0)
    assert (resolved.status, resolved.fields["since"]) == (RESOLVED, "25m")
    assert engine.check_stalled(1600.0) is None


def test_run_that_never_logs_is_stalled_from_its_start():
    engine = RunRules(rules({"name": "s", "kind": "stalled", "after": "1m"}), RUN, start=100.0)
    assert engine.check_stalled(159.0) is None
    assert [t.status for t in engine.check_stalled(160.0)] == [FIRING]


def test_run_state_rules_fire_for_their_states_only():
    engine = RunRules(rules({"name": "f", "kind": "run_state", "states": ["failed", "crashed"]}), RUN, start=0.0)
    assert engine.on_end("finished", 10.0) == []
    (t,) = engine.on_end("failed", 10.0, error="ValueError", exit_code=1)
    assert (t.rule.name, t.status, t.fields["run.state"], t.fields["error"]) == ("f", FIRING, "failed", "ValueError")


# -- selection: globs and runs: ------------------------------------------------------------------------

def test_metric_globs_and_run_selectors():
    specs = [
        {"name": "any-loss", "metric": "*loss*", "condition": "> 1"},
        {"name": "exact", "metric": "train/loss", "condition": "> 1"},
        {"name": "vision-only", "metric": "*", "condition": "> 1", "runs": {"project": "vis*"}},
        {"name": "nlp-only", "metric": "*", "condition": "> 1", "runs": {"project": ["nlp", "text-*"]}},
        {"name": "baseline", "metric": "*", "condition": "> 1", "runs": {"tags": ["base*"], "group": "sweep-*"}},
        {"name": "needs-tag", "metric": "*", "condition": "> 1", "runs": {"tags": ["baseline", "final"]}},
        {"name": "other-owner", "metric": "*", "condition": "> 1", "runs": {"owner": "bob"}},
    ]
    engine = RunRules(rules(*specs), RUN, start=0.0)
    fired = {t.rule.name for t in engine.observe_row({"train/loss": 5.0}, 0, 0.0)}
    assert fired == {"any-loss", "exact", "vision-only", "baseline"}
    fired = {t.rule.name for t in engine.observe_row({"val/acc": 5.0}, 1, 1.0)}
    assert fired == {"vision-only", "baseline"}


def test_rules_are_resolved_once_per_metric_and_non_numbers_are_skipped():
    engine = RunRules(rules({"name": "r", "metric": "*", "condition": "> 1"}), RUN, start=0.0)
    assert engine.observe_row({"note": "hello", "table": {"_type": "table-file"}, "_step": 5}, 0, 0.0) is None
    engine.observe_row({"loss": 0.5}, 1, 1.0)
    entries = engine._cache["loss"]
    assert [series.rule.name for series in entries] == ["r"]
    engine.observe_row({"loss": 0.5}, 2, 2.0)
    assert engine._cache["loss"] is entries  # the same resolved tuple: no re-matching per point
    assert engine._cache["_step"] == ()


@pytest.mark.parametrize("aggregate", ["mean", "max"])
def test_memory_per_series_is_bounded_by_the_window(aggregate):
    spec = {"name": "r", "metric": "loss", "condition": "> 1", "window": 5, "aggregate": aggregate}
    change = {"name": "c", "kind": "change", "metric": "loss", "change": {"by": 1, "window": 3, "prior_window": 4}}
    engine = RunRules(rules(spec, change), RUN, start=0.0)
    for step in range(25_000):
        engine.observe_row({"loss": 0.5}, step, float(step))
    threshold, change_series = engine._cache["loss"]
    window = threshold.rolling.values if aggregate == "mean" else threshold.state.buffer
    assert len(window) == 5
    assert (len(change_series.current.values), len(change_series.prior.values)) == (3, 4)


def test_rolling_mean_is_exact_enough_over_a_long_run_and_knows_non_finite_values():
    from alerts.rules.engine import RollingMean

    rolling = RollingMean(3)
    for i in range(100_003):
        rolling.push(0.1 * (i % 7))
    assert rolling.mean() == pytest.approx(sum(0.1 * (i % 7) for i in range(100_000, 100_003)) / 3, abs=1e-12)
    for value, expected in ((math.inf, math.inf), (-math.inf, math.nan), (1.0, math.nan), (1.0, -math.inf),
                            (1.0, 1.0), (math.nan, math.nan), (2.0, math.nan), (2.0, math.nan), (2.0, 2.0)):
        rolling.push(value)
        got = rolling.mean()
        assert (math.isnan(got) and math.isnan(expected)) or got == expected, (value, got, expected)


def test_reload_keeps_the_state_of_unchanged_rules():
    spec = {"name": "r", "metric": "loss", "condition": "> 10"}
    engine = RunRules(rules(spec), RUN, start=0.0)
    assert [t.status for t in engine.observe_row({"loss": 50.0}, 0, 0.0)] == [FIRING]
    reloaded = RunRules(rules(spec, {"name": "new", "metric": "loss", "condition": "> 100"}), RUN, 0.0, previous=engine)
    assert reloaded.observe_row({"loss": 50.0}, 1, 1.0) is None  # still firing: no refire after reload
    changed = RunRules(rules({**spec, "condition": "> 20"}), RUN, 0.0, previous=reloaded)
    assert [t.status for t in changed.observe_row({"loss": 50.0}, 2, 2.0)] == [FIRING]  # a changed rule starts afresh


def test_nan_neither_fires_nor_resolves_a_comparison():
    spec = {"name": "r", "metric": "loss", "condition": "> 10"}
    assert feed([spec], [1, 50, 50, math.nan, 50]) == [(1, "r", FIRING)]  # NaN is no evidence of recovery
    change = {"name": "c", "kind": "change", "metric": "loss", "change": {"by": 1, "direction": "increase"}}
    assert feed([change], [1, 5, math.nan, math.nan, 9]) == [(1, "c", FIRING)]


def test_values_beyond_float_range_do_not_break_evaluation():
    spec = {"name": "r", "metric": "loss", "condition": "> 10"}
    assert feed([spec], [10**400]) == [(0, "r", FIRING)]


def test_reload_while_the_logging_thread_adds_metrics():
    import threading

    spec = {"name": "r", "metric": "*", "condition": "> 10"}
    engine = RunRules(rules(spec), RUN, start=0.0)
    stop = threading.Event()

    def log_new_keys():
        for i in range(20_000):
            if stop.is_set():
                return
            engine.observe_row({f"m{i}": 1.0}, i, float(i))

    thread = threading.Thread(target=log_new_keys)
    thread.start()
    try:
        while thread.is_alive():
            RunRules(rules(spec), RUN, 0.0, previous=engine)  # must not fail with "dict changed size"
    finally:
        stop.set()
        thread.join()


def test_repeat_interval_says_firing_again_while_the_problem_lasts():
    spec = {"name": "r", "metric": "loss", "condition": "> 10", "repeat_interval": "1h"}
    values = [50] * 8 + [1]
    got = feed([spec], values, interval=1200.0)  # a point every 20 minutes
    assert got == [(0, "r", FIRING), (3, "r", FIRING), (6, "r", FIRING), (8, "r", RESOLVED)]
    stalled = RunRules(rules({"name": "s", "kind": "stalled", "after": "10m", "repeat_interval": "1h"}), RUN, start=0.0)
    statuses = [t.status for now in (600.0, 1800.0, 4200.0) for t in stalled.check_stalled(now) or ()]
    assert statuses == [FIRING, FIRING]  # at 10 min, and an hour later


def test_no_repeat_without_repeat_interval():
    spec = {"name": "r", "metric": "loss", "condition": "> 10", "repeat_interval": None}
    assert feed([spec], [50] * 10, interval=86400.0) == [(0, "r", FIRING)]
