"""Rules: YAML threshold, change, stalled and run-state rules, evaluated as metrics arrive."""

from alerts.rules.engine import RunRules, SeriesState, Transition, step_state
from alerts.rules.loader import RuleLoadError, RuleSet, load_rules
from alerts.rules.schema import RunInfo

__all__ = ["RunRules", "SeriesState", "Transition", "step_state", "RuleLoadError", "RuleSet", "load_rules",
           "RunInfo"]
