"""Rule files: strict parsing, errors that name the file, line, rule and field, safe templates."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from alerts.rules.loader import RuleLoadError, load_rules
from alerts.rules.templates import Template, TemplateError
from conftest import REPO


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def errors_of(*paths) -> list[str]:
    with pytest.raises(RuleLoadError) as info:
        load_rules(paths)
    return info.value.errors


def test_the_design_example_loads(tmp_path):
    path = write(tmp_path, "r.yaml", """
        rules:
          - name: loss-not-finite
            metric: "*loss*"
            condition: non-finite
            level: ERROR
          - name: accuracy-floor
            metric: val/val_accuracy
            condition: "< 0.3"
            window: 5
            aggregate: mean
            for: 3
            runs: {project: "pytorch-*", tags: [baseline]}
            notify: [owner, bob]
            title: "Accuracy {value:.2f} in {run.name}"
            repeat_interval: 4h
            send_resolved: true
          - name: loss-jump
            kind: change
            metric: loss
            change: {by: 0.5, relative: true, direction: increase, window: 10, prior_window: 50}
          - name: stalled
            kind: stalled
            after: 10m
          - name: crashed
            kind: run_state
            states: [failed, crashed]
    """)
    ruleset = load_rules([path])
    assert [r.rule.name for r in ruleset.rules] == ["loss-not-finite", "accuracy-floor", "loss-jump", "stalled", "crashed"]
    floor = ruleset.rules[1].rule
    assert (floor.window, floor.aggregate, floor.for_.evaluations, floor.repeat_interval) == (5, "mean", 3, 14400.0)
    assert ruleset.rules[3].rule.after == 600.0
    assert ruleset.rules[1].source == f"{path}:6"


@pytest.mark.parametrize("body, expected", [
    ("  - name: a\n    metric: x\n    conditon: '> 1'\n", ["r.yaml:4: rule 'a': conditon: unknown key 'conditon'",
                                                         "r.yaml:2: rule 'a': condition: Field required"]),
    ("  - name: a\n    metric: x\n    condition: '>> 1'\n", ["r.yaml:4: rule 'a': condition: '>> 1' is not a condition"]),
    ("  - name: a\n    kind: stalled\n    after: 10 mins\n", ["r.yaml:4: rule 'a': after: '10 mins' is not a duration"]),
    ("  - name: a\n    metric: x\n    condition: '> 1'\n    for: -2\n", ["r.yaml:5: rule 'a': for: a number of evaluations must be at least 1"]),
    ("  - name: a\n    kind: thresold\n", ["r.yaml:3: rule 'a': kind: kind must be one of threshold, change, run_state, stalled"]),
    ("  - name: a\n    kind: change\n    metric: x\n    change: {by: 0}\n", ["r.yaml:5: rule 'a': change.by: Input should be greater than 0"]),
    ("  - name: a\n    kind: run_state\n    states: [exploded]\n", ["r.yaml:4: rule 'a': states.0: Input should be"]),
    ("  - name: a\n    metric: x\n    condition: '> 1'\n    level: CRITICAL\n", ["r.yaml:5: rule 'a': level: Input should be 'INFO', 'WARN' or 'ERROR'"]),
    ("  - name: a\n    metric: x\n    condition: '> 1'\n    title: '{run.__class__}'\n", ["r.yaml:5: rule 'a': title: '{run.__class__}': unknown field {run.__class__}"]),
    ("  - name: a\n    metric: x\n    condition: '> 1'\n    text: '{value:.2q}'\n", ["r.yaml:5: rule 'a': text: '{value:.2q}': Unknown format code 'q'"]),
    ("  - name: a\n    metric: x\n    condition: '> 1'\n    metric: y\n", ["r.yaml:5: key 'metric' appears twice (first on line 3)"]),
])
def test_errors_name_file_line_rule_and_field(tmp_path, body, expected):
    path = write(tmp_path, "r.yaml", "rules:\n" + body)
    errors = errors_of(tmp_path)
    for want in expected:
        assert any(error.startswith(f"{tmp_path}/{want}") for error in errors), (want, errors)
    assert all(error.startswith(f"{path}:") for error in errors)


def test_duplicate_names_across_files_and_bad_yaml(tmp_path):
    write(tmp_path, "a.yaml", "rules:\n  - {name: same, metric: x, condition: '> 1'}\n")
    write(tmp_path, "b.yml", "rules:\n  - {name: same, metric: y, condition: '> 2'}\n")
    write(tmp_path, "c.yaml", "rules: [\n")
    write(tmp_path, "notes.txt", "not a rule file")
    errors = errors_of(tmp_path)
    assert any("b.yml:2: rule 'same': name: already used at" in e and "a.yaml:2" in e for e in errors)
    assert any("c.yaml:2: not valid YAML" in e for e in errors)
    assert len(errors) == 2


def test_templates_cannot_reach_into_objects():
    allowed = {"value", "run.name"}
    assert Template("{run.name}: {value:.2f} {value!r}", allowed).render({"run.name": "r", "value": 0.5}) == "r: 0.50 0.5"
    for bad in ("{run.__class__}", "{value.__class__.__mro__}", "{0}", "{}", "{value[0]}", "{value:{run.name}}",
                "{value!a}", "{unclosed"):
        with pytest.raises(TemplateError):
            Template(bad, allowed)
    # a value the spec cannot format is written plain rather than failing the alert
    assert Template("{value:.2f}", allowed).render({"value": "n/a"}) == "n/a"


def test_rules_check_cli(tmp_path):
    shipped = subprocess.run([sys.executable, "-m", "alerts.cli", "rules", "check", str(REPO / "rules")],
                             capture_output=True, text=True, timeout=60)
    assert shipped.returncode == 0, shipped.stderr
    assert "default.yaml: 4 rule(s) OK" in shipped.stdout
    bad = write(tmp_path, "typo.yaml", "rules:\n  - name: loss-nan\n    metric: loss\n    condtion: nan\n")
    result = subprocess.run([sys.executable, "-m", "alerts.cli", "rules", "check", str(bad)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"{bad}:4: rule 'loss-nan': condtion: unknown key 'condtion'" in result.stderr
