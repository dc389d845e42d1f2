"""accelerate: a real training loop through AlertsTracker, and through accelerate's own
log_with="wandb" under ALERTS_AS_WANDB=1."""

from __future__ import annotations

import torch
from accelerate import Accelerator

import alerts
from alerts.integrations.accelerate import AlertsTracker


def test_tracker_instance_logs_config_metrics_per_step_and_end_training_finishes():
    accelerator = Accelerator(log_with=AlertsTracker(project="acc", run_name="loop", tags=["unit"]), cpu=True)
    accelerator.init_trackers("not-used-for-instances", config={"lr": 0.1, "epochs": 1})
    assert accelerator.get_tracker("alerts").tracker is alerts.run
    for step in range(3):
        accelerator.log({"train_loss": torch.tensor(0.5 ** step)}, step=step * 10)  # a float32 tensor
    accelerator.log({"val_loss": 0.2}, step=20)  # the same step: one row
    accelerator.end_training()

    (run,) = alerts.Api().runs("acc")
    assert (run.name, run.state, run.tags, run.config) == ("loop", "finished", ["unit"], {"lr": 0.1, "epochs": 1})
    history = run.history(pandas=False)
    assert [(r["_step"], r["train_loss"]) for r in history] == [(0, 1.0), (10, 0.5), (20, 0.25)]
    assert history[-1]["val_loss"] == 0.2 and history[-1]["accelerate/step"] == 20


def test_log_with_alerts_by_name_takes_the_project_from_init_trackers():
    accelerator = Accelerator(log_with="alerts", cpu=True)
    accelerator.init_trackers("acc-by-name", config={"a": 1}, init_kwargs={"alerts": {"name": "named"}})
    accelerator.log({"x": 1.0}, step=0)
    accelerator.end_training()
    (run,) = alerts.Api().runs("acc-by-name")
    assert (run.name, run.state, run.config) == ("named", "finished", {"a": 1})


def test_example_script(run_example):
    run_example("accelerate_loop.py", "--epochs", "2")
    (run,) = alerts.Api().runs("accelerate-example")
    assert (run.name, run.state) == ("linear", "finished")
    assert run.config == {"lr": 0.05, "epochs": 2, "batch_size": 16}
    history = run.history(pandas=False)
    assert [r["_step"] for r in history] == list(range(16))  # 128 examples / 16, two epochs
    assert [r["_step"] for r in history if "epoch_loss" in r] == [7, 15]


def test_log_with_wandb_logs_here_under_alerts_as_wandb(wandb_script):
    wandb_script("""
        from accelerate import Accelerator

        accelerator = Accelerator(log_with="wandb", cpu=True)
        accelerator.init_trackers("acc-wandb", config={"lr": 0.1},
                                  init_kwargs={"wandb": {"name": "via-wandb", "tags": ["t"]}})
        for step in range(4):
            accelerator.log({"train_loss": 1.0 / (step + 1)}, step=step)
        accelerator.end_training()
    """)
    (run,) = alerts.Api().runs("acc-wandb")
    assert (run.name, run.state, run.tags, run.config) == ("via-wandb", "finished", ["t"], {"lr": 0.1})
    assert [(r["_step"], r["train_loss"]) for r in run.history(pandas=False)] == [(0, 1.0), (1, 0.5), (2, 1 / 3),
                                                                                  (3, 0.25)]
