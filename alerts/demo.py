"""``alerts demo``: simulated training runs that raise alerts, logged into the embedded store.

What a newcomer sees: runs being logged, alerts raised by ``alert()`` and delivered (to the console,
until Slack and email channels are configured), repeats suppressed, and the runs read back.
"""

from __future__ import annotations

import math
import random
from typing import Optional

import alerts as wandb

THRESHOLD = 0.5


def simulate(run_index: int, steps: int, rng: random.Random) -> None:
    """One run in the style of W&B's tutorial: config, a log loop, an alert when accuracy drops."""
    config = {"learning_rate": 0.02 * (run_index + 1), "architecture": "CNN", "dataset": "CIFAR-100",
              "epochs": steps}
    run = wandb.init(project="demo", name=f"experiment_{run_index}", config=config, reinit="finish_previous")
    degrade_at = steps // 2 if run_index == 1 else None
    diverge_at = steps * 3 // 4 if run_index == 2 else None
    acc, loss = 0.55, 2.5
    for step in range(steps):
        acc = min(0.98, acc + rng.uniform(0, 0.02))
        loss = max(0.05, loss * rng.uniform(0.95, 0.995))
        if degrade_at is not None and step >= degrade_at:
            acc = max(0.05, acc - rng.uniform(0.01, 0.03))
        if diverge_at is not None and step >= diverge_at:
            loss = loss * 3 if step < diverge_at + 5 else math.nan
        wandb.log({"acc": acc, "loss": loss})
        if acc < THRESHOLD:
            # Called on every bad step: the first notifies, the repeats within wait_duration are suppressed.
            wandb.alert(title="Low accuracy", text=f"Accuracy {acc:.3f} is below the threshold {THRESHOLD}",
                        level=wandb.AlertLevel.WARN, wait_duration=300)
        if math.isnan(loss):
            wandb.alert(title="Loss is NaN", text=f"loss became NaN at step {step}; stopping",
                        level=wandb.AlertLevel.ERROR)
            wandb.finish(exit_code=1)
            return
    wandb.summary["final_acc"] = acc
    run.finish()


def main(dir: Optional[str] = None, runs: int = 3, steps: int = 200, seed: int = 7) -> list[str]:
    """Log ``runs`` simulated runs; returns the ids of those that raised alerts, for the command to
    show (the command sits above this module, which never calls back into it)."""
    import os

    if dir:
        os.environ["ALERTS_DIR"] = dir
    rng = random.Random(seed)
    print(f"alerts demo: logging {runs} simulated runs of {steps} steps to "
          f"{os.path.abspath(os.environ.get('ALERTS_DIR', '.alerts'))}")
    print("alerts raised below are delivered to the console (stderr) channel:\n", flush=True)
    for index in range(runs):
        simulate(index, steps, rng)
    return [record.id for record in wandb.Api().runs("demo") if record.alerts()]
