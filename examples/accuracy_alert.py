"""The alert part of W&B's tutorial: log accuracy, alert() once it falls under a threshold, stop.

Title and text are Korean, as in the Korean edition of the tutorial: non-ASCII must go through.
Run: python examples/accuracy_alert.py
"""

import os
import random

import alerts as wandb  # the only line that differs from the wandb tutorial

if os.environ.get("EXAMPLE_SEED"):
    random.seed(int(os.environ["EXAMPLE_SEED"]))

wandb.login()
run = wandb.init(project="pytorch-intro")

acc_threshold = 0.3
for training_step in range(1000):
    accuracy = round(random.random() + random.random(), 2)
    print(f"Accuracy is: {accuracy}, {acc_threshold}")
    wandb.log({"Accuracy": accuracy})
    if accuracy <= acc_threshold:
        wandb.alert(
            title="낮은 정확도",
            text=f"정확도 {accuracy}가 스텝 {training_step}에서 허용 임계값 {acc_threshold} 미만입니다",
        )
        print("Alert triggered")
        break

wandb.finish()
