"""``Run``: one training run's logger, as ``wandb.init()`` returns it.

The hot path is :meth:`Run.log`: convert the values (a type check each for plain numbers), merge them
into the pending row, and on commit stamp ``_step``/``_runtime``/``_timestamp``, update the summary,
append the row itself to the background writer's deque (see ``worker.ROW_RUN``) and hand it to the
rules (at once, or a batch at a time in a tight loop: see ``RULES_TIGHT_GAP``). No I/O, no exception
from delivery.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from alerts import clock as _clock
from alerts.channels.base import Notification
from alerts.errors import AlertsWarning, UsageError
from alerts.sdk import artifacts, files, noops
from alerts.sdk.alerting import AlertThrottle, check_level, check_wait_duration
from alerts.sdk.config import Config, Summary
from alerts.sdk.convert import convert_row
from alerts.sdk.media import Media, safe_name
from alerts.sdk.metrics import Metric, MetricDefinitions
from alerts.sdk.names import check_tags, check_text
from alerts.sdk.worker import ALERT, HEARTBEAT_EVERY, MEDIA, ROW_RUN, RUN_UPDATE, Writer
from alerts.rules.engine import RunRules
from alerts.rules.templates import clip_text, clip_title
from alerts.sdk.raising import console_notify, deliveries_for, rule_alert_op
from alerts.store.models import alert_row

logger = logging.getLogger("alerts")

# How many trailing traceback lines a failed run keeps.
TRACEBACK_LINES = 30
# How long alert() waits for its record and outbox rows to be committed (seconds).
ALERT_COMMIT_WAIT = 1.0
# While log() commits rows less than RULES_TIGHT_GAP seconds apart (a loop that does little but log),
# the rules see them a batch at a time (RunRules.observe_rows: one pass per watched metric, several
# times cheaper a row than one call per row): once RULES_BATCH_ROWS wait, or RULES_BATCH_WAIT after
# the oldest of them, at the writer's next cycle, or before alert() and finish(). A row committed
# after a gap (a loop doing real work between its log() calls) is evaluated at once, as before: its
# alert is raised inside that log() call. Either way each row is evaluated at its own step and time.
RULES_TIGHT_GAP = 0.001
RULES_BATCH_WAIT = 0.005
RULES_BATCH_ROWS = 256
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
        mode: str = "online",
        server_url: Optional[str] = None,
        sweep_id: Optional[str] = None,
        settings: Any = None,
    ) -> None:
        # id, project, entity, group, job_type and config are read-only, as on wandb's Run: the writer
        # keys every row by the id, so a script assigning one must get an error, not lose its rows.
        self._id = id
        self._name = name
        self._project = project
        self._entity = owner
        self._group = group
        self._job_type = job_type
        self._tags = tuple(tags)
        self._notes = notes
        self._store_dir = Path(dir) if dir else None  # the store's folder (ALERTS_DIR): artifacts live there
        self._files_dir: Optional[Path] = None  # run.dir, made on first use
        self.disabled = writer is None
        self._mode = mode
        self._server_url = server_url.rstrip("/") if server_url else None
        self.sweep_id = sweep_id
        self.settings = settings
        self.starting_step = start_step
        self._metrics: Optional[MetricDefinitions] = None  # set by the first define_metric()
        self._saved = files.SavedFiles()
        self._identity_changed: Optional[Callable[[], None]] = None  # set by init(): rules follow a rename
        self._pid = os.getpid()  # a forked child's init() starts its own run rather than return this one
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
        self._unevaluated: list = []  # committed rows the rules have not seen yet (see RULES_TIGHT_GAP)
        self._unevaluated_at: list = []  # their times (the clock at their commit), appended first
        # One evaluation at a time: log()'s or the writer's. Re-entrant: a SIGTERM handler on the main
        # thread may interrupt an evaluation and finish() the run (the inner call then leaves the
        # rows to the interrupted one rather than evaluate them twice).
        self._rules_lock = threading.RLock()
        self._evaluating = False
        self._rules_due = math.inf  # when the oldest unevaluated row must be evaluated
        self._last_commit_at = -math.inf
        # Batches only on the real clock (a test's stepped clock says nothing about call rates): a
        # negative gap makes every row be evaluated at its commit.
        self._tight_gap = RULES_TIGHT_GAP if self._clock is time.time else -1.0
        self._channels: Any = None  # the users' channels (a ChannelSet), set by init() when configured
        self._resumed = False  # init(resume=...) continued an earlier run
        self._rule_templates: Any = None
        self._config = Config(config, on_change=self._config_changed)
        self._summary = Summary(summary, on_change=self._summary_changed)

    # -- identity -------------------------------------------------------------------------------

    @property
    def id(self) -> str:
        """The run's id (read-only, as in wandb)."""
        return self._id

    @property
    def project(self) -> str:
        """The run's project (read-only, as in wandb)."""
        return self._project

    @property
    def entity(self) -> str:
        """The run's owner, ``ALERTS_USER`` (read-only, as in wandb)."""
        return self._entity

    @property
    def group(self) -> Optional[str]:
        """The run's group (read-only, as in wandb)."""
        return self._group

    @property
    def job_type(self) -> Optional[str]:
        """The run's job type (read-only, as in wandb)."""
        return self._job_type

    @property
    def config(self) -> Config:
        """The run's config (read-only: change it with ``config.update``, as in wandb)."""
        return self._config

    @property
    def summary(self) -> Summary:
        """The run's summary. Assigning a dict to it (which wandb tolerates) sets those keys."""
        return self._summary

    @summary.setter
    def summary(self, value: Mapping) -> None:
        if value is self._summary:
            return
        if not isinstance(value, Mapping):
            raise TypeError(f"run.summary takes a dict, not {type(value).__name__}")
        self._summary.update(value)

    @property
    def path(self) -> str:
        """``owner/project/id``, as wandb's ``run.path``."""
        return f"{self.entity}/{self.project}/{self.id}"

    @property
    def name(self) -> str:
        """The run's display name; setting it stores the new name (and rules' templates use it)."""
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._name = check_text(str(value), "name")
        self._store_identity({"name": self._name})

    @property
    def tags(self) -> tuple:
        """The run's tags; setting them (any sequence of strings) stores them."""
        return self._tags

    @tags.setter
    def tags(self, value: Sequence[str]) -> None:
        self._tags = tuple(check_tags(value))
        self._store_identity({"tags": list(self._tags)})

    @property
    def notes(self) -> Optional[str]:
        """The run's notes; setting them stores them."""
        return self._notes

    @notes.setter
    def notes(self, value: Optional[str]) -> None:
        self._notes = check_text(value, "notes")
        self._store_identity({"notes": self._notes})

    def _store_identity(self, fields: dict) -> None:
        if self._finished:
            raise self._finished_error("setting an attribute")
        self._append((RUN_UPDATE, self.id, {**fields, "updated_at": self._clock()}))
        if self._identity_changed is not None:
            try:
                self._identity_changed()
            except Exception:  # a rule set that cannot follow must not cost the rename
                logger.exception("alerts: could not update the rules of run %s after a change", self.id)

    @property
    def dir(self) -> str:
        """The run's files folder (``<ALERTS_DIR>/media/<run id>/files``): what a script writes here is
        kept with the run, as ``wandb.save`` keeps files (a temporary folder for a disabled run)."""
        if self._files_dir is None:
            if self._writer is not None:
                folder = files.files_root(self._writer.media_root, self.id)
            else:
                folder = Path(tempfile.mkdtemp(prefix=f"alerts-{self.id}-"))
            folder.mkdir(parents=True, exist_ok=True)
            self._files_dir = folder
        return str(self._files_dir)

    @property
    def sync_dir(self) -> str:
        """Where the run's files are (the same as ``dir`` here)."""
        return self.dir

    @property
    def offline(self) -> bool:
        """True for ``mode="offline"`` (both modes log to the same embedded store)."""
        return self._mode == "offline"

    @property
    def resumed(self) -> bool:
        """Whether ``init(resume=...)`` continued an earlier run."""
        return self._resumed

    @property
    def start_time(self) -> float:
        """When the run started (seconds since the epoch)."""
        return self._start

    @property
    def url(self) -> Optional[str]:
        """The run's page on the server (``ALERTS_SERVER_URL``); None without one, as wandb's
        offline runs have none."""
        return f"{self._server_url}/runs/{self.id}" if self._server_url else None

    @property
    def project_url(self) -> Optional[str]:
        """The project's page on the server; None without ``ALERTS_SERVER_URL``."""
        return f"{self._server_url}/projects/{self.project}" if self._server_url else None

    @property
    def sweep_url(self) -> Optional[str]:
        """None: sweeps are not run here (see ``sweep_id``)."""
        return None

    @property
    def config_static(self) -> Any:
        """A read-only snapshot of the config, as wandb's ``run.config_static``."""
        from types import MappingProxyType

        return _StaticConfig(MappingProxyType(dict(self.config._data)))

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
        # Converted once the step is settled: media files are recorded at the step of their row.
        row = convert_row(data, self._media)
        if self._pending:
            self._pending.update(row)
            if commit:
                self._commit()
        elif commit:
            self._commit(row)  # the common case: nothing pending, the row is committed as it is
        else:
            self._pending = row

    def _commit(self, row: Optional[dict] = None) -> None:
        """Commit ``row``, or the pending row, at the current step and advance the step."""
        if row is None:
            row = self._pending
            self._pending = {}
        now = self._clock()
        step = self._step
        rules = self._rules
        metrics = self._metrics
        if metrics is not None:
            metrics.sync_steps(row)  # define_metric(step_metric=...): the axis's last value joins the row
        row["_step"] = step
        row["_runtime"] = now - self._start
        row.setdefault("_timestamp", now)  # a _timestamp the caller logged wins, as in wandb
        if metrics is None:
            self._summary._data.update(row)
        else:
            metrics.update_summary(row, self._summary._data)
        self._dirty = True
        row[ROW_RUN] = self._id  # queued as the row itself: not tracked by the GC (see ROW_RUN)
        self._append(row)
        self._step = step + 1
        if rules is not None:
            waiting = self._unevaluated
            self._unevaluated_at.append(now)  # before the row: an evaluator counts rows, then takes times
            waiting.append(row)
            if (now - self._last_commit_at >= self._tight_gap or now >= self._rules_due
                    or len(waiting) >= RULES_BATCH_ROWS):
                self._evaluate_rules(wait=False)
            elif self._rules_due == math.inf:  # the oldest waiting row: due RULES_BATCH_WAIT from now
                self._rules_due = now + RULES_BATCH_WAIT
            self._last_commit_at = now
        self._wake_if_long()

    def _evaluate_rules(self, wait: bool = True) -> None:
        """Hand the committed rows waiting for the rules to them, in order, and raise what they
        fire. Called by log() (``wait=False``: if the writer's thread is evaluating them, it leaves
        them to it), by the writer at each cycle, and before alert(), finish() and a change of rules."""
        if not self._rules_lock.acquire(wait):
            return
        if self._evaluating:  # re-entered on this thread (a signal handler): the outer call goes on
            self._rules_lock.release()
            return
        self._evaluating = True
        transitions = None
        try:
            rows, times = self._unevaluated, self._unevaluated_at
            self._rules_due = math.inf  # before the count: a row appended after it sets its own due time
            count = len(rows)  # log() may append meanwhile (another thread): only these are taken
            if not count:
                return
            batch, at = rows[:count], times[:count]
            del rows[:count], times[:count]
            rules = self._rules
            if rules is not None:
                try:
                    transitions = rules.observe_rows(batch, at)
                except Exception:  # a rule must never cost the row or reach the training loop
                    logger.exception("alerts: evaluating rules on steps %s-%s failed", batch[0].get("_step"),
                                     batch[-1].get("_step"))
        finally:
            self._evaluating = False
            self._rules_lock.release()
        if transitions:
            self._raise_rule_alerts(transitions)

    def _orphan(self) -> None:
        """In a forked child: this run is the parent's, whose writer thread the child does not
        have. What the child logs to it is dropped, with one warning, instead of piling up."""
        warned = []

        def dropped(_op: Any) -> None:
            if not warned:
                warned.append(True)
                warnings.warn(f"alerts: a forked child process logged to run {self.id} of its parent; this is "
                              "not stored (call alerts.init() in the child for a run of its own)",
                              AlertsWarning, stacklevel=4)

        self._append = dropped
        self._wake_if_long = _nothing
        self._writer = None
        self._rules_lock = threading.RLock()  # the parent's writer thread may have held it at the fork
        self._evaluating = False

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
            return {"summary": self._summary._data.copy(), "last_step": self._step - 1,
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
        if self._unevaluated:
            self._evaluate_rules()  # rule alerts of the rows logged before this call come first
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
        if self._unevaluated:
            self._evaluate_rules()  # rows logged under the rules in force are evaluated by them
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
        """Called by the writer thread each cycle: evaluate the stalled rules at ``now`` (after the
        rows waiting for the rules: they are data the stalled rules must see)."""
        if self._unevaluated:
            self._evaluate_rules()
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

    def define_metric(self, name: str, step_metric: Any = None, step_sync: Optional[bool] = None,
                      hidden: Optional[bool] = None, summary: Optional[str] = None, goal: Optional[str] = None,
                      overwrite: Optional[bool] = None, **_ignored: Any) -> Metric:
        """Customise how the metrics named ``name`` (exact, or a glob such as ``"val/*"``) are kept,
        as ``wandb.define_metric``: ``summary`` (``"min"``, ``"max"``, ``"mean"``, ``"last"``,
        ``"first"``, ``"best"`` with ``goal="minimize"|"maximize"``, ``"none"``, or several joined by
        commas) makes the run's summary hold those aggregates (``{"min": ...}``) instead of the last
        value; ``step_metric`` names the metric's x-axis, whose last value is added to every row that
        logs the metric without it (``step_sync``, on by default)."""
        if self._finished:
            raise self._finished_error("define_metric")
        if self._metrics is None:
            self._metrics = MetricDefinitions()
        return self._metrics.define(name, step_metric=step_metric, step_sync=step_sync, hidden=hidden,
                                    summary=summary, goal=goal, overwrite=overwrite)

    def watch(self, *args: Any, **kwargs: Any) -> None:
        """A no-op (gradient and parameter histograms are not recorded; log ``Histogram``\\ s yourself)."""
        noops.warn_once("watch")
        return None

    def unwatch(self, *args: Any, **kwargs: Any) -> None:
        """A no-op, as ``watch()`` is."""
        return None

    # -- files and artifacts ----------------------------------------------------------------------

    def save(self, glob_str: Any = None, base_path: Any = None, policy: str = "live", glob: bool = True) -> Any:
        """Keep files with the run, as ``wandb.save``: each file matching ``glob_str`` is copied into
        the run's files (``run.dir``) now (``policy="now"``), at the end (``"end"``), or now and
        again at the end if it changed (``"live"``). Returns the paths in ``run.dir``. Without
        arguments (an old wandb idiom) it returns True: the run is always kept up to date."""
        if glob_str is None:
            return True
        if self._finished:
            raise self._finished_error("save")
        return files.save(self, glob_str, base_path, policy, glob)

    def restore(self, name: str, run_path: Optional[str] = None, replace: bool = False,
                root: Optional[str] = None) -> Any:
        """Open a file saved with this run (or the run ``run_path``), copied into ``root`` (default
        ``run.dir``), as ``wandb.restore``."""
        return files.restore(name, run_path=run_path or self.id, replace=replace, root=root or self.dir,
                             store_dir=self._store_dir)

    def log_artifact(self, artifact_or_path: Any, name: Optional[str] = None, type: Optional[str] = None,
                     aliases: Optional[Sequence[str]] = None, tags: Optional[Sequence[str]] = None) -> Any:
        """Store an :class:`~alerts.sdk.artifacts.Artifact` (or a file or folder) as the next version
        of its name in this run's project, logged by this run (see :mod:`alerts.sdk.artifacts`)."""
        if self._finished:
            raise self._finished_error("log_artifact")
        return artifacts.log_artifact(self, artifact_or_path, name=name, type=type, aliases=aliases)

    def use_artifact(self, artifact_or_name: Any, type: Optional[str] = None, aliases: Optional[Sequence[str]] = None,
                     use_as: Optional[str] = None) -> Any:
        """The stored artifact ``"name"``, ``"name:v2"``, ``"name:alias"`` (or ``"project/name:..."``),
        recorded as used by this run."""
        if self._finished:
            raise self._finished_error("use_artifact")
        return artifacts.use_artifact(self, artifact_or_name, type=type, aliases=aliases)

    def log_model(self, path: Any, name: Optional[str] = None, aliases: Optional[Sequence[str]] = None) -> Any:
        """``log_artifact(path, name, type="model")``: a model file or folder kept as an artifact."""
        if self._finished:
            raise self._finished_error("log_model")
        return artifacts.log_artifact(self, path, name=name or f"run-{self.id}-{Path(str(path)).name}",
                                      type="model", aliases=aliases)

    def use_model(self, name: str) -> str:
        """The folder of the stored model artifact ``name`` (recorded as used by this run)."""
        return self.use_artifact(name).download()

    def link_model(self, path: Any, registered_model_name: str, name: Optional[str] = None,
                   aliases: Optional[Sequence[str]] = None) -> Any:
        """``log_model(path, name, aliases)``; there is no model registry to link it to here (a warned no-op)."""
        noops.warn_once("link_model")
        return self.log_model(path, name=name, aliases=aliases)

    def link_artifact(self, artifact: Any, target_path: str, aliases: Optional[Sequence[str]] = None) -> None:
        """A no-op: there is no registry to link artifacts into (the artifact stays stored as logged)."""
        noops.warn_once("link_artifact")
        return None

    def finish_artifact(self, artifact_or_path: Any, name: Optional[str] = None, type: Optional[str] = None,
                        aliases: Optional[Sequence[str]] = None, distributed_id: Optional[str] = None) -> Any:
        """``log_artifact``: artifacts are stored whole when logged, so there is nothing to finish."""
        return self.log_artifact(artifact_or_path, name=name, type=type, aliases=aliases)

    def upsert_artifact(self, artifact_or_path: Any, name: Optional[str] = None, type: Optional[str] = None,
                        aliases: Optional[Sequence[str]] = None, distributed_id: Optional[str] = None) -> Any:
        """``log_artifact``: each call stores a version (one with the same files is the same version)."""
        return self.log_artifact(artifact_or_path, name=name, type=type, aliases=aliases)

    def log_code(self, root: Any = ".", name: Optional[str] = None, include_fn: Any = None,
                 exclude_fn: Any = None) -> Any:
        """Store the source files under ``root`` (``*.py`` unless ``include_fn`` says otherwise) as a
        ``code`` artifact, as wandb's ``run.log_code``."""
        return artifacts.log_code(self, root, name=name, include_fn=include_fn, exclude_fn=exclude_fn)

    # -- notebook and service odds and ends ---------------------------------------------------

    def display(self, height: int = 420, hidden: bool = False) -> bool:
        """False: there is no page to show in a notebook."""
        return False

    def to_html(self, height: int = 420, hidden: bool = False) -> str:
        """A line of HTML naming the run (and linking to it, with a server)."""
        import html

        label = html.escape(f"{self.project}/{self.name} ({self.id})")
        return f'<a href="{html.escape(self.url)}">{label}</a>' if self.url else f"<span>{label}</span>"

    def status(self) -> None:
        """A no-op: wandb asks its server how far the run is synced; here everything is local."""
        noops.warn_once("Run.status")
        return None

    def pin_config_keys(self, keys: Sequence[str] = ()) -> None:
        """A no-op: it pins keys in wandb's web page, which does not exist here."""
        noops.warn_once("pin_config_keys")
        return None

    def write_logs(self, *args: Any, **kwargs: Any) -> None:
        """A no-op: wandb's console capture. The script's own output is left alone."""
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
        if self._unevaluated:
            self._evaluate_rules()  # before the run-state rules: the last rows' alerts come first
        if self._writer is not None:
            try:  # files saved with policy "live"/"end", and what the script wrote into run.dir
                files.at_finish(self)
            except Exception:
                logger.exception("alerts: run %s: could not keep its files", self.id)
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
                logger.warning("alerts: run %s: %s", self.name, self._writer.unflushed_note(self.id, timeout))
            self._report_dropped(timeout)
        if self._on_finish is not None:
            self._on_finish(self)

    def _report_dropped(self, timeout: float) -> None:
        """At finish(): if history rows of this run were dropped to bound memory (the store refused
        writes for long), say how many, and keep the count in the run's summary (``_dropped_rows``)."""
        count_of = getattr(self._writer, "dropped_rows_of", None)
        dropped = count_of(self.id) if count_of is not None else 0
        if not dropped:
            return
        logger.warning("alerts: run %s: %d history rows were dropped, the oldest first, while the store refused "
                       "writes (what is held in memory is bounded); the rest are stored", self.name, dropped)
        self._summary._data["_dropped_rows"] = dropped
        self._append((RUN_UPDATE, self.id, {"summary": self._summary._data.copy()}))
        self._writer.flush(timeout)

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None:
            self.finish()
        else:
            state, code = end_state(self._preempting, exc, None)
            self.finish(exit_code=code, state=state, error=exc)
        return False


class _StaticConfig:
    """``run.config_static``: the config's values as attributes and items, read-only."""

    def __init__(self, values: Mapping) -> None:
        object.__setattr__(self, "_values", values)

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(key) from None

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("run.config_static is read-only")

    __setitem__ = __setattr__

    def keys(self):
        return self._values.keys()

    def __repr__(self) -> str:
        return f"config_static({dict(self._values)!r})"
