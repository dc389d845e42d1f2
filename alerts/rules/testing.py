"""Unit tests for rules, in YAML, in the spirit of ``promtool test rules``.

::

    rule_files: [../default.yaml]      # relative to this file
    interval: 1m                       # simulated time between steps (default 1m)
    tests:
      - name: NaN loss fires at once and resolves
        run: {project: demo, name: r1, tags: [baseline]}     # optional: what selectors see
        series:                        # one value per step; all series share the steps
          loss: "1 1 nan 1"
          val/acc: "0.9-0.1x5 _ 0.2"
        silence: 15m                   # optional: time passes with no data after the last step
        end: failed                    # optional: the run then ends in this state
        expected_alerts:               # every transition, in order (fields given are compared)
          - {rule: loss-not-finite, status: firing, metric: loss, step: 2}
          - {rule: loss-not-finite, status: resolved, step: 3}

Series notation (promtool's): ``1 2 3``; ``_`` is a missing point; ``a+bxn`` is a, a+b, ... a+n*b
(n+1 values), ``a-bxn`` likewise downwards, ``axn`` repeats a n+1 times, ``_xn`` is n missing points;
``nan``, ``inf``, ``-inf`` are values. Everything runs on a simulated clock; nothing sleeps.

A series may have at most :data:`MAX_SERIES_POINTS` points (``1+1x999999999`` is refused before
anything is expanded), and ``silence`` at most as many evaluations of the ``interval``: a test that
asks for more fails on its own, naming the file, the test and the series.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from alerts.rules.durations import parse_duration
from alerts.rules.engine import RunRules, Transition
from alerts.rules.loader import RuleLoadError, RuleSet, load_rules
from alerts.rules.schema import RunInfo
from alerts.rules.templates import clip_text, clip_title, template_values
from alerts.yamlfile import describe_decode_error, describe_yaml_error, load_bounded, read_utf8

MISSING = None
_TOKEN = re.compile(r"^(?P<start>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?:(?P<sign>[-+])(?P<step>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?))?x(?P<count>\d+)$")
_BLANKS = re.compile(r"^_x(\d+)$")
_START = 1_700_000_000.0
# Points one series of a rule test may have (and evaluations a silence may take): far more than a
# rule's windows need, and a few MB of floats, not all the memory there is.
MAX_SERIES_POINTS = 100_000


class RuleTestError(ValueError):
    """A rule test asks for more than can be simulated (too many points, an endless silence)."""


def _room(have: int, digits: str, extra: int) -> int:
    """How many values a repeated token (``axn``, ``_xn``) adds to a series that has ``have``;
    refused, before any is made, when the series would pass :data:`MAX_SERIES_POINTS`."""
    if len(digits) > 18:  # int() of a 5,000-digit count is itself refused by Python
        raise RuleTestError(f"over 10^18 points; a series may have at most {MAX_SERIES_POINTS}")
    total = have + int(digits) + extra
    if total > MAX_SERIES_POINTS:
        raise RuleTestError(f"{total} points; a series may have at most {MAX_SERIES_POINTS}")
    return int(digits) + extra


def expand_series(text: Union[str, int, float]) -> list[Optional[float]]:
    """The values of a series in promtool's notation (None for a missing point)."""
    values: list[Optional[float]] = []
    for token in str(text).split():
        lowered = token.lower()
        if token == "_":
            values.append(MISSING)
        elif _BLANKS.match(token):
            values += [MISSING] * _room(len(values), _BLANKS.match(token).group(1), 0)
        elif lowered in ("nan", "inf", "+inf", "-inf"):
            values.append(float(lowered))
        elif _TOKEN.match(token):
            match = _TOKEN.match(token)
            start = float(match.group("start"))
            step = float(match.group("step") or 0) * (-1 if match.group("sign") == "-" else 1)
            values += [start + step * i for i in range(_room(len(values), match.group("count"), 1))]
        else:
            try:
                values.append(float(token))
            except ValueError:
                raise ValueError(f"{token!r} is not a value (use numbers, _, nan, inf, a+bxn, axn)") from None
    if len(values) > MAX_SERIES_POINTS:
        raise RuleTestError(f"{len(values)} points; a series may have at most {MAX_SERIES_POINTS}")
    return values


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExpectedAlert(_Strict):
    rule: str
    status: Literal["firing", "resolved"] = "firing"
    metric: Optional[str] = None
    step: Optional[int] = None
    at: Optional[str] = None  # time since the first step, e.g. "12m"
    title: Optional[str] = None
    text: Optional[str] = None


class RunSpec(_Strict):
    id: str = "test-run"
    name: str = "test-run"
    project: str = "test"
    owner: str = "tester"
    group: Optional[str] = None
    job_type: Optional[str] = None
    tags: list[str] = Field(default_factory=list)


class RuleTest(_Strict):
    name: str
    run: RunSpec = Field(default_factory=RunSpec)
    series: dict[str, Union[str, int, float]] = Field(default_factory=dict)
    silence: Optional[str] = None
    end: Optional[Literal["finished", "failed", "killed", "preempted", "crashed"]] = None
    expected_alerts: list[ExpectedAlert] = Field(default_factory=list)


class RuleTestFile(_Strict):
    rule_files: list[str]
    interval: str = "1m"
    tests: list[RuleTest]


@dataclass
class Outcome:
    """One test's result: what was expected, what happened, and the difference."""

    name: str
    passed: bool
    expected: list[str] = field(default_factory=list)
    got: list[str] = field(default_factory=list)
    problem: Optional[str] = None


def _describe(event: dict) -> str:
    parts = [f"{event['rule']} {event['status']}"]
    for key in ("metric", "step", "at"):
        if event.get(key) is not None:
            parts.append(f"{key}={event[key]}")
    for key in ("title", "text"):
        if event.get(key) is not None:
            parts.append(f"{key}={event[key]!r}")
    return " ".join(parts)


def _fmt_at(seconds: float) -> str:
    from alerts.rules.durations import format_duration

    return format_duration(seconds) if seconds else "0s"


def expand_test_series(test: RuleTest) -> dict[str, list[Optional[float]]]:
    """The test's series expanded; a bad one is a :class:`ValueError` naming it."""
    series = {}
    for metric, text in test.series.items():
        try:
            series[metric] = expand_series(text)
        except ValueError as exc:
            raise type(exc)(f"series {metric!r}: {exc}") from None
    return series


def _silence_seconds(test: RuleTest, interval: float) -> float:
    """The test's ``silence`` in seconds, refused if it would take more than MAX_SERIES_POINTS
    evaluations of ``interval`` (or the interval is not positive, which would never end)."""
    if not test.silence:
        return 0.0
    seconds = parse_duration(test.silence)
    if interval <= 0:
        raise RuleTestError("silence: the interval must be positive")
    if seconds / interval > MAX_SERIES_POINTS:
        raise RuleTestError(f"silence: {test.silence} at an interval of {interval:g}s is {seconds / interval:.0f} "
                            f"evaluations; at most {MAX_SERIES_POINTS}")
    return seconds


def simulate(ruleset: RuleSet, test: RuleTest, interval: float) -> list[dict]:
    """Run one test's series through the rules on a simulated clock; the transitions, in order."""
    series = expand_test_series(test)
    silence = _silence_seconds(test, interval)
    run = RunInfo(**test.run.model_dump())
    rules = RunRules(ruleset.plain_rules, run, start=_START)
    steps = max((len(values) for values in series.values()), default=0)
    events: list[dict] = []

    def record(transitions: Optional[list[Transition]]) -> None:
        for t in transitions or ():
            loaded = ruleset.templates(t.rule.name)
            values = template_values(t)
            events.append({"rule": t.rule.name, "status": t.status, "metric": t.metric, "step": t.step,
                           "at": _fmt_at(t.at - _START), "title": clip_title(loaded.title.render(values)),
                           "text": clip_text(loaded.text.render(values))})  # as a live run cuts them

    now = _START
    for step in range(steps):
        now = _START + step * interval
        record(rules.check_stalled(now))  # the watchdog ticks once per interval
        row = {metric: values[step] for metric, values in series.items()
               if step < len(values) and values[step] is not MISSING}
        if row:
            record(rules.observe_row(row, step, now))
    if silence:
        end = now + silence
        while now < end:
            now = min(end, now + interval)
            record(rules.check_stalled(now))
    if test.end:
        record(rules.on_end(test.end, now))
    return events


def _matches(expected: ExpectedAlert, got: dict) -> bool:
    for key, value in expected.model_dump(exclude_none=True).items():
        if key == "at":
            if _fmt_at(parse_duration(value)) != got["at"]:
                return False
        elif got.get(key) != value:
            return False
    return True


def run_test_file(path: Path) -> list[Outcome]:
    """Load a test file and its rule files, run every test; problems loading are one failed outcome."""
    try:
        data = load_bounded(read_utf8(path))  # bounded: no alias bombs
        spec = RuleTestFile.model_validate(data)
    except yaml.YAMLError as exc:
        return [Outcome(str(path), False, problem=f"cannot read the test file: {describe_yaml_error(path, exc)}")]
    except UnicodeDecodeError as exc:
        return [Outcome(str(path), False, problem=f"cannot read the test file: {describe_decode_error(path, exc)}")]
    except (OSError, ValidationError) as exc:
        return [Outcome(str(path), False, problem=f"cannot read the test file: {exc}")]
    try:
        interval = parse_duration(spec.interval)
        ruleset = load_rules([(path.parent / f) for f in spec.rule_files])
    except (ValueError, RuleLoadError) as exc:
        return [Outcome(str(path), False, problem=f"rules did not load:\n{exc}")]
    outcomes = []
    for test in spec.tests:
        try:
            got = simulate(ruleset, test, interval)
        except ValueError as exc:  # a bad series or silence fails its own test, named in full
            outcomes.append(Outcome(test.name, False, problem=f"{path}: test {test.name!r}: {exc}"))
            continue
        passed = len(got) == len(test.expected_alerts) and all(
            _matches(e, g) for e, g in zip(test.expected_alerts, got))
        shown = [{k: v for k, v in g.items() if k not in ("title", "text")} for g in got]
        # Titles and texts are shown only when the test asks about them (they are long).
        for expected, event, short in zip(test.expected_alerts, got, shown):
            for key in ("title", "text"):
                if getattr(expected, key) is not None:
                    short[key] = event[key]
        outcomes.append(Outcome(test.name, passed,
                                expected=[_describe(e.model_dump()) for e in test.expected_alerts],
                                got=[_describe(s) for s in shown]))
    return outcomes
