"""A Hugging Face ``Trainer`` logged to alerts with ``AlertsCallback``.

A tiny BERT built from a config (no download) learns a synthetic task: is the first token of a
sequence in the upper half of the vocabulary? The run gets the ``TrainingArguments`` and the model's
names as config, ``train/loss``, ``train/learning_rate``, ``eval/loss``, ``eval/accuracy`` at each
global step, the Trainer's closing numbers in its summary, and ends ``finished`` (``failed``, with
the exception, if ``train()`` raises).

Run: python examples/hf_trainer.py [--epochs 2] [--train-size 256] [--output-dir /tmp/hf-example]
(pip install 'run-alerts[transformers]').
"""

import argparse
import tempfile

import numpy as np
import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

from alerts.integrations.transformers import AlertsCallback

VOCAB, LENGTH = 64, 8


class FirstTokenTask(torch.utils.data.Dataset):
    """Random token sequences, labelled 1 when the first token is in the upper half of the vocabulary."""

    def __init__(self, size: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.tokens = torch.randint(1, VOCAB, (size, LENGTH), generator=generator)
        self.labels = (self.tokens[:, 0] >= VOCAB // 2).long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        return {"input_ids": self.tokens[index], "labels": self.labels[index]}


def accuracy(prediction) -> dict:
    return {"accuracy": float((np.argmax(prediction.predictions, -1) == prediction.label_ids).mean())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-size", type=int, default=256)
    parser.add_argument("--output-dir", default=None)
    options = parser.parse_args()
    # A model this small trains faster on one thread than on several that wait for each other.
    torch.set_num_threads(1)

    config = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=LENGTH, num_labels=2)
    model = BertForSequenceClassification(config)
    args = TrainingArguments(
        output_dir=options.output_dir or tempfile.mkdtemp(prefix="hf-example-"),
        run_name="tiny-bert-first-token",
        num_train_epochs=options.epochs,
        per_device_train_batch_size=16,
        learning_rate=3e-3,
        logging_steps=4,
        eval_strategy="epoch",
        save_strategy="no",
        report_to="none",  # the frameworks' own trackers off: AlertsCallback below does the logging
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=FirstTokenTask(options.train_size, seed=1),
                      eval_dataset=FirstTokenTask(64, seed=2), compute_metrics=accuracy,
                      callbacks=[AlertsCallback(project="hf-example", tags=["example"])])
    trainer.train()


if __name__ == "__main__":
    main()
