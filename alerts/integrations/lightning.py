"""Lightning: ``Trainer(logger=AlertsLogger(project="..."))``.

A Lightning ``Logger``: ``log_hyperparams`` becomes the run's config, ``log_metrics`` its history at
Lightning's global step (one row per step; ``trainer/global_step`` is logged too), and
``finalize(status)`` its end:

=================  ==============================================================================
Lightning status   run state
=================  ==============================================================================
``"success"``      ``finished`` (at the end of each ``fit``/``validate``/``test``; a later call
                   continues the same run)
``"failed"``       ``failed`` with the exception being handled (``killed`` for Ctrl-C)
``"finished"``     ``preempted`` (Lightning says it from its SLURM requeue signal handler: the job is
                   being requeued)
=================  ==============================================================================

Distributed training (DDP): with ``rank_zero_only=True`` (the default) only global rank 0 has a run,
so the job is one run and each alert is raised once. With ``rank_zero_only=False`` every rank logs its
own run, named ``<name>-rank<N>`` and sharing one ``group`` (yours, or one made from the job's id:
``TORCHELASTIC_RUN_ID``, ``SLURM_JOB_ID``, else ``MASTER_ADDR``/``MASTER_PORT``), so that the same
alert on 8 ranks is grouped into one message instead of 8 (see "Delivery" in the README).
"""

from __future__ import annotations

import os
import sys
from argparse import Namespace
from typing import Any, Mapping, Optional, Sequence, Union

from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.utilities.rank_zero import rank_zero_only as _rank_zero_only

from alerts.integrations._runs import IntegrationRun, logger, never_raises

__all__ = ["AlertsLogger"]

STEP_KEY = "trainer/global_step"
# Environment variables that name a distributed job, in the order they are trusted.
JOB_ID_VARIABLES = ("TORCHELASTIC_RUN_ID", "SLURM_JOB_ID", "LSB_JOBID", "PBS_JOBID")


def job_group(project: Optional[str]) -> Optional[str]:
    """A group name every rank of this distributed job computes alike, from its environment."""
    for variable in JOB_ID_VARIABLES:
        value = os.environ.get(variable)
        if value and value != "none":  # torchrun's default rendezvous id is "none"
            return f"{project or 'lightning'}-job-{value}"
    addr, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    if addr and port:
        return f"{project or 'lightning'}-ddp-{addr}-{port}"
    return None


class _NoExperiment:
    """What ``logger.experiment`` is on the ranks that do not log, or when the run could not start
    (any call does nothing)."""

    id = project = name = None

    def __getattr__(self, _name: str) -> Any:
        return lambda *args, **kwargs: None


class AlertsLogger(Logger):
    """Log a Lightning ``Trainer`` to alerts.

    The keywords are :func:`alerts.init`'s (``project``, ``name``, ``tags``, ``group``, ``notes``,
    ``job_type``, ``config``, ``id``...). ``rank_zero_only``: one run per job (True, the default) or
    one run per rank (False).
    """

    def __init__(self, project: Optional[str] = None, name: Optional[str] = None, *,
                 rank_zero_only: bool = True, group: Optional[str] = None,
                 tags: Optional[Sequence[str]] = None, notes: Optional[str] = None,
                 job_type: Optional[str] = None, **init_kwargs: Any) -> None:
        super().__init__()
        self._project = project
        self._name = name
        self._group = group
        self.rank_zero_only = rank_zero_only
        self._init_kwargs = dict(project=project, tags=tags, notes=notes, job_type=job_type, **init_kwargs)
        self._runs: Optional[IntegrationRun] = None

    # -- which rank logs ----------------------------------------------------------------------------

    @property
    def rank(self) -> int:
        """This process's global rank, as Lightning has set it (0 outside distributed training)."""
        return getattr(_rank_zero_only, "rank", 0) or 0

    @property
    def logs_here(self) -> bool:
        return not self.rank_zero_only or self.rank == 0

    def _integration_run(self) -> IntegrationRun:
        if self._runs is None:
            name, group = self._name, self._group
            if not self.rank_zero_only:
                group = group or job_group(self._project) or name
                base = name or group
                name = f"{base}-rank{self.rank}" if base else None
            self._runs = IntegrationRun(dict(self._init_kwargs, name=name, group=group), STEP_KEY)
        return self._runs

    # -- Logger ---------------------------------------------------------------------------------

    @property
    def name(self) -> Optional[str]:
        """The project (as Lightning's WandbLogger): the checkpoint folder is ``<project>/<run id>``."""
        return self._project or (self.experiment.project if self.logs_here else None)

    @property
    def version(self) -> Optional[str]:
        """The run's id (on a rank that logs)."""
        return self.experiment.id if self.logs_here else None

    @property
    def experiment(self) -> Any:
        """The :class:`alerts.Run` (started now if need be); on a rank that does not log, an object
        whose every method does nothing."""
        if not self.logs_here:
            return _NoExperiment()
        try:
            return self._integration_run().get()
        except Exception:  # the store cannot be reached...: Lightning trains on without a run
            logger.exception("alerts: AlertsLogger could not start its run; training goes on without it")
            return _NoExperiment()

    @never_raises
    def log_hyperparams(self, params: Union[Mapping[str, Any], Namespace], *args: Any, **kwargs: Any) -> None:
        if not self.logs_here:
            return
        if isinstance(params, Namespace):
            params = vars(params)
        self._integration_run().update_config(dict(params or {}))

    @never_raises
    def log_metrics(self, metrics: Mapping[str, float], step: Optional[int] = None) -> None:
        if self.logs_here:
            self._integration_run().log(metrics, step)

    @never_raises
    def finalize(self, status: str) -> None:
        if not self.logs_here or self._runs is None:
            return
        if status == "success":
            self._runs.end()
        elif status == "finished":
            self._runs.end("preempted")
        else:
            # Lightning calls finalize("failed") inside its `except BaseException` block.
            exc = sys.exc_info()[1] or RuntimeError(f"Lightning ended the run with status {status!r}")
            self._runs.end(error=exc)
