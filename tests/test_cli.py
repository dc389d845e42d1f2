"""``alerts runs`` and ``alerts show``, as a user types them."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import alerts as wandb
from alerts import cli


def alerts_cmd(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "alerts.cli", *args], capture_output=True, text=True,
                          timeout=60, env=env)


def make_runs():
    first = wandb.init(project="vision", name="resnet", config={"lr": 0.1}, tags=["baseline"])
    for i in range(3):
        wandb.log({"loss": 1.0 / (i + 1), "acc": i / 10})
    wandb.log({"loss": math.nan})
    for _ in range(3):
        wandb.alert(title="Loss is NaN", text="stop", level="ERROR")
    wandb.finish()
    second = wandb.init(project="nlp", name="bert")
    wandb.log({"ppl": 12.5})
    wandb.finish(exit_code=1)
    return first, second


def test_help_explains_every_command():
    result = alerts_cmd("--help")
    assert result.returncode == 0
    for word in ("runs", "show", "demo", "ALERTS_DIR"):
        assert word in result.stdout
    show_help = alerts_cmd("show", "--help").stdout
    assert "run id, project/id, or run name" in show_help and "--json" in show_help


def test_runs_lists_and_filters(capsys):
    first, second = make_runs()
    assert cli.main(["runs"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["ID", "PROJECT", "NAME", "STATE", "STEP", "CREATED", "OWNER"]
    assert out[1].split()[:5] == [second.id, "nlp", "bert", "failed", "0"]  # newest first
    assert out[2].split()[:5] == [first.id, "vision", "resnet", "finished", "3"]
    assert cli.main(["runs", "--project", "vision", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in runs] == ["resnet"]
    assert runs[0]["config"] == {"lr": 0.1} and runs[0]["tags"] == ["baseline"]
    assert runs[0]["summary"]["loss"] == "NaN"  # NaN is not JSON: written as a string


def test_show_prints_config_summary_last_values_and_alerts(capsys):
    first, _ = make_runs()
    assert cli.main(["show", "resnet"]) == 0
    out = capsys.readouterr().out
    assert f"resnet ({first.id})  project vision  owner alice  state finished" in out
    assert "  lr = 0.1" in out and "  loss = nan" in out and "  acc = 0.2" in out
    assert "alerts (3):" in out
    assert "ERROR  notified    Loss is NaN" in out
    assert "ERROR  suppressed  Loss is NaN  (x2: repeats of a title within its wait_duration)" in out
    assert cli.main(["show", first.id, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["run"]["id"] == first.id and shown["last_values"]["acc"] == 0.2
    assert [a["outcome"] for a in shown["alerts"]] == ["notified", "suppressed", "suppressed"]


def test_show_unknown_run_and_empty_store_say_what_to_do(capsys, store_dir):
    result = alerts_cmd("runs")
    assert result.returncode != 0 and "no runs yet" in result.stderr
    make_runs()
    assert cli.main(["show", "nope"]) == 1
    assert "no run 'nope'" in capsys.readouterr().err


def test_failed_run_shows_its_error(run_script, capsys):
    run_script("""
        import alerts
        alerts.init(project="p", name="crasher")
        alerts.log({"x": 1})
        raise RuntimeError("CUDA out of memory")
    """)
    assert cli.main(["show", "crasher"]) == 0
    out = capsys.readouterr().out
    assert "state failed" in out and "error: RuntimeError" in out and "CUDA out of memory" in out


def test_show_with_a_project_prefix_only_finds_runs_of_that_project(capsys):
    first, second = make_runs()
    assert cli.main(["show", f"vision/{first.id}"]) == 0
    assert "project vision" in capsys.readouterr().out
    assert cli.main(["show", f"nlp/{first.id}"]) == 1
    assert cli.main(["show", "nlp/resnet"]) == 1
    assert cli.main(["show", "nlp/bert"]) == 0
