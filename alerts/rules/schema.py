"""The rule file format (DESIGN.md's contract), as strict pydantic models.

Every model forbids unknown keys, so a typo (``conditon:``) is an error rather than a rule that
silently never fires. ``kind`` defaults to ``threshold``. Values that have a grammar of their own
(conditions, durations, ``for``) are parsed here, once, at load time.
"""

from __future__ import annotations

import fnmatch
import math
import operator
import re
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from alerts.rules.durations import format_duration, parse_duration



class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# -- conditions -------------------------------------------------------------------------------------

_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne, ">": operator.gt, "<": operator.lt,
}
_CONDITION = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?inf)\s*$")


@dataclass(frozen=True)
class Condition:
    """A parsed condition: a comparison with a threshold, ``nan``, or ``non-finite``."""

    text: str
    op: str  # one of _COMPARISONS, or "nan", or "non-finite"
    threshold: Optional[float] = None

    @property
    def test(self) -> Callable[[float], bool]:
        """A one-argument predicate (built once per series). Series skip NaN for
        comparisons, so that a diverging run neither fires nor resolves "> 10" by accident."""
        if self.op == "nan":
            return math.isnan
        if self.op == "non-finite":
            isfinite = math.isfinite
            return lambda value: not isfinite(value)
        # A bound method of the threshold, with the comparison mirrored (value > t is t < value):
        # a C call per evaluation instead of a Python one.
        mirrored = {">": "__lt__", ">=": "__le__", "<": "__gt__", "<=": "__ge__", "==": "__eq__", "!=": "__ne__"}
        return getattr(float(self.threshold), mirrored[self.op])

    def __str__(self) -> str:
        return self.text


def parse_condition(text: Any) -> Condition:
    """``"> 10"``, ``">= 0.5"``, ``"< 1e-3"``, ``"== 0"``, ``"!= 1"``, ``"nan"``, ``"non-finite"``."""
    if isinstance(text, Condition):
        return text
    if not isinstance(text, str):
        raise ValueError(f"condition must be a string such as \"> 10\", \"nan\" or \"non-finite\", not {text!r}")
    cleaned = text.strip()
    if cleaned.lower() in ("nan", "non-finite"):
        return Condition(cleaned.lower(), cleaned.lower())
    match = _CONDITION.match(cleaned)
    if not match:
        raise ValueError(f"{text!r} is not a condition (use \"> x\", \">= x\", \"< x\", \"<= x\", \"== x\", "
                         "\"!= x\", \"nan\" or \"non-finite\")")
    return Condition(f"{match.group(1)} {match.group(2)}", match.group(1), float(match.group(2)))


# -- for / keep_firing_for ------------------------------------------------------------------------


@dataclass(frozen=True)
class Hold:
    """How long a condition must hold: a number of consecutive evaluations, or a duration in seconds."""

    evaluations: Optional[int] = None
    seconds: Optional[float] = None

    def held(self, count: int, since: Optional[float], now: float) -> bool:
        if self.evaluations is not None:
            return count >= self.evaluations
        return since is not None and now - since >= self.seconds

    def __str__(self) -> str:
        if self.evaluations is not None:
            return f"{self.evaluations} evaluations"
        return format_duration(self.seconds)


def parse_hold(value: Any) -> Hold:
    """``3`` (consecutive evaluations) or ``"2m"`` (a duration)."""
    if isinstance(value, Hold):
        return value
    if isinstance(value, bool):
        raise ValueError("must be a number of evaluations (3) or a duration (\"2m\")")
    if isinstance(value, int):
        if value < 1:
            raise ValueError("a number of evaluations must be at least 1")
        return Hold(evaluations=value)
    if isinstance(value, str):
        if value.strip().isdigit():
            return parse_hold(int(value))
        return Hold(seconds=parse_duration(value))
    raise ValueError(f"must be a number of evaluations (3) or a duration (\"2m\"), not {value!r}")


def _seconds(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("must be a duration such as \"10m\"")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ValueError("must be positive")
        return float(value)
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError("must be positive")
    return seconds


# -- run selectors ----------------------------------------------------------------------------------

Globs = Union[str, list[str]]


def _as_list(value: Optional[Globs]) -> Optional[tuple[str, ...]]:
    if value is None:
        return None
    return (value,) if isinstance(value, str) else tuple(value)


class RunSelector(Strict):
    """Which runs a rule watches. Each field is a glob or a list of globs (any may match); ``tags``
    lists tags the run must all have (each a glob). An absent field matches every run."""

    project: Optional[Globs] = None
    name: Optional[Globs] = None
    group: Optional[Globs] = None
    job_type: Optional[Globs] = None
    owner: Optional[Globs] = None
    tags: Optional[list[str]] = None

    def matches(self, run: "RunInfo") -> bool:
        for field in ("project", "name", "group", "job_type", "owner"):
            patterns = _as_list(getattr(self, field))
            if patterns is None:
                continue
            value = getattr(run, field)
            if value is None or not any(fnmatch.fnmatchcase(value, p) for p in patterns):
                return False
        if self.tags:
            return all(any(fnmatch.fnmatchcase(tag, p) for tag in run.tags) for p in self.tags)
        return True


@dataclass(frozen=True)
class RunInfo:
    """What rules know of a run: its identity, for selectors and templates."""

    id: str
    name: str
    project: str
    owner: str = ""
    group: Optional[str] = None
    job_type: Optional[str] = None
    tags: tuple[str, ...] = ()


# -- rules ------------------------------------------------------------------------------------------


class RuleBase(Strict):
    name: str = Field(min_length=1)
    level: Literal["INFO", "WARN", "ERROR"] = "WARN"
    runs: Optional[RunSelector] = None
    notify: list[str] = Field(default_factory=lambda: ["owner"])
    title: Optional[str] = None
    text: Optional[str] = None
    labels: dict[str, str] = Field(default_factory=dict)
    repeat_interval: Optional[float] = Field(default=4 * 3600.0, description="seconds; written as 4h")
    send_resolved: bool = True

    @field_validator("repeat_interval", mode="before")
    @classmethod
    def _repeat_interval(cls, value: Any) -> Optional[float]:
        return None if value is None else _seconds(value)

    def applies_to(self, run: RunInfo) -> bool:
        return self.runs is None or self.runs.matches(run)


class MetricRule(RuleBase):
    metric: str = Field(min_length=1)
    for_: Optional[Hold] = Field(default=None, alias="for")
    keep_firing_for: Optional[Hold] = None

    @field_validator("for_", "keep_firing_for", mode="before")
    @classmethod
    def _hold(cls, value: Any) -> Optional[Hold]:
        return None if value is None else parse_hold(value)

    def watches(self, metric: str) -> bool:
        return self.metric == metric or fnmatch.fnmatchcase(metric, self.metric)


class ThresholdRule(MetricRule):
    """Fires when ``condition`` holds for the last point, or for ``aggregate`` over ``window`` points."""

    kind: Literal["threshold"] = "threshold"
    condition: Condition
    window: int = Field(default=1, ge=1, le=10_000)
    aggregate: Literal["last", "mean", "min", "max"] = "last"

    @field_validator("condition", mode="before")
    @classmethod
    def _condition(cls, value: Any) -> Condition:
        return parse_condition(value)


class Change(Strict):
    """The mean of the last ``window`` points against the mean of the ``prior_window`` before them."""

    by: float = Field(gt=0)
    relative: bool = False
    direction: Literal["increase", "decrease", "any"] = "any"
    window: int = Field(default=1, ge=1, le=10_000)
    prior_window: Optional[int] = Field(default=None, ge=1, le=10_000)

    @property
    def prior(self) -> int:
        return self.prior_window or self.window


class ChangeRule(MetricRule):
    kind: Literal["change"]
    change: Change


class RunStateRule(RuleBase):
    """Fires once when a run ends in one of ``states``."""

    kind: Literal["run_state"]
    states: list[Literal["finished", "failed", "killed", "preempted", "crashed"]] = Field(min_length=1)
    repeat_interval: Optional[float] = None


class StalledRule(RuleBase):
    """Fires when a live run has logged nothing for ``after``; resolves when data comes again."""

    kind: Literal["stalled"]
    after: float

    @field_validator("after", mode="before")
    @classmethod
    def _after(cls, value: Any) -> float:
        return _seconds(value)


Rule = Annotated[Union[ThresholdRule, ChangeRule, RunStateRule, StalledRule], Field(discriminator="kind")]


class RuleFile(Strict):
    """One rule file: ``rules:`` and the list of rules."""

    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _default_kind(cls, data: Any) -> Any:
        # kind is optional and means threshold; the discriminated union needs it spelt out.
        if isinstance(data, dict) and isinstance(data.get("rules"), list):
            data = dict(data)
            data["rules"] = [
                {**rule, "kind": "threshold"} if isinstance(rule, dict) and "kind" not in rule else rule
                for rule in data["rules"]
            ]
        return data


KINDS = ("threshold", "change", "run_state", "stalled")
