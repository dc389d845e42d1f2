"""The run an integration logs to, shared by the three framework integrations.

A framework calls its logger at moments of its own (train begins, metrics, train ends, a crash),
and may call it again after it said the end (``trainer.evaluate()`` after ``train()``, Lightning's
``trainer.test()`` after ``fit()``). :class:`IntegrationRun` turns those calls into one run's life:

- the run starts at the first call that needs it; if the script already has a live run
  (``alerts.init()`` before the Trainer), that run is used and its ending is left to the script;
- :meth:`IntegrationRun.end` finishes the run it started, with the state the framework's outcome
  means (finished, failed with the exception, killed, preempted);
- a call after the end continues the same run (``init(id=..., resume="allow")``), which then ends
  like any run (at ``finish()``, or at exit).

Nothing here raises into the training loop: a failure inside alerts is logged (logger ``alerts``)
and the framework goes on.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable, Mapping, Optional

import alerts
from alerts.sdk.run import FAILED, Run, end_state

logger = logging.getLogger("alerts")


def never_raises(method: Callable) -> Callable:
    """Decorate an integration hook: an exception inside alerts is logged, never raised into the
    framework (it would stop the training)."""

    @functools.wraps(method)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception:
            logger.exception("alerts: %s failed; training goes on without it", method.__qualname__)
            return None

    return guarded


class IntegrationRun:
    """One integration's run: started on first use, ended with a state, reopened if used again.

    ``init_kwargs`` are :func:`alerts.init`'s keywords; ``step_key`` names the metric that carries
    the framework's own step (``train/global_step``), logged with every row so that a row whose step
    could not be the framework's (after a reopen) still says which step it belongs to.
    """

    def __init__(self, init_kwargs: Mapping[str, Any], step_key: str) -> None:
        self.init_kwargs = {k: v for k, v in init_kwargs.items() if v is not None}
        self.step_key = step_key
        self.run: Optional[Run] = None
        self.owned = False  # started here (so ended here), as opposed to the script's own run

    def get(self, **more_init: Any) -> Run:
        """The live run, started (with ``more_init`` added to the init keywords) or reopened."""
        run = self.run
        if run is not None and not run.finished:
            return run
        if run is not None:  # ended, and the framework logs again: continue the same run
            self.run = alerts.init(id=run.id, resume="allow", project=run.project, reinit="create_new")
            return self.run
        current = alerts.run
        if current is not None and not current.finished:
            self.run, self.owned = current, False
            return current
        kwargs = {**{k: v for k, v in more_init.items() if v is not None}, **self.init_kwargs}
        self.run, self.owned = alerts.init(**kwargs), True
        return self.run

    @property
    def live(self) -> bool:
        return self.run is not None and not self.run.finished

    def log(self, metrics: Mapping[str, Any], step: Optional[int]) -> None:
        """Log ``metrics`` at the framework's ``step``: rows of one step are merged (train and eval
        metrics of step 100 are one row); a step the run has passed (after a reopen) is logged at
        the run's next step instead, with ``step_key`` saying which it was."""
        run = self.get()
        row = dict(metrics)
        if step is None:
            run.log(row)
            return
        row[self.step_key] = step
        if step >= run.step:
            run.log(row, step=step)
        else:
            run.log(row)

    def update_config(self, values: Mapping[str, Any]) -> None:
        self.get().config.update(dict(values), allow_val_change=True)

    def end(self, status: Optional[str] = None, error: Optional[BaseException] = None) -> None:
        """Finish the run if it was started here: ``error`` makes it failed (killed for Ctrl-C);
        ``status`` may say ``preempted``. The script's own run is left running (its pending row is
        committed), for the script to finish."""
        run = self.run
        if run is None or run.finished:
            return
        if not self.owned:
            if run._pending:
                run._commit()
            return
        if status == "preempted":
            run.finish(state="preempted")
        elif error is not None:
            state, code = end_state(run._preempting, error, None)
            run.finish(exit_code=code, state=state or FAILED, error=error)
        else:
            run.finish()
