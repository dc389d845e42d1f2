"""Simulated experiments, as in W&B's "track experiments" tutorial: five runs in one process.

Run: python examples/simulated_runs.py   (then: alerts runs --project basic-intro)
"""

import random

import alerts as wandb  # the only line that differs from the wandb tutorial

epochs = 10
lr = 0.01

for run in range(5):
    wandb.init(
        project="basic-intro",
        name=f"experiment_{run}",
        config={"learning_rate": 0.02, "architecture": "CNN", "dataset": "CIFAR-100", "epochs": epochs},
    )
    offset = random.random() / 5
    print(f"lr: {lr}")
    for epoch in range(2, epochs):
        acc = 1 - 2**-epoch - random.random() / epoch - offset
        loss = 2**-epoch + random.random() / epoch + offset
        print(f"epoch={epoch}, accuracy={acc}, loss={loss}")
        wandb.log({"acc": acc, "loss": loss})
    wandb.finish()
