"""``alerts rules test``: the series notation, the shipped tests, and loud failures."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from alerts.rules.testing import expand_series
from conftest import REPO


@pytest.mark.parametrize("text, expected", [
    ("1 2 3", [1, 2, 3]),
    ("1+2x3", [1, 3, 5, 7]),
    ("10-1x2", [10, 9, 8]),
    ("20x2", [20, 20, 20]),
    ("1 _ 2 _x2 3", [1, None, 2, None, None, 3]),
    ("1e-3 -2.5", [0.001, -2.5]),
])
def test_series_notation(text, expected):
    assert expand_series(text) == expected


def test_series_special_values_and_errors():
    values = expand_series("nan inf -inf")
    assert math.isnan(values[0]) and values[1:] == [math.inf, -math.inf]
    with pytest.raises(ValueError, match="'abc' is not a value"):
        expand_series("1 abc")


def rules_test(*files):
    return subprocess.run([sys.executable, "-m", "alerts.cli", "rules", "test", *map(str, files)],
                          capture_output=True, text=True, timeout=120)


def test_the_shipped_rule_tests_pass():
    result = rules_test(REPO / "rules" / "tests" / "default_test.yaml")
    assert result.returncode == 0, result.stdout
    assert "5 passed, 0 failed" in result.stdout


def test_a_wrong_expectation_fails_loudly(tmp_path):
    (tmp_path / "r.yaml").write_text("rules:\n  - {name: big, metric: loss, condition: '> 10', for: 2}\n")
    (tmp_path / "t.yaml").write_text(
        "rule_files: [r.yaml]\n"
        "tests:\n"
        "  - name: right\n"
        "    series: {loss: '1 50 50 1'}\n"
        "    expected_alerts:\n"
        "      - {rule: big, status: firing, step: 2, at: 2m}\n"
        "      - {rule: big, status: resolved, step: 3}\n"
        "  - name: wrong step\n"
        "    series: {loss: '1 50 50 1'}\n"
        "    expected_alerts: [{rule: big, step: 1}]\n")
    result = rules_test(tmp_path / "t.yaml")
    assert result.returncode == 1
    assert "PASS  right" in result.stdout
    assert "FAIL  wrong step" in result.stdout
    assert "expected:\n          big firing step=1\n        got:\n          big firing metric=loss step=2 at=2m\n" \
           "          big resolved metric=loss step=3 at=3m" in result.stdout
    assert "1 passed, 1 failed" in result.stdout


def test_a_test_file_with_broken_rules_reports_them(tmp_path):
    (tmp_path / "r.yaml").write_text("rules:\n  - {name: big, metric: loss, condition: 'bigger than 10'}\n")
    (tmp_path / "t.yaml").write_text("rule_files: [r.yaml]\ntests: []\n")
    result = rules_test(tmp_path / "t.yaml")
    assert result.returncode == 1
    assert "rules did not load" in result.stdout and "r.yaml:2: rule 'big': condition:" in result.stdout
