"""``Run``: one training run's logger, as ``wandb.init()`` returns it.

The hot path is :meth:`Run.log`: convert the values (a type check each for plain numbers), merge them
into the pending row, and on commit stamp ``_step``/``_runtime``/``_timestamp``, update the summary and
append one tuple to the background writer's deque. No lock, no I/O, no exception from delivery.
"""

from __future__ import annotations

import logging
import time
import traceback
import warnings
from collections.abc import Mapping
from typing import Any, Callable, Optional, Sequence

from alerts import clock as _clock
from alerts.channels.base import Notification
from alerts.errors import AlertsWarning, UsageError
from alerts.sdk.alerting import AlertThrottle, check_level, check_wait_duration
from alerts.sdk.config import Config, Summary
from alerts.sdk.convert import convert_row
from alerts.sdk.media import Media, safe_name
from alerts.sdk.worker import ALERT, HEARTBEAT_EVERY, HISTORY, MEDIA, RUN_UPDATE, Writer
from alerts.rules.engine import RunRules
from alerts.rules.templates import clip_text, clip_title
from alerts.sdk.raising import console_notify, deliveries_for, rule_alert_op
from alerts.store.models import alert_row

logger = logging.getLogger("alerts")

# How many trailing traceback lines a failed run keeps.
TRACEBACK_LINES = 30
# How long alert() waits for its record and outbox rows to be committed (seconds).
ALERT_COMMIT_WAIT = 1.0
# States a run ends in.
FINISHED, FAILED, KILLED, PREEMPTED = "finished", "failed", "killed", "preempted"


def _discard(_op: Any) -> None:
    pass


_WALL_CLOCK = _clock.now  # the real clock, as imported (tests may swap alerts.clock.now later)


def _default_clock() -> Callable[[], float]:
    """``alerts.clock.now`` as it is now; ``time.time`` itself when that is the real clock, which
    saves log() a Python call per row."""
    return time.time if _clock.now is _WALL_CLOCK else _clock.now


def _nothing() -> None:
    pass


def end_state(preempting: bool, exception: Optional[BaseException],
              exit_code: Optional[int]) -> tuple[Optional[str], Optional[int]]:
    """How a run that was not finished explicitly ends: ``(state, exit code)``; a None state lets
    ``finish()`` decide from the code. Preempting wins; Ctrl-C is killed; an exception or a non-zero
    code is failed."""
    if preempting:
        return PREEMPTED, exit_code
    if isinstance(exception, KeyboardInterrupt):
        return KILLED, 130
    if exception is not None:
        return FAILED, 1
    if exit_code:
        return FAILED, exit_code
    return None, exit_code or 0


def describe_exception(exc: BaseException) -> tuple[str, str]:
    """``(type name, last lines of the traceback)`` of an exception, for the run record."""
    lines = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip().splitlines()
    return type(exc).__qualname__, "\n".join(lines[-TRACEBACK_LINES:])


# Steps are stored as 64-bit integers on every backend (wandb's steps are int64 too).
MAX_STEP = 2**63 - 1


def _valid_step(step: Any) -> Optional[int]:
    """``step`` as an int, or None (with a warning: the row is ignored, as for a lower step) if it is
    not a whole number a store can hold; one such step must not cost the rows logged around it."""
    try:
        value = int(step)
    except (TypeError, ValueError, OverflowError):  # "x", nan, inf
        value = None
    if value is None or not 0 <= value <= MAX_STEP:
        warnings.warn(f"alerts: step must be a whole number from 0 to 2**63-1, not {step!r}; this data "
                      "will be ignored.", AlertsWarning, stacklevel=3)
        return None
    return value


class Run:
    """A run being logged. Use it as ``run.log(...)``, or through the module functions.

    Also a context manager: leaving the ``with`` block finishes the run, as ``failed`` (with the
    exception recorded) if the block raised, ``killed`` on ``KeyboardInterrupt``.
    """

    def __init__(
        self,
        *,
        id: str,
        name: str,
        project: str,
        owner: str,
        config: Optional[dict] = None,
        summary: Optional[dict] = None,
        group: Optional[str] = None,
        job_type: Optional[str] = None,
        tags: Sequence[str] = (),
        notes: Optional[str] = None,
        dir: Optional[str] = None,
        writer: Optional[Writer] = None,
        channel: Any = None,
        start_step: int = 0,
        clock: Optional[Callable[[], float]] = None,
        on_finish: Optional[Callable[["Run"], None]] = None,
    ) -> None:
        self.id = id
        self.name = name
        self.project = project
        self.entity = owner
        self.group = group
        self.job_type = job_type
        self.tags = tuple(tags)
        self.notes = notes
        self.dir = dir
        self.disabled = writer is None
        self._writer = writer
        self._append = writer.append if writer is not None else _discard
        self._wake_if_long = writer.wake_if_long if writer is not None else _nothing
        self._channel = channel
        self._clock = clock if clock is not None else _default_clock()  # looked up now: tests swap it
        self._on_finish = on_finish
        self._step = start_step
        self._pending: dict = {}
        self._media = self._media_hook  # bound once: log() passes it on every call
        self._start = self._clock()
        self._finished = False
        self._preempting = False
        self._dirty = False
        self._heartbeat_at = 0.0
        self._media_count = 0
        self._throttle = AlertThrottle()
        self._rules: Optional[RunRules] = None  # set by init() when rules are loaded
        self._channels: Any = None  # the users' channels (a ChannelSet), set by init() when configured
        self._resumed = False  # init(resume=...) continued an earlier run
        self._rule_templates: Any = None
        self.config = Config(config, on_change=self._config_changed)
        self.summary = Summary(summary, on_change=self._summary_changed)

    # -- identity -------------------------------------------------------------------------------

    @property
    def path(self) -> str:
        """``owner/project/id``, as wandb's ``run.path``."""
        return f"{self.entity}/{self.project}/{self.id}"

    @property
    def step(self) -> int:
        """The step the next commit will be logged at."""
        return self._step

    @property
    def finished(self) -> bool:
        return self._finished

    def __repr__(self) -> str:
        return f"<Run {self.path} name={self.name!r}{' finished' if self._finished else ''}>"

    # -- logging ------------------------------------------------------------------------------------

    def log(self, data: Mapping, step: Optional[int] = None, commit: Optional[bool] = None) -> None:
        """Log values at the current step, as ``wandb.log``.

        Without ``step``, the row is committed and the step advances (unless ``commit=False``, which
        keeps accumulating into the same step). With ``step``, a higher step commits what is pending
        and moves there; the values wait for a later step (or ``commit=True``, or ``finish()``); a
        lower step is dropped with a warning.
        """
        if self._finished:
            raise self._finished_error("log")
        if type(data) is not dict and not isinstance(data, Mapping):  # the exact type first: the ABC check is slow
            raise TypeError(f"log() must be passed a dictionary, not {type(data).__name__}")
        row = convert_row(data, self._media)
        if step is not None:
            step = _valid_step(step)
            if step is None:
                return
            if step < self._step:
                warnings.warn(
                    f"alerts: tried to log to step {step} that is less than the current step {self._step}. "
                    "Steps must be monotonically increasing, so this data will be ignored.",
                    AlertsWarning,
                    stacklevel=2,
                )
                return
            if step > self._step:
                if self._pending:
                    self._commit()
                self._step = step
        elif commit is None:
            commit = True
        if self._pending:
            self._pending.update(row)
        else:
            self._pending = row
        if commit:
            self._commit()

    def _commit(self) -> None:
        row = self._pending
        self._pending = {}
        now = self._clock()
        step = self._step
        rules = self._rules
        transitions = None
        if rules is not None:
            # Rules see the row before the _step/_runtime/_timestamp keys are added: fewer keys to skip.
            try:
                transitions = rules.observe_row(row, step, now)
            except Exception:  # a rule must never cost the row or reach the training loop
                logger.exception("alerts: evaluating rules on step %s failed", step)
        row["_step"] = step
        row["_runtime"] = now - self._start
        row.setdefault("_timestamp", now)  # a _timestamp the caller logged wins, as in wandb
        self.summary._data.update(row)
        self._dirty = True
        self._append((HISTORY, self.id, row))
        self._step = step + 1
        if transitions:
            self._raise_rule_alerts(transitions)
        self._wake_if_long()

    def _finished_error(self, call: str) -> UsageError:
        return UsageError(f"Run ({self.id}) is finished. The call to `{call}` will be ignored. "
                          "Please make sure that you are using an active run (alerts.init() starts one).")

    def _media_hook(self, key: str, media: Media) -> dict:
        self._media_count += 1
        relpath = f"{self.id}/{safe_name(key)}_{self._step}_{self._media_count}{media.suffix}"
        self._append((MEDIA, self.id, self._step, key, media.snapshot(), relpath))
        return media.placeholder(relpath)

    def _config_changed(self, data: dict) -> None:
        self._append((RUN_UPDATE, self.id, {"config": dict(data), "updated_at": self._clock()}))

    def _summary_changed(self, _data: dict) -> None:
        self._dirty = True

    def _snapshot(self, now: float) -> Optional[dict]:
        """Called by the writer thread each cycle: what to write about this live run."""
        if self._dirty:
            self._dirty = False  # cleared before the copy: a change made meanwhile is picked up next time
            self._heartbeat_at = now
            # A copy: the writer encodes it (and repairs what no database stores) off the hot path.
            return {"summary": self.summary._data.copy(), "last_step": self._step - 1,
                    "updated_at": now, "heartbeat_at": now}
        if now - self._heartbeat_at >= HEARTBEAT_EVERY:
            self._heartbeat_at = now
            return {"heartbeat_at": now}
        return None

    # -- alerts -----------------------------------------------------------------------------------

    def alert(self, title: str, text: str, level: Any = None, wait_duration: Any = None) -> None:
        """Raise an alert, as ``wandb.alert``.

        ``level`` is ``"INFO"`` (default), ``"WARN"`` or ``"ERROR"`` or an :class:`AlertLevel`
        (``ValueError`` otherwise). A repeat of ``title`` within ``wait_duration`` (seconds or a
        timedelta; default 60 s) of the last notification is recorded as suppressed instead of sent.
        Returns None; a failure to notify is logged and recorded as ``failed``, never raised. The title
        and text are cut to 250 and 3000 characters (``MAX_TITLE_CHARS``, ``MAX_TEXT_CHARS``) where
        they are stored and sent; repeats are still told apart by the full title.

        A call that notifies returns once its record and outbox rows are committed (a kill -9 after
        that loses nothing), waiting at most ``ALERT_COMMIT_WAIT`` seconds and never raising; while
        the store refuses writes it does not wait (the record is held and retried like points).
        """
        if self._finished:
            raise self._finished_error("alert")
        level_name = check_level(level)
        wait_seconds = check_wait_duration(wait_duration)
        if self.disabled:
            return None
        full_title, title, text = str(title), clip_title(str(title)), clip_text(str(text))
        now = self._clock()
        notify, reason = self._throttle.allow(full_title, wait_seconds, now)  # the full title: see AlertThrottle
        notification = Notification(
            title=title, text=text, level=level_name, run_id=self.id, run_name=self.name, project=self.project,
            owner=self.entity, created_at=now, step=self._step, run_group=self.group,
        )
        outcome, reason = console_notify(self._channel, notification, reason) if notify else ("suppressed", reason)
        if outcome == "failed":
            self._throttle.forget(full_title)  # a call that reached nobody must not silence the next one
        uid, deliveries = deliveries_for(self._channels, notification, None) if notify else (None, [])
        self._append((ALERT, alert_row(
            uid=uid, run_id=self.id, created_at=now, source="alert", title=title, text=text, level=level_name,
            outcome=outcome, reason=reason, wait_duration=wait_seconds, step=self._step,
        ), deliveries))
        if notify and self._writer is not None:
            # Durable when it returns, as wandb's alert() is a synchronous call: wait (bounded) for
            # the commit of the record and its outbox rows; the relay is woken by that commit. A
            # suppressed repeat does not wait: it notifies no one, and a loop may call it every step.
            self._writer.commit_now(ALERT_COMMIT_WAIT)
        return None

    def use_delivery(self, channels: Any) -> None:
        """Send this run's alerts to the users' channels in ``channels`` (through the outbox)."""
        self._channels = channels

    def use_rules(self, rules: Optional[RunRules], templates: Any) -> None:
        """Evaluate ``rules`` on this run's rows from now on (``templates`` renders their alerts)."""
        self._rule_templates = templates
        self._rules = rules

    def _raise_rule_alerts(self, transitions: list) -> None:
        """Record and notify rule transitions. Never raises: a broken template or channel is logged."""
        for transition in transitions:
            try:
                self._raise_rule_alert(transition)
            except Exception:
                logger.exception("alerts: could not raise the alert of rule %r", transition.rule.name)
        if self._writer is not None:
            self._writer.wake()  # commit rule alerts now, not on the next tick

    def _raise_rule_alert(self, transition) -> None:
        self._append(rule_alert_op(transition, self._rule_templates, self._channel, self._channels))

    def _watch(self, now: float) -> None:
        """Called by the writer thread each cycle: evaluate the stalled rules at ``now``."""
        rules = self._rules
        if rules is not None and not self._finished:
            transitions = rules.check_stalled(now)
            if transitions:
                self._raise_rule_alerts(transitions)

    # -- life -------------------------------------------------------------------------------------

    def mark_preempting(self) -> None:
        """Say that this run is being preempted: if it then ends other than by ``finish()``, it is
        recorded as ``preempted`` rather than killed or failed."""
        if self._finished:
            raise self._finished_error("mark_preempting")
        self._preempting = True
        self._append((RUN_UPDATE, self.id, {"updated_at": self._clock()}))

    def define_metric(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Accepted for wandb compatibility; axes and summaries are not customised yet."""
        return None

    def watch(self, *args: Any, **kwargs: Any) -> None:
        """Accepted for wandb compatibility (gradient histograms are not recorded)."""
        return None

    def _label(self, *args: Any, **kwargs: Any) -> None:
        """wandb's private telemetry label (transformers' wandb integration calls it): nothing to record."""
        return None

    def finish(self, exit_code: Optional[int] = None, quiet: Optional[bool] = None, *,
               state: Optional[str] = None, error: Optional[BaseException] = None,
               timeout: float = 30.0) -> None:
        """End the run: commit what is pending, record its state, and wait (up to ``timeout``
        seconds) until everything it logged is in the store. A second call does nothing.

        The state is ``failed`` for a non-zero ``exit_code``, else ``finished``; ``state`` and
        ``error`` are for the exit hooks (``killed``, ``preempted``, the exception of a crash).
        """
        if self._finished:
            return
        if self._pending:
            self._commit()
        self._finished = True
        now = self._clock()
        if state is None:
            state = FAILED if exit_code else FINISHED
        fields: dict = {
            "state": state, "finished_at": now, "updated_at": now, "heartbeat_at": now,
            "exit_code": exit_code, "summary": self.summary._data.copy(), "last_step": self._step - 1,
        }
        if error is not None:
            fields["error_type"], fields["error_text"] = describe_exception(error)
        if self._rules is not None:
            transitions = self._rules.on_end(state, now, fields.get("error_type"), exit_code)
            if transitions:
                self._raise_rule_alerts(transitions)
        self._append((RUN_UPDATE, self.id, fields))
        if self._writer is not None:
            self._writer.detach(self.id)
            if not self._writer.flush(timeout):
                logger.warning("alerts: run %s: not everything was written within %.0fs", self.name, timeout)
        if self._on_finish is not None:
            self._on_finish(self)

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None:
            self.finish()
        else:
            state, code = end_state(self._preempting, exc, None)
            self.finish(exit_code=code, state=state, error=exc)
        return False
