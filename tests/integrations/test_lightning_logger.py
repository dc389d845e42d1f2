"""Lightning: a real Trainer through AlertsLogger (one process, and DDP on two CPU processes), and
through Lightning's own WandbLogger under ALERTS_AS_WANDB=1."""

from __future__ import annotations

import os
import subprocess
import sys

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from torch.utils.data import DataLoader, TensorDataset

import alerts
from alerts.integrations.lightning import AlertsLogger
from conftest import REPO


class Regressor(pl.LightningModule):
    def __init__(self, lr: float = 0.05, fail_at: int | None = None, nan_from: int | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Linear(4, 1)

    def training_step(self, batch, index):
        if self.hparams.fail_at is not None and self.global_step == self.hparams.fail_at:
            raise RuntimeError("a bad batch")
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        if self.hparams.nan_from is not None and self.global_step >= self.hparams.nan_from:
            loss = loss * float("nan")
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, index):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def data(size: int = 32) -> DataLoader:
    x = torch.randn(size, 4, generator=torch.Generator().manual_seed(size))
    return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)


def trainer(logger, tmp_path, epochs: int = 2) -> pl.Trainer:
    return pl.Trainer(max_epochs=epochs, logger=logger, log_every_n_steps=1, accelerator="cpu",
                      default_root_dir=str(tmp_path), enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False)


def test_fit_logs_hyperparameters_metrics_at_global_steps_and_finalize_finishes(tmp_path):
    logger = AlertsLogger(project="pl", name="fit", tags=["unit"])
    trainer(logger, tmp_path).fit(Regressor(lr=0.01), data(), data(16))

    (run,) = alerts.Api().runs("pl")
    assert (run.name, run.state, run.tags) == ("fit", "finished", ["unit"])
    assert run.config == {"lr": 0.01, "fail_at": None, "nan_from": None}
    assert logger.version == run.id
    history = run.history(pandas=False)
    # 4 batches an epoch, 2 epochs: Lightning logs train_loss at global steps 0..7 (its step, our _step).
    assert [r["_step"] for r in history] == list(range(8))
    assert all(r["trainer/global_step"] == r["_step"] and "train_loss" in r for r in history)
    assert [r["_step"] for r in history if "val_loss" in r] == [3, 7]  # merged into its step's row

    trainer(logger, tmp_path).validate(Regressor(), data(16))  # a later call continues the run
    (run,) = alerts.Api().runs("pl")
    assert run.state == "finished" and "val_loss" in run.history(pandas=False)[-1]


def test_an_exception_in_training_ends_the_run_failed_with_it(tmp_path):
    with pytest.raises(RuntimeError, match="a bad batch"):
        trainer(AlertsLogger(project="pl-crash"), tmp_path).fit(Regressor(fail_at=3), data())
    (run,) = alerts.Api().runs("pl-crash")
    assert (run.state, run.error_type) == ("failed", "RuntimeError") and "a bad batch" in run.error_text
    assert [r["_step"] for r in run.history(pandas=False)] == [0, 1, 2]


@pytest.mark.parametrize("status, state", [("finished", "preempted"), ("success", "finished")])
def test_finalize_status_maps_to_the_run_state(status, state):
    logger = AlertsLogger(project="pl-status")
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize(status)
    (run,) = alerts.Api().runs("pl-status")
    assert run.state == state


def test_rank_zero_only_means_other_ranks_start_no_run(monkeypatch):
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    logger = AlertsLogger(project="pl-rank")
    logger.log_hyperparams({"lr": 1})
    logger.log_metrics({"loss": float("nan")}, step=0)
    logger.experiment.log({"x": 1})  # what a LightningModule may call on any rank: nothing happens
    logger.finalize("success")
    assert alerts.Api().runs("pl-rank") == [] and alerts.run is None


DDP_SCRIPT = """
import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from alerts.integrations.lightning import AlertsLogger


class Diverges(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(4, 1)

    def training_step(self, batch, index):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss * float("nan") if self.global_step >= 2 else loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


if __name__ == "__main__":  # Lightning runs this file again for rank 1
    torch.set_num_threads(1)
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    trainer = pl.Trainer(max_epochs=1, logger=AlertsLogger(project="pl-ddp", name="job", rank_zero_only=False),
                         log_every_n_steps=1, accelerator="cpu", devices=2, strategy="ddp", default_root_dir=ROOT,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(Diverges(), DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8))
"""


def test_ddp_one_run_per_rank_shares_a_group_and_each_rank_alerts_once(tmp_path, store_dir, default_rules):
    """Two CPU processes (gloo), each rank's loss NaN from step 2: one run per rank, named for its rank,
    in one group (so the alerts are grouped into one message), each alerting once."""
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT.replace("ROOT", repr(str(tmp_path))))
    env = {**os.environ, "ALERTS_DIR": str(store_dir), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = alerts.Api().runs("pl-ddp")
    assert sorted(r.name for r in runs) == ["job-rank0", "job-rank1"]
    assert len({r.group for r in runs}) == 1 and runs[0].group
    for run in runs:
        assert run.state == "finished"
        assert [(a["rule"], a["step"]) for a in run.alerts()] == [("loss-not-finite", 2)]


def test_example_script(run_example):
    run_example("lightning_logger.py", "--epochs", "2")
    (run,) = alerts.Api().runs("lightning-example")
    assert (run.name, run.state, run.config) == ("regressor", "finished", {"lr": 0.05, "hidden": 16})
    history = run.history(pandas=False)
    assert [r["_step"] for r in history if "val_loss" in r] == [15, 31]
    assert [r["_step"] for r in history if "train_loss" in r] == list(range(1, 32, 2))


def test_wandb_logger_logs_here_under_alerts_as_wandb(wandb_script):
    wandb_script("""
        import lightning.pytorch as pl
        import torch
        from lightning.pytorch.loggers import WandbLogger
        from torch.utils.data import DataLoader, TensorDataset

        class Regressor(pl.LightningModule):
            def __init__(self, lr=0.05):
                super().__init__()
                self.save_hyperparameters()
                self.net = torch.nn.Linear(4, 1)
            def training_step(self, batch, index):
                x, y = batch
                loss = torch.nn.functional.mse_loss(self.net(x), y)
                self.log("train_loss", loss)
                return loss
            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

        x = torch.randn(32, 4)
        loader = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)
        pl.Trainer(max_epochs=2, logger=WandbLogger(project="pl-wandb", name="via-wandb"), log_every_n_steps=1,
                   accelerator="cpu", enable_checkpointing=False, enable_progress_bar=False).fit(Regressor(), loader)
    """)
    (run,) = alerts.Api().runs("pl-wandb")
    assert (run.name, run.state, run.config) == ("via-wandb", "finished", {"lr": 0.05})
    history = run.history(pandas=False)
    assert [r["trainer/global_step"] for r in history] == list(range(8)) and all("train_loss" in r for r in history)
