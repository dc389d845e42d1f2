"""Rules for the API: the active rule set as data, and the check of a rule file posted as text.

The check is ``alerts rules check`` on text: the same loader (:func:`alerts.rules.loader.load_text`),
the same bounds on YAML (aliases, depth), the same messages, each split into line, rule, key and
problem for a client to point at. Whatever the text, the answer is a list of errors, never a crash.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

from alerts.rules.active import ActiveRules
from alerts.rules.loader import LoadedRule, load_text

POSTED = "posted.yaml"  # the file name errors give for the posted text
# "posted.yaml:12: rule 'loss-jump': change.by: Input should be greater than 0"
_ERROR = re.compile(r"^(?P<file>[^:]*):(?P<line>\d+): (?:rule (?P<rule>'[^']*'|\"[^\"]*\"|#\d+): )?"
                    r"(?:(?P<key>[A-Za-z0-9_.\-]+): )?(?P<message>.*)$", re.S)


def split_error(text: str) -> dict:
    """``{"line", "rule", "key", "message", "text"}`` of one loader message (parts it lacks are None)."""
    match = _ERROR.match(text)
    if match is None:
        return {"line": None, "rule": None, "key": None, "message": text.removeprefix(f"{POSTED}: "), "text": text}
    rule = match.group("rule")
    if rule is not None and rule[0] in "'\"":
        rule = rule[1:-1]
    return {"line": int(match.group("line")), "rule": rule, "key": match.group("key"),
            "message": match.group("message"), "text": text}


def check_text(text: str, active: Optional[ActiveRules] = None) -> dict:
    """Check a rule file's text: ``errors`` (split), the ``rules`` it defines, and ``warnings`` for
    names that the active rule set already uses (two files may not share a name)."""
    errors: list[str] = []
    loaded = load_text(text, Path(POSTED), errors)
    warnings = []
    if active is not None and not errors:
        in_use = {r.rule.name: r.source for r in active.ruleset.rules}
        for rule in loaded:
            if rule.rule.name in in_use:
                warnings.append(f"{rule.source}: rule {rule.rule.name!r}: name: also used by the active rule at "
                                f"{_short(in_use[rule.rule.name])}: both files together would not load")
    return {"valid": not errors, "errors": [split_error(e) for e in errors],
            "rules": [] if errors else [describe(r) for r in loaded], "warnings": warnings}


def _short(source: str) -> str:
    """``file:line`` with the file's folder left out (the server's paths are not the client's business)."""
    path, _, line = source.rpartition(":")
    return f"{Path(path).name}:{line}"


def _plain(value: Any) -> Any:
    if hasattr(value, "text") and hasattr(value, "op"):  # a Condition
        return str(value)
    if hasattr(value, "evaluations") and hasattr(value, "seconds"):  # a Hold
        return str(value)
    return value


def describe(loaded: LoadedRule) -> dict:
    """A loaded rule as data: its name, kind, level, source, and its whole definition."""
    rule = loaded.rule
    definition = rule.model_dump(mode="python", by_alias=True, exclude_none=True)
    definition = {key: _plain(getattr(rule, "for_" if key == "for" else key, value)) if key in
                  ("condition", "for", "keep_firing_for") else value for key, value in definition.items()}
    return {"name": rule.name, "kind": rule.kind, "level": rule.level, "metric": getattr(rule, "metric", None),
            "source": _short(loaded.source), "definition": definition}


def active_view(active: ActiveRules) -> dict:
    return {"items": [describe(r) for r in active.ruleset.rules], "generation": active.generation,
            "files": [p.name for p in active.ruleset.files], "last_error": active.last_error}
