"""Sizes a rule file cannot blow up: format widths are checked at load, rendered titles and texts are
cut, and ``alerts rules test`` series are bounded."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import alerts as wandb
from alerts.rules.templates import MAX_FORMAT_WIDTH, MAX_TEXT_CHARS, MAX_TITLE_CHARS
from alerts.rules.testing import run_test_file


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "alerts.cli", *args], capture_output=True, text=True, timeout=120)


def write_rules(folder, text: str):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "r.yaml"
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def test_rules_check_rejects_an_absurd_width_or_precision_with_file_line_rule_field(tmp_path):
    path = write_rules(tmp_path, """
        rules:
          - name: wide
            metric: loss
            condition: "> 1"
            title: "loss {value:>5000000}"
          - name: precise
            metric: loss
            condition: "> 1"
            text: "loss {value:.1001f}"
          - name: huge
            metric: loss
            condition: "> 1"
            title: "{value:0>99999999999999999999999999}"
    """)
    result = cli("rules", "check", str(path))
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert f"{path}:5: rule 'wide': title: " in out and "asks for 5000000 characters" in out
    assert f"{path}:9: rule 'precise': text: " in out and "asks for 1001 characters" in out
    assert f"{path}:13: rule 'huge': title: " in out
    assert out.count(f"a width or precision may be at most {MAX_FORMAT_WIDTH}") == 3


def test_a_width_at_the_limit_loads(tmp_path):
    path = write_rules(tmp_path, f"""
        rules:
          - {{name: ok, metric: loss, condition: "> 1", title: "{{value:0>{MAX_FORMAT_WIDTH}.{MAX_FORMAT_WIDTH}f}}"}}
    """)
    result = cli("rules", "check", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


LONG_RULE = f"""
    rules:
      - name: long
        metric: loss
        condition: "> 1"
        title: "{{run.name}} {"t" * 400}"
        text: "{'{value:>999}' * 5}"
"""


def test_a_rule_alert_stores_and_prints_its_title_and_text_cut(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ALERTS_RULES", str(write_rules(tmp_path / "rules", LONG_RULE)))
    run = wandb.init(project="p", name="r1")
    wandb.log({"loss": 5.0})
    wandb.finish()
    (alert,) = [a for a in wandb.Api().run(run.id).alerts() if a["status"] == "firing"]
    assert len(alert["title"]) == MAX_TITLE_CHARS and alert["title"].startswith("r1 ttt")
    assert alert["title"].endswith("t…")
    assert len(alert["text"]) == MAX_TEXT_CHARS and alert["text"].endswith("…")
    console = [line for line in capsys.readouterr().err.splitlines() if line.startswith("alerts: [WARN] r1 ")]
    assert console and len(console[0]) < MAX_TITLE_CHARS + MAX_TEXT_CHARS + 100


def test_rules_test_compares_the_cut_title_a_live_run_stores(tmp_path):
    write_rules(tmp_path, LONG_RULE)
    cut = "test-run " + "t" * (MAX_TITLE_CHARS - len("test-run ") - 1) + "…"
    (tmp_path / "t.yaml").write_text(
        "rule_files: [r.yaml]\n"
        "tests:\n"
        "  - name: cut\n"
        "    series: {loss: '5'}\n"
        f"    expected_alerts: [{{rule: long, step: 0, title: '{cut}'}}]\n")
    (outcome,) = run_test_file(tmp_path / "t.yaml")
    assert outcome.passed, outcome


@pytest.mark.parametrize("series, points", [
    ("1+1x999999999", "1000000000"),
    ("_x5000000000", "5000000000"),
    ("0x99999 1", "100001"),
])
def test_rules_test_refuses_a_series_too_long_naming_file_test_and_series(tmp_path, series, points):
    write_rules(tmp_path, "rules:\n  - {name: big, metric: loss, condition: '> 10'}\n")
    (tmp_path / "t.yaml").write_text(
        "rule_files: [r.yaml]\n"
        "tests:\n"
        "  - name: fine\n"
        "    series: {loss: '1 2'}\n"
        "  - name: endless\n"
        f"    series: {{loss: '1', val/loss: '{series}'}}\n")
    result = cli("rules", "test", str(tmp_path / "t.yaml"))
    assert result.returncode == 1
    assert (f"{tmp_path / 't.yaml'}: test 'endless': series 'val/loss': {points} points; "
            "a series may have at most 100000") in result.stdout


def test_rules_test_accepts_a_series_at_the_limit(tmp_path):
    write_rules(tmp_path, "rules:\n  - {name: big, metric: loss, condition: '> 10'}\n")
    (tmp_path / "t.yaml").write_text(
        "rule_files: [r.yaml]\ntests:\n  - name: long\n    series: {loss: '0x99998 50'}\n"
        "    expected_alerts: [{rule: big, step: 99999}]\n")
    (outcome,) = run_test_file(tmp_path / "t.yaml")
    assert outcome.passed, outcome


def test_rules_test_refuses_an_endless_silence_and_names_a_bad_token(tmp_path):
    write_rules(tmp_path, "rules:\n  - {name: quiet, kind: stalled, after: 10m}\n")
    (tmp_path / "t.yaml").write_text(
        "rule_files: [r.yaml]\n"
        "tests:\n"
        "  - name: forever\n"
        "    series: {loss: '1'}\n"
        "    silence: 1000d\n"
        "  - name: typo\n"
        "    series: {loss: '1 abc'}\n"
        "  - name: fine\n"
        "    series: {loss: '1'}\n"
        "    silence: 15m\n"
        "    expected_alerts: [{rule: quiet, at: 10m}]\n")
    result = cli("rules", "test", str(tmp_path / "t.yaml"))
    assert result.returncode == 1
    assert (f"{tmp_path / 't.yaml'}: test 'forever': silence: 1000d at an interval of 60s is 1440000 "
            "evaluations; at most 100000") in result.stdout
    assert f"{tmp_path / 't.yaml'}: test 'typo': series 'loss': 'abc' is not a value" in result.stdout
    assert "PASS  fine" in result.stdout and "1 passed, 2 failed" in result.stdout
