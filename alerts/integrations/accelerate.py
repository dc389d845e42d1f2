"""accelerate: ``Accelerator(log_with=AlertsTracker(project="..."))``.

An accelerate ``GeneralTracker``: ``init_trackers(config=...)`` becomes the run's config,
``accelerator.log(values, step=...)`` its history (at ``step`` when given: one row per step), and
``accelerator.end_training()`` its end (``finished``; a loop that raises ends ``failed`` at exit
through the SDK's exit hook). Only the main process logs (``main_process_only``), so a multi-process
job is one run.

Importing this module also registers the tracker under the name ``"alerts"``, so that
``Accelerator(log_with="alerts")`` works too, taking its project from
``accelerator.init_trackers("project")`` (a tracker instance is given no project by accelerate: pass
``project=`` to it).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from accelerate.tracking import GeneralTracker, on_main_process

from alerts.integrations._runs import IntegrationRun, never_raises

__all__ = ["AlertsTracker"]

STEP_KEY = "accelerate/step"


class AlertsTracker(GeneralTracker):
    """Log an accelerate training loop to alerts.

    ``project`` and the keywords are :func:`alerts.init`'s (``name``, ``tags``, ``group``, ``notes``,
    ``job_type``, ``config``...). ``tracker`` is the :class:`alerts.Run` once started.
    """

    name = "alerts"  # accelerate's name for the tracker type (log_with="alerts"), not the run's
    requires_logging_directory = False
    main_process_only = True

    def __init__(self, project: Optional[str] = None, *, run_name: Optional[str] = None,
                 tags: Optional[Sequence[str]] = None, group: Optional[str] = None,
                 notes: Optional[str] = None, job_type: Optional[str] = None, **init_kwargs: Any) -> None:
        super().__init__()
        if "name" in init_kwargs:  # accelerate's init_kwargs={"alerts": {"name": ...}} names the run
            run_name = run_name or init_kwargs.pop("name")
        self._runs = IntegrationRun(dict(project=project, name=run_name, tags=tags, group=group, notes=notes,
                                         job_type=job_type, **init_kwargs), STEP_KEY)

    @property
    def tracker(self) -> Any:
        """The :class:`alerts.Run` (None before ``start()`` and on the other processes)."""
        return self._runs.run

    @on_main_process
    @never_raises
    def start(self) -> None:
        self._runs.get()

    @on_main_process
    @never_raises
    def store_init_configuration(self, values: dict) -> None:
        self._runs.update_config(values)

    @on_main_process
    @never_raises
    def log(self, values: dict, step: Optional[int] = None, **kwargs: Any) -> None:
        self._runs.log(values, step)

    @on_main_process
    @never_raises
    def finish(self) -> None:
        self._runs.end()


def _register() -> None:
    try:
        from accelerate.tracking import register_tracker_class
    except ImportError:  # accelerate before register_tracker_class: only instances work
        return
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS

    if LOGGER_TYPE_TO_CLASS.get(AlertsTracker.name) is not AlertsTracker:
        register_tracker_class(AlertsTracker)


_register()
