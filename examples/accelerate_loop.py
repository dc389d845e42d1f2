"""An accelerate training loop logged to alerts with ``AlertsTracker``.

A linear model learns y = sum(x) on synthetic data in a plain loop prepared by ``Accelerator``; the
run gets the config given to ``init_trackers``, ``train_loss`` at each step, ``epoch_loss`` at the
end of each epoch, and ends ``finished`` at ``end_training()``.

Run: python examples/accelerate_loop.py [--epochs 3] (pip install 'run-alerts[accelerate]').
"""

import argparse

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader, TensorDataset

from alerts.integrations.accelerate import AlertsTracker


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    options = parser.parse_args()
    torch.set_num_threads(1)  # a model this small trains faster on one thread
    torch.manual_seed(0)
    config = {"lr": 0.05, "epochs": options.epochs, "batch_size": 16}

    accelerator = Accelerator(log_with=AlertsTracker(project="accelerate-example", run_name="linear"), cpu=True)
    accelerator.init_trackers("accelerate-example", config=config)
    x = torch.randn(128, 4)
    loader = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=config["batch_size"], shuffle=True)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=config["lr"])
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)

    step = 0
    for epoch in range(config["epochs"]):
        total = 0.0
        for inputs, targets in loader:
            loss = torch.nn.functional.mse_loss(model(inputs), targets)
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
            accelerator.log({"train_loss": loss.item()}, step=step)
            total += loss.item()
            step += 1
        accelerator.log({"epoch_loss": total / len(loader), "epoch": epoch}, step=step - 1)
    accelerator.end_training()


if __name__ == "__main__":
    main()
