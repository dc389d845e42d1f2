"""transformers: a real Trainer on a tiny BERT built from a config, through AlertsCallback and through
transformers' own wandb integration (report_to="wandb") under ALERTS_AS_WANDB=1."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainerCallback, TrainingArguments

import alerts
from alerts.integrations.transformers import AlertsCallback

VOCAB = 32


class Tokens(torch.utils.data.Dataset):
    """Random token sequences, labelled by their first token."""

    def __init__(self, size: int) -> None:
        generator = torch.Generator().manual_seed(size)
        self.tokens = torch.randint(1, VOCAB, (size, 6), generator=generator)
        self.labels = (self.tokens[:, 0] > VOCAB // 2).long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        return {"input_ids": self.tokens[index], "labels": self.labels[index]}


def tiny_bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1,
                                                    num_attention_heads=2, intermediate_size=32,
                                                    max_position_embeddings=8))


def arguments(tmp_path, **overrides) -> TrainingArguments:
    values = dict(output_dir=str(tmp_path / "out"), per_device_train_batch_size=8, num_train_epochs=1,
                  logging_steps=1, save_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True, seed=0)
    return TrainingArguments(**{**values, **overrides})


def test_trainer_run_has_args_as_config_metrics_at_global_steps_and_ends_finished(tmp_path):
    args = arguments(tmp_path, run_name="tiny", eval_strategy="steps", eval_steps=2, learning_rate=1e-3)
    trainer = Trainer(model=tiny_bert(), args=args, train_dataset=Tokens(32), eval_dataset=Tokens(8),
                      callbacks=[AlertsCallback(project="hf", tags=["unit"])])
    trainer.train()

    (run,) = alerts.Api().runs("hf")
    assert (run.name, run.state, run.tags) == ("tiny", "finished", ["unit"])
    assert run.config["learning_rate"] == 1e-3 and run.config["per_device_train_batch_size"] == 8
    assert run.config["model/class"] == "BertForSequenceClassification"
    assert run.config["model/num_parameters"] == trainer.model.num_parameters()
    assert run.config["model/config"]["hidden_size"] == 16
    history = run.history(pandas=False)
    # One row per global step (32 examples / 8 = 4 steps), train and eval metrics of a step merged.
    assert [row["_step"] for row in history] == [1, 2, 3, 4]
    assert all(row["train/global_step"] == row["_step"] and math.isfinite(row["train/loss"]) for row in history)
    assert [row["_step"] for row in history if "eval/loss" in row] == [2, 4]
    assert run.summary["train_runtime"] > 0 and "train_runtime" not in history[-1]

    trainer.evaluate()  # after train(): the same run continues (the script, or its exit, finishes it)
    alerts.finish()
    (run,) = alerts.Api().runs("hf")
    last = run.history(pandas=False)[-1]
    assert last["train/global_step"] == 4 and "eval/loss" in last and last["_step"] == 5
    assert run.state == "finished"


class Boom(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 2:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")


def test_a_crash_inside_train_ends_the_run_failed_with_the_exception_even_when_caught(tmp_path):
    trainer = Trainer(model=tiny_bert(), args=arguments(tmp_path), train_dataset=Tokens(32),
                      callbacks=[AlertsCallback(project="hf-crash"), Boom()])
    with pytest.raises(RuntimeError):
        trainer.train()  # the script catches it and goes on: the run must not wait for exit to end

    (run,) = alerts.Api().runs("hf-crash")
    assert run.state == "failed" and run.error_type == "RuntimeError"
    assert "illegal memory access" in run.error_text
    assert [row["_step"] for row in run.history(pandas=False)] == [1]  # step 2 raised before its log


class Diverge(TrainerCallback):
    """After step 4 the classifier's weights are NaN (as after an exploding update): every later loss is NaN."""

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step == 4:
            with torch.no_grad():
                model.classifier.weight.fill_(float("nan"))


def test_a_loss_that_becomes_nan_fires_loss_not_finite_once(tmp_path, default_rules):
    # logging_nan_inf_filter=False: by default the Trainer hides NaN losses from its logs.
    args = arguments(tmp_path, num_train_epochs=2, logging_nan_inf_filter=False)
    trainer = Trainer(model=tiny_bert(), args=args, train_dataset=Tokens(48),
                      callbacks=[AlertsCallback(project="hf-nan", name="diverges"), Diverge()])
    trainer.train()

    (run,) = alerts.Api().runs("hf-nan")
    losses = [row["train/loss"] for row in run.history(pandas=False)]
    assert len(losses) == 12 and all(map(math.isfinite, losses[:4])) and all(map(math.isnan, losses[4:]))
    firing = [(a["rule"], a["status"], a["metric"], a["step"]) for a in run.alerts()]
    assert firing == [("loss-not-finite", "firing", "train/loss", 5)]  # once, not once per NaN step
    assert run.state == "finished"


def test_example_script(run_example):
    run_example("hf_trainer.py", "--epochs", "2", "--train-size", "128")
    (run,) = alerts.Api().runs("hf-example")
    assert (run.name, run.state) == ("tiny-bert-first-token", "finished")
    assert run.config["run_name"] == "tiny-bert-first-token" and run.config["num_train_epochs"] == 2
    history = run.history(pandas=False)
    assert [r["_step"] for r in history if "train/loss" in r] == [4, 8, 12, 16]
    assert [r["_step"] for r in history if "eval/accuracy" in r] == [8, 16]


def test_report_to_wandb_logs_here_under_alerts_as_wandb(wandb_script):
    wandb_script("""
        import torch
        from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

        class Tokens(torch.utils.data.Dataset):
            def __init__(self):
                self.tokens = torch.randint(1, 32, (24, 6), generator=torch.Generator().manual_seed(0))
            def __len__(self):
                return 24
            def __getitem__(self, i):
                return {"input_ids": self.tokens[i], "labels": int(self.tokens[i, 0] > 16)}

        model = BertForSequenceClassification(BertConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1,
            num_attention_heads=2, intermediate_size=32, max_position_embeddings=8))
        args = TrainingArguments(output_dir="out", run_name="via-wandb", report_to="wandb", logging_steps=1,
                                 per_device_train_batch_size=8, num_train_epochs=1, save_strategy="no",
                                 use_cpu=True, disable_tqdm=True)
        Trainer(model=model, args=args, train_dataset=Tokens()).train()
    """, env={"WANDB_PROJECT": "hf-wandb"})
    (run,) = alerts.Api().runs("hf-wandb")
    assert (run.name, run.state) == ("via-wandb", "finished")  # finished at exit, as with wandb
    assert run.config["per_device_train_batch_size"] == 8 and run.config["hidden_size"] == 16
    history = run.history(pandas=False)
    assert [row["train/global_step"] for row in history if "train/loss" in row] == [1, 2, 3]
    assert run.summary["train_runtime"] > 0
