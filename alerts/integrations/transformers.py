"""Hugging Face transformers: ``Trainer(..., callbacks=[AlertsCallback(project="...")])``.

What a run gets: the ``TrainingArguments`` as config (with the model's class, name or path, number of
parameters and its config under ``model/...``), the Trainer's logs at the Trainer's global step (keys
named as transformers' own wandb integration names them: ``train/loss``, ``eval/loss``...; one row
per global step, train and eval metrics of a step merged), its closing numbers (``train_runtime``,
``train_loss``, ``total_flos``, the best metric and checkpoint) in the summary, and its end:
``finished`` when ``train()`` returns, ``failed`` with the exception (``killed`` for Ctrl-C) when it
raises. Only the world's process zero logs (as transformers' loggers do), so a multi-GPU job is one
run. A run the script started itself (``alerts.init()`` before ``train()``) is used, and left to the
script to finish.

Why the callback looks for its Trainer: ``TrainerCallback`` has no hook for an exception inside
``train()``. At ``on_init_end`` (the callback was passed to ``Trainer(callbacks=[...])``) it finds the
Trainer that is calling it on the stack and wraps that Trainer's ``train`` so a crash ends the run
``failed`` with the exception, even when the script catches it. A callback added later with
``trainer.add_callback`` wraps from the next ``train()`` on; an uncaught crash ends the run
``failed`` at exit in any case (the SDK's exit hook).
"""

from __future__ import annotations

import functools
import sys
from typing import Any, Optional, Sequence

from transformers import Trainer, TrainerCallback

from alerts.integrations._runs import IntegrationRun, never_raises

__all__ = ["AlertsCallback"]

# Logs the Trainer emits once, at the end of train(): kept in the summary, not as history points
# (as transformers' WandbCallback does).
SUMMARY_KEYS = frozenset({"train_runtime", "train_samples_per_second", "train_steps_per_second", "train_loss",
                          "total_flos"})
STEP_KEY = "train/global_step"
# How far up the stack the Trainer calling a hook can be (hook <- call_event <- on_* <- Trainer).
_STACK_DEPTH = 8


def rewrite_logs(logs: dict) -> dict:
    """The Trainer's log keys as transformers' wandb integration writes them: ``eval_loss`` ->
    ``eval/loss``, ``test_x`` -> ``test/x``, anything else ``x`` -> ``train/x``."""
    rewritten = {}
    for key, value in logs.items():
        if key.startswith("eval_"):
            rewritten["eval/" + key[5:]] = value
        elif key.startswith("test_"):
            rewritten["test/" + key[5:]] = value
        else:
            rewritten["train/" + key] = value
    return rewritten


def _calling_trainer() -> Optional[Trainer]:
    frame = sys._getframe(2)
    for _ in range(_STACK_DEPTH):
        if frame is None:
            return None
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, Trainer):
            return candidate
        frame = frame.f_back
    return None


class AlertsCallback(TrainerCallback):
    """Log a transformers ``Trainer`` to alerts: ``Trainer(..., callbacks=[AlertsCallback()])``.

    The keywords are :func:`alerts.init`'s (``project``, ``name``, ``tags``, ``group``, ``notes``,
    ``job_type``, ``config`` and the rest). ``name`` defaults to ``TrainingArguments.run_name``
    (unless that is just the output folder); ``config`` is merged over the arguments.
    """

    def __init__(self, project: Optional[str] = None, name: Optional[str] = None, *,
                 config: Optional[dict] = None, tags: Optional[Sequence[str]] = None,
                 group: Optional[str] = None, notes: Optional[str] = None, job_type: Optional[str] = None,
                 **init_kwargs: Any) -> None:
        self._config = dict(config or {})
        self._runs = IntegrationRun(dict(project=project, name=name, tags=tags, group=group, notes=notes,
                                         job_type=job_type, **init_kwargs), STEP_KEY)

    @property
    def run(self):
        """The :class:`alerts.Run` being logged to (None before training starts, and on other ranks)."""
        return self._runs.run

    # -- the Trainer's hooks --------------------------------------------------------------------

    @never_raises
    def on_init_end(self, args, state, control, **kwargs):
        self._watch_for_crash(_calling_trainer())

    @never_raises
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._watch_for_crash(_calling_trainer())  # added by add_callback: from the next train() on
        if not state.is_world_process_zero:
            return
        if state.is_hyper_param_search and self._runs.live:
            self._runs.end()  # each trial is a run of its own
            self._runs = IntegrationRun(self._runs.init_kwargs, STEP_KEY)
        names = {}
        if state.trial_name is not None:
            names = {"name": state.trial_name, "group": args.run_name or args.output_dir}
        elif args.run_name and args.run_name != args.output_dir:
            names = {"name": args.run_name}
        run = self._runs.get(**names)
        run.config.update({**args.to_dict(), **_model_config(model), **self._config}, allow_val_change=True)

    @never_raises
    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        run = self._runs.get()
        metrics = {}
        for key, value in logs.items():
            if key in SUMMARY_KEYS:
                run.summary[key] = value
            else:
                metrics[key] = value
        if metrics:
            self._runs.log(rewrite_logs(metrics), state.global_step)

    @never_raises
    def on_predict(self, args, state, control, metrics=None, **kwargs):
        if state.is_world_process_zero and metrics:
            self._runs.log(rewrite_logs(metrics), state.global_step)

    @never_raises
    def on_train_end(self, args, state, control, **kwargs):
        if not state.is_world_process_zero or not self._runs.live:
            return
        summary = self._runs.run.summary
        summary[STEP_KEY] = state.global_step
        if state.epoch is not None:
            summary["train/epoch"] = state.epoch
        if state.best_metric is not None:
            summary["best_metric"] = state.best_metric
            summary["best_model_checkpoint"] = state.best_model_checkpoint
        self._runs.end()

    # -- a crash inside train() -------------------------------------------------------------------

    def _watch_for_crash(self, trainer: Optional[Trainer]) -> None:
        if trainer is None or getattr(trainer, "_alerts_watched", False):
            return
        original = trainer.train

        @functools.wraps(original)
        def train(*args: Any, **kwargs: Any) -> Any:
            try:
                return original(*args, **kwargs)
            except BaseException as exc:
                self._crashed(exc)
                raise

        trainer.train = train
        trainer._alerts_watched = True

    @never_raises
    def _crashed(self, exc: BaseException) -> None:
        self._runs.end(error=exc)


def _model_config(model: Any) -> dict:
    """The model's class, name or path, number of parameters and config, as ``model/...`` keys."""
    if model is None:
        return {}
    values: dict = {"model/class": type(model).__name__}
    name_or_path = getattr(model, "name_or_path", None)
    if name_or_path:
        values["model/name_or_path"] = str(name_or_path)
    try:
        values["model/num_parameters"] = model.num_parameters()
    except Exception:  # not a PreTrainedModel: count what torch counts
        try:
            values["model/num_parameters"] = sum(p.numel() for p in model.parameters())
        except Exception:
            pass
    config = getattr(model, "config", None)
    if config is not None:
        try:
            values["model/config"] = config if isinstance(config, dict) else config.to_dict()
        except Exception:
            pass
    return values
