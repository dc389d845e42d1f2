"""Reading rule files: YAML -> validated rules, with errors that name the file, the line, the rule and
the field (``rules/train.yaml:12: rule 'loss-jump': change.by: Input should be greater than 0``).

All files are read and every error is collected before anything is returned, so that one
``alerts rules check`` shows every mistake at once. A rule set that fails to load is never
half-applied: callers keep the previous one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Union

from pydantic import ValidationError

from alerts.rules.schema import KINDS, RuleFile
from alerts.rules.templates import FIELDS_BY_KIND, Template, TemplateError
from alerts.yamlfile import line_of, parse_yaml, read_yaml, validation_errors

DEFAULT_TITLES = {
    "threshold": "{rule}: {metric} {condition} in {run.name}",
    "change": "{rule}: {metric} changed by {change:.3g} in {run.name}",
    "stalled": "{rule}: {run.name} has logged nothing for {since}",
    "run_state": "{rule}: {run.name} {run.state}",
}
DEFAULT_TEXTS = {
    "threshold": "{metric} = {value:.6g} at step {step} (condition: {condition})",
    "threshold-window": "{aggregate} of the last {window} {metric} = {value:.6g} at step {step} (condition: {condition})",
    "change": "{metric}: mean {current:.6g} against {prior:.6g} before ({direction} by {by} or more)",
    "stalled": "no new data for {since} (rule: {after}); last step {step}",
    "run_state": "run {run.name} in {run.project} ended {run.state} (exit code {exit_code})",
}


class RuleLoadError(Exception):
    """Rule files that could not be loaded; ``errors`` holds one ``file:line: ...`` message each."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass
class LoadedRule:
    """A validated rule with its templates and where it came from."""

    rule: Any
    title: Template
    text: Template
    source: str  # file:line


@dataclass
class RuleSet:
    """Every rule of a set of files, in file order."""

    rules: list[LoadedRule] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rules)

    @property
    def plain_rules(self) -> list[Any]:
        return [loaded.rule for loaded in self.rules]

    def templates(self, name: str) -> Optional[LoadedRule]:
        for loaded in self.rules:
            if loaded.rule.name == name:
                return loaded
        return None


def rule_files(paths: Iterable[Union[str, Path]]) -> list[Path]:
    """The rule files under ``paths``: a file as given; a folder's ``*.yaml``/``*.yml``, sorted."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        elif path.exists():
            files.append(path)
        else:
            raise RuleLoadError([f"{path}: no such file or folder"])
    return files


def _describe(loc: tuple, data: Any) -> tuple[tuple, str]:
    """The loc without pydantic's union tag, and ``rule 'name': `` when the error is inside a rule."""
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        index = loc[1]
        rest = loc[2:]
        if rest and rest[0] in KINDS:
            rest = rest[1:]  # the discriminated union's tag, not a key of the file
        name = None
        rules = data.get("rules") if isinstance(data, dict) else None
        if isinstance(rules, list) and index < len(rules) and isinstance(rules[index], dict):
            name = rules[index].get("name")
        prefix = f"rule {name!r}: " if name else f"rule #{index + 1}: "
        return ("rules", index, *rest), prefix
    return loc, ""


def load_file(path: Path, errors: list[str]) -> list[LoadedRule]:
    """The rules of one file; problems are appended to ``errors`` (nothing is raised)."""
    return _load(path, read_yaml(path, errors), errors)


def load_text(text: str, name: Path, errors: list[str]) -> list[LoadedRule]:
    """The rules of a rule file's text (errors name ``name`` as the file): what ``load_file`` does,
    for a file posted to the server rather than read from disk. Names used twice are errors too."""
    rules = _load(name, parse_yaml(text, name, errors), errors)
    _unique_names(rules, errors)
    return rules


def _load(path: Path, read, errors: list[str]) -> list[LoadedRule]:
    if read is None:
        return []
    root, data = read
    if data is None:
        return []
    if not isinstance(data, dict):
        errors.append(f"{path}:1: a rule file is a mapping with a 'rules:' list, not a {type(data).__name__}")
        return []
    try:
        parsed = RuleFile.model_validate(data)
    except ValidationError as exc:
        validation_errors(path, root, data, exc, errors, describe=_describe, field_from=2)
        return []
    loaded = []
    for index, rule in enumerate(parsed.rules):
        allowed = FIELDS_BY_KIND[rule.kind]
        templates = {}
        for which, defaults in (("title", DEFAULT_TITLES), ("text", DEFAULT_TEXTS)):
            default_key = "threshold-window" if which == "text" and getattr(rule, "window", 1) > 1 else rule.kind
            source = getattr(rule, which) or defaults[default_key]
            try:
                templates[which] = Template(source, allowed)
            except TemplateError as exc:
                line = line_of(root, ("rules", index, which))
                errors.append(f"{path}:{line}: rule {rule.name!r}: {which}: {exc}")
        if len(templates) == 2:
            line = line_of(root, ("rules", index))
            loaded.append(LoadedRule(rule, templates["title"], templates["text"], f"{path}:{line}"))
    return loaded


def _unique_names(rules: list[LoadedRule], errors: list[str]) -> None:
    seen: dict[str, str] = {}
    for loaded in rules:
        name = loaded.rule.name
        if name in seen:
            errors.append(f"{loaded.source}: rule {name!r}: name: already used at {seen[name]} (names are unique)")
        else:
            seen[name] = loaded.source


def load_rules(paths: Iterable[Union[str, Path]]) -> RuleSet:
    """Load every rule file under ``paths``; :class:`RuleLoadError` lists every problem found."""
    errors: list[str] = []
    files = rule_files(paths)
    rules: list[LoadedRule] = []
    for path in files:
        rules += load_file(path, errors)
    _unique_names(rules, errors)
    if errors:
        raise RuleLoadError(errors)
    return RuleSet(rules, files)
