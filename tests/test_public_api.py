"""The public surface: ``__all__`` is pinned, and W&B's tutorial calls run unchanged."""

from __future__ import annotations

from datetime import timedelta

import pytest

import alerts
import alerts as wandb


def test_all_is_pinned():
    assert sorted(alerts.__all__) == sorted([
        "AlertLevel", "AlertsWarning", "Api", "Error", "Image", "Run", "Table", "UsageError", "alert",
        "config", "define_metric", "finish", "init", "log", "login", "mark_preempting", "run", "summary",
        "watch",
        # the rest of wandb's surface (issue 11): working, or documented no-ops (alerts.sdk.noops)
        "Artifact", "ArtifactTTL", "Audio", "Classes", "CommError", "Config", "EvalTable", "Graph", "Histogram",
        "Html", "JoinedTable", "Molecule", "Object3D", "Plotly", "Settings", "Video", "agent", "attach", "box3d",
        "controller", "ensure_configured", "join", "link_model", "log_artifact", "log_model", "pin_config_keys",
        "plot_table", "require", "restore", "sagemaker_auth", "save", "setup", "sweep", "teardown", "termerror",
        "termlog", "termsetup", "termwarn", "unwatch", "use_artifact", "use_model", "visualize",
    ])
    for name in alerts.__all__:
        assert hasattr(alerts, name), name


def test_tutorial_simulated_runs_read_back_through_api():
    """Five runs in one process, each with config and a log loop, as WANDB_SURFACE.md lists them."""
    for index in range(5):
        wandb.init(project="basic-intro", name=f"experiment_{index}",
                   config={"learning_rate": 0.02, "architecture": "CNN", "dataset": "CIFAR-100", "epochs": 10})
        for epoch in range(2, 10):
            wandb.log({"acc": 1 - 2**-epoch, "loss": 2**-epoch})
        wandb.finish()

    runs = wandb.Api().runs("basic-intro")
    assert [r.name for r in runs] == [f"experiment_{i}" for i in range(5)]
    for run in runs:
        assert run.state == "finished"
        assert run.config == {"learning_rate": 0.02, "architecture": "CNN", "dataset": "CIFAR-100", "epochs": 10}
        history = run.history(pandas=False)
        assert [row["_step"] for row in history] == list(range(8))  # one row per log() commit
        assert history[-1]["acc"] == 1 - 2**-9
        assert run.summary["loss"] == 2**-9
        assert run.entity == "alice"


def test_config_attribute_access_and_module_globals():
    assert wandb.run is None
    with pytest.raises(wandb.Error, match=r"init\(\) before alerts.config.batch_size"):
        wandb.config.batch_size
    run = wandb.init(project="pytorch-intro", config={"epochs": 10, "batch_size": 128, "lr": 1e-3, "dropout": 0.2})
    assert wandb.run is run
    config = wandb.config
    assert (config.batch_size, config.dropout, config.epochs, config.lr) == (128, 0.2, 10, 1e-3)
    config.update({"extra": 1})
    wandb.config["other"] = "x"
    wandb.summary["test_accuracy"] = 0.8
    wandb.finish()
    assert wandb.run is None
    stored = wandb.Api().run(run.id)
    assert stored.config["extra"] == 1 and stored.config["other"] == "x"
    assert stored.summary["test_accuracy"] == 0.8


def test_login_never_prompts_and_init_generates_a_name():
    assert wandb.login() is True
    run = wandb.init(project="pytorch-intro")
    assert run.name and run.name.split("-")[-1] == "1"
    assert len(run.id) == 8 and run.id.isalnum()
    wandb.finish()


def test_calls_before_init_and_after_finish_raise():
    with pytest.raises(wandb.Error, match=r"init\(\) before alerts.log\(\)"):
        wandb.log({"a": 1})
    with pytest.raises(wandb.Error, match=r"init\(\) before alerts.alert\(\)"):
        wandb.alert(title="t", text="x")
    wandb.finish()  # no run: a no-op, as in wandb
    run = wandb.init(project="p")
    wandb.finish()
    with pytest.raises(wandb.UsageError, match="is finished"):
        run.log({"a": 1})
    with pytest.raises(wandb.UsageError, match="is finished"):
        run.alert(title="t", text="x")
    with pytest.raises(wandb.Error):
        wandb.log({"a": 1})
    run.finish()  # a second finish does nothing


def test_init_while_running_returns_the_current_run_unless_reinit():
    first = wandb.init(project="p")
    assert wandb.init(project="p") is first
    second = wandb.init(project="p", reinit="finish_previous")
    assert second is not first and first.finished and not second.finished
    wandb.finish()


def test_disabled_mode_is_a_no_op_that_still_has_config(store_dir, monkeypatch):
    run = wandb.init(project="p", mode="disabled", config={"lr": 0.1})
    assert wandb.config.lr == 0.1
    wandb.log({"loss": 1.0})
    wandb.alert(title="t", text="x", level=wandb.AlertLevel.WARN, wait_duration=timedelta(minutes=5))
    wandb.finish()
    assert run.finished
    assert not (store_dir / "alerts.db").exists()
    monkeypatch.setenv("WANDB_MODE", "disabled")  # what CI environments set to turn wandb off
    wandb.init(project="p")
    wandb.log({"loss": 1.0})
    wandb.finish()
    assert not (store_dir / "alerts.db").exists()


def test_unknown_init_keyword_is_a_type_error_but_wandb_keywords_are_accepted():
    with pytest.raises(TypeError, match="projcet"):
        wandb.init(projcet="typo")
    run = wandb.init(project="p", save_code=True, settings=None, tags=["a", "b"], group="g", job_type="train",
                     notes="n", entity="team")
    wandb.finish()
    stored = wandb.Api().run(run.id)
    assert (stored.tags, stored.group, stored.job_type, stored.notes) == (["a", "b"], "g", "train", "n")


def test_resume_continues_steps_and_keeps_history():
    wandb.init(project="p", id="resume01")
    for i in range(3):
        wandb.log({"x": i})
    wandb.finish()
    with pytest.raises(wandb.UsageError, match="resume"):
        wandb.init(project="p", id="resume01")
    again = wandb.init(project="p", id="resume01", resume="allow")
    assert again.step == 3
    wandb.log({"x": 3})
    wandb.finish()
    stored = wandb.Api().run("resume01")
    assert [row["x"] for row in stored.history(pandas=False)] == [0, 1, 2, 3]
    assert stored.state == "finished"
