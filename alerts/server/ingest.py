"""Remote runs on the server: create or resume, batches stored once by their seq, heartbeats, finish.

A remote run's script sends what it logs in batches, each with a sequence number of its run (1, 2, 3,
...; gaps allowed). A batch is applied in one transaction that first moves the run's ``last_seq``
forward with a conditional update (``... WHERE last_seq < :seq``): a batch whose seq is not past it is a
replay (a retry after a timeout, a spool replayed after an outage) and stores nothing. The update takes
the run row's lock first (PostgreSQL) or the database's write lock (SQLite, ``BEGIN IMMEDIATE``), so two
posts of one seq at once, to one server or to two replicas, store it exactly once.

In that same transaction: the history rows (one chunk), the summary (last value of each key, then the
keys the script set), the config, the run's name, tags and notes when the script changed them, the
alerts (rule transitions found by the run's engine in :mod:`alerts.server.live`, and the script's
``alert()`` calls) and their outbox rows; the relay is woken after the commit. Rules are evaluated at the server's time of receipt: outbox rows must never be due on
a client's clock, and the stalled rules compare with the server's clock.

A run the server marked ``crashed`` (its heartbeats stopped, e.g. while its network was down) that sends
a batch or a heartbeat is alive after all: it is ``running`` again.
"""

from __future__ import annotations

import logging
import socket
from typing import Any, Callable, Optional

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection
from starlette.concurrency import run_in_threadpool

from alerts.channels.base import Notification
from alerts.errors import InvalidArgument, RunInUseError, UsageError
from alerts.pipeline.raising import deliveries_for
from alerts.rules.templates import clip, clip_text, clip_title
from alerts.sdk import claims
from alerts.sdk.names import check_project, check_run_id, check_tags, check_text, new_run_id, new_run_name
from alerts.server.encoding import NON_FINITE
# LIVE_STATES: states in which a run takes batches as a live run (rules evaluated, heartbeat kept);
# ALIVE_AGAIN: columns that go back to empty when a run is running again (resumed, or alive after a
# crash verdict).
from alerts.server.heartbeats import ALIVE_AGAIN, LIVE_STATES, HeartbeatWriter
from alerts.server.live import LiveRun, LiveRuns
from alerts.server.runmodels import AlertIn, BatchIn, FinishIn, RunIn
from alerts.store import jsoncodec
from alerts.store.db import Store
from alerts.store.models import AlertRecord, DeliveryRecord, HistoryChunk, RunRecord, alert_row

logger = logging.getLogger("alerts.server")

# The longest error text a finish keeps (the SDK sends the last 30 lines of a traceback).
MAX_ERROR_TEXT = 65_536
# The longest suppression reason kept from a client.
MAX_REASON = 500
# Fresh random ids tried before giving up (a collision of 8 random characters is already rare).
NEW_ID_ATTEMPTS = 5


# The ``X-Alerts-Reason`` of a 409 whose run another live process is writing: the SDK raises
# RunInUseError for it, as the embedded store does (the detail is for people, this for programs).
REASON_HEADER = "X-Alerts-Reason"
RUN_IN_USE = "run-in-use"


class IngestError(Exception):
    """A request that cannot be done: ``status`` and ``detail`` are the HTTP answer, ``reason`` (if any)
    its :data:`REASON_HEADER`."""

    def __init__(self, status: int, detail: Any, reason: Optional[str] = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.reason = reason


def _invalid(field: str, exc: Exception) -> IngestError:
    return IngestError(422, [{"loc": ["body", field], "msg": str(exc), "type": "value_error"}])


def _values(values: dict) -> dict:
    """Logged values as stored: the strings "NaN", "Infinity", "-Infinity" become floats."""
    return {key: NON_FINITE.get(value, value) if type(value) is str else value for key, value in values.items()}


class Ingest:
    """The runs API's writes, over one store; ``wake`` is called after outbox rows are committed."""

    def __init__(self, store: Store, live: LiveRuns, wake: Callable[[], None]) -> None:
        self.store = store
        self.live = live
        self.wake = wake
        self.host = socket.gethostname()
        self.beats = HeartbeatWriter(store)

    # -- create / resume ------------------------------------------------------------------------

    def create(self, owner: str, body: RunIn, now: float) -> tuple[RunRecord, bool]:
        """Create run ``body.id`` (or a fresh id) for ``owner``, or resume it; ``(run, created)``.

        An id owned by someone else is a 409 that says nothing more; an existing id without ``resume``
        a 409; ``resume="must"`` without the run a 404; a run another process is writing (running, a
        heartbeat under two minutes old) a 409 naming it. The same process asking again (same host and
        pid: a retry after a lost answer) gets its run back.
        """
        row = self._new_row(owner, body, now)
        if body.id is None:
            for _ in range(NEW_ID_ATTEMPTS):
                if self.store.create_run(row):
                    return self._started(row["id"], now, resumed=False), True
                row["id"] = new_run_id()
            raise IngestError(503, "could not find a free run id; try again")
        existing = self.store.get_run(body.id)
        if existing is None:
            if body.resume == "must":
                raise IngestError(404, f"resume='must' but there is no run {body.id!r}")
            if self.store.create_run(row):
                return self._started(body.id, now, resumed=False), True
            existing = self.store.get_run(body.id)  # created by someone else meanwhile
            if existing is None:
                raise IngestError(409, f"run {body.id!r} changed while it was created; try again")
        return self._resume(owner, existing, body, now), False

    def _new_row(self, owner: str, body: RunIn, now: float) -> dict:
        try:
            run_id = check_run_id(body.id) if body.id is not None else new_run_id()
        except (InvalidArgument, TypeError) as exc:
            raise _invalid("id", exc) from None
        checked = {}
        for field, check in (("project", check_project), ("name", None), ("group", None), ("job_type", None),
                             ("notes", None), ("tags", check_tags)):
            value = getattr(body, field)
            try:
                checked[field] = check(value) if check is not None else check_text(value, field)
            except (InvalidArgument, TypeError) as exc:
                raise _invalid(field, exc) from None
        name = checked["name"] or new_run_name(self.store.count_runs(checked["project"]) + 1)
        return {
            "id": run_id, "owner": owner, "project": checked["project"], "name": name, "group": checked["group"],
            "job_type": checked["job_type"], "tags": jsoncodec.dumps(checked["tags"]), "notes": checked["notes"],
            "config": jsoncodec.dumps(body.config), "summary": "{}", "state": "running", "created_at": now,
            "updated_at": now, "heartbeat_at": now, "last_step": -1, "last_seq": 0,
            "host": jsoncodec.clean_text(body.host) if body.host is not None else None, "pid": body.pid,
        }

    def _resume(self, owner: str, existing: RunRecord, body: RunIn, now: float) -> RunRecord:
        if existing.owner != owner:
            raise IngestError(409, "run id taken")
        same_writer = (existing.state == "running" and body.host is not None and body.pid is not None
                       and existing.host == body.host and existing.pid == body.pid)
        if same_writer:  # its engine, if this server has one, goes on as it was
            self.live.get(existing, now)
            return existing
        if body.resume in (None, False, "never"):
            raise IngestError(409, f"run {existing.id!r} already exists; pass resume='allow' to continue it")

        def fields_for(record: RunRecord) -> dict:
            merged = {**(jsoncodec.loads(record.config) or {}), **body.config}
            return {**ALIVE_AGAIN, "config": jsoncodec.dumps(merged), "updated_at": now, "heartbeat_at": now,
                    "host": jsoncodec.clean_text(body.host) if body.host is not None else None, "pid": body.pid}

        try:
            claims.claim(self.store, existing.id, fields_for, now, self.host)
        except RunInUseError as exc:  # another live process writes it
            raise IngestError(409, str(exc), RUN_IN_USE) from None
        except UsageError as exc:  # it vanished meanwhile
            raise IngestError(409, str(exc)) from None
        return self._started(existing.id, now, resumed=True)

    def _started(self, run_id: str, now: float, resumed: bool) -> RunRecord:
        record = self.store.get_run(run_id)
        self.live.start(record, now, resumed=resumed)
        return record

    # -- batches ----------------------------------------------------------------------------------

    def accept_batch(self, record: RunRecord, body: BatchIn, now: float, channels: Any) -> tuple[dict, int]:
        """Store a batch once (see the module's docstring); the answer (``{seq, stored, last_seq,
        dropped_rows}``) and how many alerts it recorded (rule transitions and ``alert()`` calls)."""
        if record.state in LIVE_STATES:
            live = self.live.get(record, now)
        else:  # a late batch of an ended run: stored, but no rules, and no engine kept for it
            self.live.forget(record.id)
            live = self.live.ended(record)
        with live.lock:
            try:
                answer, routed, alive, recorded = self._apply(live, body, now, channels)
            except Exception:
                # The engine may have seen rows that were not stored: rebuild it from the store next time.
                self.live.forget(record.id)
                raise
            if not alive:  # ended meanwhile (finished through another replica)
                self.live.forget(record.id)
        if routed:
            self.wake()
        return answer, recorded

    def _apply(self, live: LiveRun, body: BatchIn, now: float, channels: Any) -> tuple[dict, bool, bool, int]:
        """``(answer, whether outbox rows were committed, whether the run is live, alerts recorded)``."""
        run_id = live.run_id
        with self.store.write_transaction() as conn:
            moved = conn.execute(update(RunRecord).where(RunRecord.id == run_id, RunRecord.last_seq < body.seq)
                                 .values(last_seq=body.seq)).rowcount
            if not moved:  # a replay: nothing stored
                last_seq = conn.execute(select(RunRecord.last_seq).where(RunRecord.id == run_id)).scalar()
                return {"seq": body.seq, "stored": False, "last_seq": last_seq or 0, "dropped_rows": 0}, False, True, 0
            state, summary_text, last_step, created_at, name, tags_text = conn.execute(
                select(RunRecord.state, RunRecord.summary, RunRecord.last_step, RunRecord.created_at, RunRecord.name,
                       RunRecord.tags)
                .where(RunRecord.id == run_id)).one()
            rows = [row for row in body.rows if row.step > last_step]  # steps increase: a lower one is dropped
            alive = state in LIVE_STATES
            if alive:
                tags = tuple(jsoncodec.loads(tags_text) or ())
                if (name, tags) != (live.info.name, live.info.tags):  # renamed through another replica
                    self.live.identity_changed(live, {"name": name, "tags": list(tags)}, now)
            if alive and rows:
                self.live.catch_up(live, last_step, now)
            summary = jsoncodec.loads(summary_text) if rows or body.summary else None
            history, transitions = self._history(live, rows, created_at, summary, now, alive)
            if body.summary:
                summary.update(_values(body.summary))
            alerts = self.live.alert_rows(transitions, channels) if transitions else []
            alerts += [self._explicit_alert(live, alert, now, channels) for alert in body.alerts]
            fields: dict = {"updated_at": now}
            if alive:
                fields.update(ALIVE_AGAIN, heartbeat_at=now)
            if rows:
                fields["last_step"] = rows[-1].step
                conn.execute(insert(HistoryChunk), [{
                    "run_id": run_id, "first_step": rows[0].step, "last_step": rows[-1].step, "n_rows": len(rows),
                    "last_time": rows[-1].time, "data": jsoncodec.pack_rows(history)}])
            if summary is not None:
                fields["summary"] = jsoncodec.dumps(summary)
            if body.config is not None:
                fields["config"] = jsoncodec.dumps(body.config)
            changed = body.run.changes() if body.run is not None else {}
            if changed:  # run.name / run.tags / run.notes set by the script after init()
                fields.update(changed)
                if "tags" in changed:
                    fields["tags"] = jsoncodec.dumps(changed["tags"])
            conn.execute(update(RunRecord).where(RunRecord.id == run_id).values(**fields))
            routed = _insert_alerts(conn, alerts)
        if alive and ("name" in changed or "tags" in changed):
            # The rules see the new name and tags from the next batch on, as in the embedded mode.
            self.live.identity_changed(live, changed, now)
        answer = {"seq": body.seq, "stored": True, "last_seq": body.seq, "dropped_rows": len(body.rows) - len(rows)}
        return answer, routed, alive, len(alerts)

    def _history(self, live: LiveRun, rows: list, created_at: float, summary: Optional[dict], now: float,
                 alive: bool) -> tuple[list[dict], list]:
        """The rows as stored (``_step``, ``_runtime``, ``_timestamp`` added), evaluated by the run's
        rules when it is live; the summary takes each row's values."""
        rules = live.rules if alive else None
        history: list[dict] = []
        transitions: list = []
        for row in rows:
            values = _values(row.values)
            if rules is not None:
                try:  # rules see the row before the _step/_runtime/_timestamp keys, as in the SDK
                    found = rules.observe_row(values, row.step, now)
                except Exception:  # a rule must never cost the row
                    logger.exception("alerts: evaluating rules on step %s of run %s failed", row.step, live.run_id)
                    found = None
                if found:
                    transitions += found
            values["_step"] = row.step
            values["_runtime"] = row.time - created_at
            values.setdefault("_timestamp", row.time)  # a _timestamp the script logged wins, as in wandb
            if summary is not None:
                summary.update(values)
            history.append(values)
        return history, transitions

    def _explicit_alert(self, live: LiveRun, alert: AlertIn, now: float, channels: Any) -> tuple[dict, list]:
        """An ``alert()`` call's record, and its outbox rows unless the client suppressed it."""
        run = live.info
        title, text, level = clip_title(alert.title), clip_text(alert.text), alert.level.value
        uid, deliveries, reason = None, [], None
        if alert.suppressed is not None:
            outcome, reason = "suppressed", clip(alert.suppressed, MAX_REASON)
        else:
            outcome = "notified"
            # Routed at the server's time: the outbox's schedule must not follow a client's clock.
            notification = Notification(title=title, text=text, level=level, run_id=run.id, run_name=run.name,
                                        project=run.project, owner=run.owner, created_at=now, step=alert.step,
                                        run_group=run.group)
            uid, deliveries = deliveries_for(channels, notification, None)
        row = alert_row(uid=uid, run_id=run.id, created_at=min(alert.created_at, now), source="alert", title=title,
                        text=text, level=level, outcome=outcome, reason=reason, wait_duration=alert.wait_duration,
                        step=alert.step)
        jsoncodec.clean_columns(row)
        for delivery in deliveries:
            jsoncodec.clean_columns(delivery)
        return row, deliveries

    # -- heartbeat, finish ------------------------------------------------------------------------

    async def heartbeat(self, run_id: str, owner: Optional[str], now: float) -> bool:
        """The run is alive: its heartbeat is now (a ``crashed`` verdict is taken back). ``owner``: the
        caller, who must own the run (None: an admin, who may beat any). False if there is no such run
        for the caller (a 404); a run that has ended is left as it is (True).

        Awaited on the event loop: one UPDATE with the owner in its condition, committed together with
        the other heartbeats of the moment (:class:`~alerts.server.heartbeats.HeartbeatWriter`), and no
        read while the run is live and this process holds its engine (every heartbeat but the first
        after a restart). The run is read, on a worker thread, only when the UPDATE changed nothing (to
        tell a 404 from an ended run) or its engine is to be rebuilt.
        """
        beaten = await self.beats.beat(run_id, owner, now)
        if beaten and self.live.touch(run_id, now):
            return True
        return await run_in_threadpool(self._heartbeat_read, run_id, owner, now, bool(beaten))

    def _heartbeat_read(self, run_id: str, owner: Optional[str], now: float, beaten: bool) -> bool:
        record = self.store.get_run(run_id)
        if record is None or (owner is not None and record.owner != owner):
            return False
        if beaten and record.state in LIVE_STATES:
            # Heard from: after a restart of the server, this is where the engine of a run that only
            # heartbeats (stalled: alive, logging nothing) is rebuilt, so its stalled rule still fires.
            self.live.get(record, now)
        return True

    def finish(self, record: RunRecord, body: FinishIn, now: float, channels: Any) -> RunRecord:
        """End the run in ``body.state`` and fire its run_state rules; a run already ended (other than
        ``crashed``) is returned unchanged."""
        if record.state not in LIVE_STATES:
            return record
        live = self.live.get(record, now)
        routed = False
        with live.lock:
            error_text = clip(jsoncodec.clean_text(body.error_text), MAX_ERROR_TEXT) if body.error_text else None
            error_type = jsoncodec.clean_text(body.error_type) if body.error_type is not None else None
            transitions = live.rules.on_end(body.state, now, error_type, body.exit_code) if live.rules else []
            alerts = self.live.alert_rows(transitions, channels) if transitions else []
            with self.store.write_transaction() as conn:
                state, summary_text = conn.execute(select(RunRecord.state, RunRecord.summary)
                                                   .where(RunRecord.id == record.id)).one()
                if state in LIVE_STATES:  # else finished meanwhile by another request: unchanged
                    fields = {"state": body.state, "finished_at": now, "updated_at": now, "heartbeat_at": now,
                              "exit_code": body.exit_code, "error_type": error_type, "error_text": error_text}
                    if body.summary:
                        summary = jsoncodec.loads(summary_text)
                        summary.update(_values(body.summary))
                        fields["summary"] = jsoncodec.dumps(summary)
                    conn.execute(update(RunRecord).where(RunRecord.id == record.id).values(**fields))
                    routed = _insert_alerts(conn, alerts)
            self.live.forget(record.id)
        if routed:
            self.wake()
        return self.store.get_run(record.id)

    # -- the tick hook ----------------------------------------------------------------------------

    def check_stalled(self, now: float, channels: Any) -> int:
        """Evaluate the stalled rules of the live remote runs; record and route what fires, once
        across replicas. How many alerts were recorded.

        Every replica evaluates the runs it has heard from, so two replicas that both get a run's
        heartbeats both find it stalled. Each verdict is checked in a transaction that first takes the
        run's row (a no-op conditional UPDATE: the row lock on PostgreSQL, the write lock on SQLite),
        so the replicas take turns, and the second sees what the first committed: a stalled series
        whose last alert says firing (within the rule's ``repeat_interval``) is not recorded again,
        and a run that stored rows through another replica since this engine last saw some is not
        stalled unless those are old too.
        """
        recorded = 0
        routed = False
        for live, transitions in self.live.stalled_transitions(now):
            with live.lock:  # as a batch of the run: one thing at a time touches its engine
                try:
                    count, sent = self._record_stalled(live, transitions, now, channels)
                except Exception:
                    logger.exception("alerts: could not record the stalled alerts of run %s", live.run_id)
                    self.live.forget(live.run_id)  # its engine's state is in doubt: rebuilt when heard from
                    continue
            recorded += count
            routed = routed or sent
        if routed:
            self.wake()
        return recorded

    def _record_stalled(self, live: LiveRun, transitions: list, now: float, channels: Any) -> tuple[int, bool]:
        """Record the transitions no other replica recorded (see :meth:`check_stalled`); ``(alerts
        recorded, whether outbox rows were)``."""
        with self.store.write_transaction() as conn:
            held = conn.execute(update(RunRecord)
                                .where(RunRecord.id == live.run_id, RunRecord.state.in_(LIVE_STATES))
                                .values(last_seq=RunRecord.last_seq)).rowcount
            if not held:  # ended meanwhile (through another replica): nothing is stalled
                self.live.forget(live.run_id)
                return 0, False
            updated_at, last_step = conn.execute(select(RunRecord.updated_at, RunRecord.last_step)
                                                 .where(RunRecord.id == live.run_id)).one()
            rules = live.rules
            if rules is None:  # its rules went with a reload meanwhile: nothing to record
                return 0, False
            seen = rules.last_step if rules.last_step is not None else -1
            logged_elsewhere = last_step > seen  # rows this engine never saw: stored through another replica
            kept = []
            for transition in transitions:
                rule = transition.rule
                if transition.status != "firing":
                    kept.append(transition)
                elif logged_elsewhere and now - updated_at < rule.after:
                    rules.stalled_overruled(rule.name, None, updated_at)
                else:
                    notified_at = _firing_since(conn, live.run_id, rule.name)
                    repeat = rule.repeat_interval
                    if notified_at is not None and (repeat is None or now - notified_at < repeat):
                        rules.stalled_overruled(rule.name, notified_at, rules.last_data_at)
                    else:
                        kept.append(transition)
            alerts = self.live.alert_rows(kept, channels) if kept else []
            routed = _insert_alerts(conn, alerts)
        return len(alerts), routed


def _firing_since(conn: Connection, run_id: str, rule: str) -> Optional[float]:
    """When the stalled series ``rule`` of a run last notified, if its last alert says firing; else None."""
    last = conn.execute(select(AlertRecord.status, AlertRecord.created_at)
                        .where(AlertRecord.run_id == run_id, AlertRecord.source == "rule", AlertRecord.rule == rule,
                               AlertRecord.metric.is_(None))
                        .order_by(AlertRecord.id.desc()).limit(1)).first()
    return last[1] if last is not None and last[0] == "firing" else None


def _insert_alerts(conn: Connection, alerts: list[tuple[dict, list]]) -> bool:
    """Insert alert rows and their outbox rows; True if there were outbox rows (the relay is to be woken)."""
    if not alerts:
        return False
    conn.execute(insert(AlertRecord), [row for row, _ in alerts])
    deliveries = [delivery for _, rows in alerts for delivery in rows]
    if deliveries:
        conn.execute(insert(DeliveryRecord), deliveries)
    return bool(deliveries)
