"""W&B's PyTorch MNIST tutorial, run with ``import alerts as wandb``.

It trains a small MLP, logs the loss tensor itself, 0-d validation tensors, keys with "/", a predictions
``Table`` of ``Image``\\ s, and a summary. MNIST comes from torchvision when it is installed and can be
downloaded; otherwise (no network, or no torchvision) a synthetic MNIST-shaped data set stands in:
28x28 grey digits drawn from ten noisy class prototypes, so the model really learns.

Run: python examples/pytorch_classifier.py [--runs 5] [--epochs 10] [--train-size 6000]
"""

import argparse
import math
import random

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Subset, TensorDataset

import alerts as wandb  # the only line that differs from the wandb tutorial

device = "cuda:0" if torch.cuda.is_available() else "cpu"


def synthetic_mnist(size: int, seed: int) -> TensorDataset:
    """``size`` 1x28x28 images in [0, 1] and labels 0..9, from ten fixed prototypes plus noise."""
    prototypes = torch.rand(10, 1, 28, 28, generator=torch.Generator().manual_seed(1234)) > 0.7
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (size,), generator=generator)
    noise = torch.rand(size, 1, 28, 28, generator=generator)
    images = (prototypes[labels].float() * 0.25 + noise * 0.85).clamp(0, 1)
    return TensorDataset(images, labels)


def get_dataloader(is_train, batch_size, size, slice=5):
    "Get a training dataloader"
    try:
        import torchvision
        import torchvision.transforms as T

        full_dataset = torchvision.datasets.MNIST(root=".", train=is_train, transform=T.ToTensor(), download=True)
        sub_dataset = Subset(full_dataset, indices=range(0, len(full_dataset), slice))
    except Exception:  # no torchvision, or no network to download MNIST
        sub_dataset = synthetic_mnist(size if is_train else max(256, size // 5), seed=0 if is_train else 1)
    loader = DataLoader(dataset=sub_dataset, batch_size=batch_size, shuffle=True if is_train else False,
                        pin_memory=True if device != "cpu" else False, num_workers=0)
    return loader


def get_model(dropout):
    "A simple model"
    model = nn.Sequential(nn.Flatten(),
                          nn.Linear(28 * 28, 256),
                          nn.BatchNorm1d(256),
                          nn.ReLU(),
                          nn.Dropout(dropout),
                          nn.Linear(256, 10)).to(device)
    return model


def validate_model(model, valid_dl, loss_func, log_images=False, batch_idx=0):
    "Compute performance of the model on the validation dataset and log a wandb.Table"
    model.eval()
    val_loss = 0.
    with torch.inference_mode():
        correct = 0
        for i, (images, labels) in enumerate(valid_dl):
            images, labels = images.to(device), labels.to(device)

            # Forward pass ➡
            outputs = model(images)
            val_loss += loss_func(outputs, labels) * labels.size(0)

            # Compute accuracy and accumulate
            _, predicted = torch.max(outputs.data, 1)
            correct += (predicted == labels).sum().item()

            # Log one batch of images to the dashboard, always same batch_idx.
            if i == batch_idx and log_images:
                log_image_table(images, predicted, labels, outputs.softmax(dim=1))
    return val_loss / len(valid_dl.dataset), correct / len(valid_dl.dataset)


def log_image_table(images, predicted, labels, probs):
    "Log a wandb.Table with (img, pred, target, scores)"
    # 🐝 Create a wandb Table to log images, labels and predictions to
    table = wandb.Table(columns=["image", "pred", "target"] + [f"score_{i}" for i in range(10)])
    for img, pred, targ, prob in zip(images.to("cpu"), predicted.to("cpu"), labels.to("cpu"), probs.to("cpu")):
        table.add_data(wandb.Image(img[0].numpy() * 255), pred, targ, *prob.numpy())
    wandb.log({"predictions_table": table}, commit=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="how many runs, each with its own dropout")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--train-size", type=int, default=6000, help="synthetic training images")
    args = parser.parse_args()

    # Launch 5 experiments, trying different dropout rates
    for _ in range(args.runs):
        # 🐝 initialise a wandb run
        wandb.init(
            project="pytorch-intro",
            config={
                "epochs": args.epochs,
                "batch_size": 128,
                "lr": 1e-3,
                "dropout": random.uniform(0.01, 0.80),
            })

        # Copy your config
        config = wandb.config

        # Get the data
        train_dl = get_dataloader(is_train=True, batch_size=config.batch_size, size=args.train_size)
        valid_dl = get_dataloader(is_train=False, batch_size=2 * config.batch_size, size=args.train_size)
        n_steps_per_epoch = math.ceil(len(train_dl.dataset) / config.batch_size)

        # A simple MLP model
        model = get_model(config.dropout)

        # Make the loss and optimizer
        loss_func = nn.CrossEntropyLoss()
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)

        # Training
        example_ct = 0
        step_ct = 0
        for epoch in range(config.epochs):
            model.train()
            for step, (images, labels) in enumerate(train_dl):
                images, labels = images.to(device), labels.to(device)

                outputs = model(images)
                train_loss = loss_func(outputs, labels)
                optimizer.zero_grad()
                train_loss.backward()
                optimizer.step()

                example_ct += len(images)
                metrics = {"train/train_loss": train_loss,
                           "train/epoch": (step + 1 + (n_steps_per_epoch * epoch)) / n_steps_per_epoch,
                           "train/example_ct": example_ct}

                if step + 1 < n_steps_per_epoch:
                    # 🐝 Log train metrics to wandb
                    wandb.log(metrics)

                step_ct += 1

            val_loss, accuracy = validate_model(model, valid_dl, loss_func, log_images=(epoch == (config.epochs - 1)))

            # 🐝 Log train and validation metrics to wandb
            val_metrics = {"val/val_loss": val_loss,
                           "val/val_accuracy": accuracy}
            wandb.log({**metrics, **val_metrics})

            print(f"Epoch: {epoch+1}, Train Loss: {train_loss:.3f}, Valid Loss: {val_loss:3f}, Accuracy: {accuracy:.2f}")

        # If you had a test set, this is how you could log it as a Summary metric
        wandb.summary['test_accuracy'] = 0.8

        # 🐝 Close your wandb run
        wandb.finish()


if __name__ == "__main__":
    main()
