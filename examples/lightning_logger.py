"""A Lightning ``Trainer`` logged to alerts with ``AlertsLogger``.

A small regression network learns y = sum(x) on synthetic data. The run gets the module's
hyper-parameters as config, ``train_loss`` and ``val_loss`` at Lightning's global steps, and ends
``finished`` (``failed`` with the exception if training raises).

Run: python examples/lightning_logger.py [--epochs 3] [--devices 1]
(pip install 'run-alerts[lightning]'). With ``--devices 2`` it trains with DDP on two CPU processes:
one run for the job (``--per-rank``: one run per rank, in one group).
"""

import argparse

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from alerts.integrations.lightning import AlertsLogger


class Regressor(pl.LightningModule):
    def __init__(self, lr: float = 0.05, hidden: int = 16) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))

    def training_step(self, batch, _index):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, _index):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def data(size: int, seed: int) -> DataLoader:
    x = torch.randn(size, 4, generator=torch.Generator().manual_seed(seed))
    return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=16)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--per-rank", action="store_true")
    options = parser.parse_args()
    torch.set_num_threads(1)  # a network this small trains faster on one thread
    pl.seed_everything(0, verbose=False)

    logger = AlertsLogger(project="lightning-example", name="regressor", rank_zero_only=not options.per_rank)
    trainer = pl.Trainer(max_epochs=options.epochs, logger=logger, log_every_n_steps=2, accelerator="cpu",
                         devices=options.devices, strategy="ddp" if options.devices > 1 else "auto",
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(Regressor(), data(256, seed=1), data(64, seed=2))


if __name__ == "__main__":
    main()
