"""Rules evaluated inside a logging process: alerts recorded and notified as rows commit."""

from __future__ import annotations

import math

import pytest

import alerts as wandb
from alerts import clock
from alerts.rules.active import request_reload

NAN_RULE = "rules:\n  - {name: loss-nan, metric: '*loss*', condition: non-finite, level: ERROR}\n"


@pytest.fixture
def rules_dir(tmp_path, monkeypatch):
    folder = tmp_path / "rules"
    folder.mkdir()
    monkeypatch.setenv("ALERTS_RULES", str(folder))
    return folder


def rule_alerts(run):
    return [(a["rule"], a["status"], a["metric"], a["step"], a["outcome"])
            for a in wandb.Api().run(run.id).alerts() if a["source"] == "rule"]


def test_a_nan_loss_fires_and_resolves_through_log(rules_dir, capsys):
    (rules_dir / "r.yaml").write_text(NAN_RULE)
    run = wandb.init(project="p", name="r1")
    for value in (1.0, math.nan, math.nan, 0.5):
        wandb.log({"train/loss": value, "acc": 0.5})
    wandb.finish()
    assert rule_alerts(run) == [("loss-nan", "firing", "train/loss", 1, "notified"),
                                ("loss-nan", "resolved", "train/loss", 3, "notified")]
    err = capsys.readouterr().err
    assert "alerts: [ERROR] loss-nan: train/loss non-finite in r1: train/loss = nan at step 1" in err
    assert "alerts: [ERROR] RESOLVED loss-nan:" in err


def test_run_state_rule_fires_when_the_run_fails(rules_dir):
    (rules_dir / "r.yaml").write_text(
        "rules:\n  - name: failed\n    kind: run_state\n    states: [failed]\n"
        "    title: '{run.name} {run.state} with exit code {exit_code}'\n")
    run = wandb.init(project="p", name="r2")
    wandb.finish(exit_code=3)
    (alert,) = wandb.Api().run(run.id).alerts()
    assert (alert["rule"], alert["title"], alert["level"]) == ("failed", "r2 failed with exit code 3", "WARN")
    ok = wandb.init(project="p", name="r3")
    wandb.finish()
    assert wandb.Api().run(ok.id).alerts() == []


def test_stalled_is_checked_by_the_watchdog_on_a_stepped_clock(rules_dir, monkeypatch):
    (rules_dir / "r.yaml").write_text("rules:\n  - {name: quiet, kind: stalled, after: 10m}\n")
    fake = clock.FakeClock()
    monkeypatch.setattr(clock, "now", fake)
    run = wandb.init(project="p", name="r4")
    wandb.log({"loss": 1.0})
    fake.advance(9 * 60)
    assert run._writer.flush(10)  # a writer cycle: the watchdog runs at the fake now
    assert rule_alerts(run) == []
    fake.advance(61)
    assert run._writer.flush(10) and run._writer.flush(10)  # the tick raises; the next cycle commits
    assert rule_alerts(run) == [("quiet", "firing", None, 0, "notified")]
    fake.advance(5)
    wandb.log({"loss": 1.0})
    wandb.finish()
    assert [a[1] for a in rule_alerts(run)] == ["firing", "resolved"]
    resolved = wandb.Api().run(run.id).alerts()[-1]
    assert "has logged nothing for 10m6s" in resolved["title"]


def test_a_broken_rule_file_never_stops_the_run(rules_dir, caplog):
    (rules_dir / "r.yaml").write_text("rules:\n  - {name: x, metric: loss, conditon: nan}\n")
    run = wandb.init(project="p")
    wandb.log({"loss": math.nan})
    wandb.finish()
    assert "did not load" in caplog.text and "r.yaml:2: rule 'x': conditon: unknown key" in caplog.text
    assert wandb.Api().run(run.id).history(pandas=False)[0]["_step"] == 0
    assert rule_alerts(run) == []


def test_reload_applies_new_rules_to_a_live_run_and_keeps_them_on_a_bad_reload(rules_dir, store_dir, caplog):
    run = wandb.init(project="p")
    wandb.log({"loss": math.nan})
    assert run._rules is None  # no rules yet
    (rules_dir / "r.yaml").write_text(NAN_RULE)
    request_reload(store_dir)
    assert run._writer.flush(10)  # the writer's tick notices the marker
    wandb.log({"loss": math.nan})
    (rules_dir / "r.yaml").write_text("rules: [oops\n")
    request_reload(store_dir)
    assert run._writer.flush(10)
    wandb.log({"loss": 1.0})  # the previous (good) rules are still active: this resolves
    wandb.finish()
    assert [(a[0], a[1], a[3]) for a in rule_alerts(run)] == [("loss-nan", "firing", 1), ("loss-nan", "resolved", 2)]
    assert "keeping the previous rules" in caplog.text


def test_rules_select_runs_by_project_and_tags(rules_dir):
    (rules_dir / "r.yaml").write_text(
        "rules:\n  - {name: big, metric: loss, condition: '> 10', runs: {project: 'vision-*', tags: [baseline]}}\n")
    hit = wandb.init(project="vision-1", tags=["baseline", "x"])
    wandb.log({"loss": 50})
    wandb.finish()
    miss = wandb.init(project="vision-1", tags=["x"])
    wandb.log({"loss": 50})
    wandb.finish()
    assert len(rule_alerts(hit)) == 1 and rule_alerts(miss) == []


def test_send_resolved_false_records_the_resolution_as_suppressed(rules_dir, capsys):
    (rules_dir / "r.yaml").write_text(
        "rules:\n  - {name: big, metric: loss, condition: '> 10', send_resolved: false}\n")
    run = wandb.init(project="p")
    wandb.log({"loss": 50})
    wandb.log({"loss": 1})
    wandb.finish()
    assert [(a[1], a[4]) for a in rule_alerts(run)] == [("firing", "notified"), ("resolved", "suppressed")]
    assert "RESOLVED" not in capsys.readouterr().err


def test_explicit_and_rule_alerts_in_one_batch_are_both_stored(rules_dir):
    """Regression: rows of different shapes in one batch insert once broke every later commit."""
    (rules_dir / "r.yaml").write_text(NAN_RULE)
    run = wandb.init(project="p")
    wandb.alert(title="manual", text="x")
    wandb.log({"loss": math.nan})
    wandb.alert(title="manual 2", text="y")
    wandb.finish()
    stored = wandb.Api().run(run.id)
    assert [(a["source"], a["title"].split(":")[0]) for a in stored.alerts()] == [
        ("alert", "manual"), ("rule", "loss-nan"), ("alert", "manual 2")]
    assert stored.state == "finished"


def test_a_resumed_run_does_not_renotify_a_series_still_firing(rules_dir):
    """The alert log serves as Alertmanager's notification log: a restart does not re-send."""
    (rules_dir / "r.yaml").write_text(NAN_RULE)
    run = wandb.init(project="p", id="resume-nan")
    wandb.log({"loss": math.nan})
    wandb.finish()
    wandb.init(project="p", id="resume-nan", resume="allow")
    wandb.log({"loss": math.nan})  # still bad after the restart: no second notification
    wandb.log({"loss": 1.0})  # recovered: resolved, once
    wandb.finish()
    assert [(a[1], a[3]) for a in rule_alerts(run)] == [("firing", 0), ("resolved", 2)]
