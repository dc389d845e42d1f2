"""Rules in a process whose loop does nothing but ``log()`` (issue 8): the rows reach the rules a
batch at a time, and still fire at their own steps; a row logged after a pause is evaluated inside
its ``log()`` call, so its alert is out when the call returns. Real clock, real store."""

from __future__ import annotations

import math

import pytest

import alerts as wandb
from alerts.sdk import run as run_module

RULES = ("rules:\n  - {name: loss-nan, metric: loss, condition: non-finite, level: ERROR}\n"
         "  - {name: loss-high, metric: loss, condition: '> 5', for: 3}\n")


@pytest.fixture
def rules_dir(tmp_path, monkeypatch):
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "r.yaml").write_text(RULES)
    monkeypatch.setenv("ALERTS_RULES", str(folder))
    return folder


def rule_alerts(run):
    return [(a["rule"], a["status"], a["step"]) for a in wandb.Api().run(run.id).alerts() if a["source"] == "rule"]


def test_rows_of_a_tight_loop_fire_at_their_own_steps(rules_dir, monkeypatch):
    batches = []
    observe_rows = run_module.RunRules.observe_rows

    def counted(self, rows, nows):
        batches.append(len(rows))
        return observe_rows(self, rows, nows)

    monkeypatch.setattr(run_module.RunRules, "observe_rows", counted)
    run = wandb.init(project="p")
    for i in range(20_000):
        loss = math.nan if i == 12_345 else (9.0 if 15_000 <= i < 15_010 else 1.0)
        wandb.log({"loss": loss, "acc": 0.5})
    assert run._writer.flush(30)  # the writer's cycle evaluates what the loop left waiting
    assert rule_alerts(run) == [("loss-nan", "firing", 12_345), ("loss-nan", "resolved", 12_346),
                                ("loss-high", "firing", 15_002), ("loss-high", "resolved", 15_010)]
    assert sum(batches) == 20_000 and max(batches) > 1  # every row once; some of them in batches
    wandb.finish()


def test_a_row_logged_after_a_pause_is_evaluated_within_its_call(rules_dir, capsys):
    wandb.init(project="p", name="paused")
    wandb.log({"loss": math.nan})  # the run's first row: nothing came just before it
    assert "alerts: [ERROR] loss-nan: loss non-finite in paused" in capsys.readouterr().err
    wandb.finish()
