"""The remote runs this server is evaluating rules for: one :class:`~alerts.rules.engine.RunRules` each,
in memory, as an embedded process keeps one per run it logs.

A run's engine is made when the run is created or resumed through the API, or, after a restart of the
server, at its first batch or heartbeat: rebuilt from the store, with the series that were firing when
the last one stopped continued (``restore_firing``), so a restart neither re-sends nor forgets them.
When the active rule set is reloaded, each engine is rebuilt at its next use, keeping the series of the
rules that did not change (``RunRules(previous=...)``).

A run this server has not heard from (batch or heartbeat) for :data:`FORGET_AFTER` is dropped from
memory: it is the crash check's business then, not the stalled rules' (a run that heartbeats but logs
nothing is what a stalled rule is about). :meth:`LiveRuns.stalled_transitions` evaluates the stalled
rules of the others at each tick; :meth:`alerts.server.ingest.Ingest.check_stalled` records what every
replica agrees on once (see there).

Batches of one run are applied one at a time (:attr:`LiveRun.lock`): the engine is not made for two
threads feeding it rows at once, and a run's batches are ordered by their seq anyway. With replicas, a
run's batches may reach several servers: an engine that finds steps in the store it never saw is
rebuilt from the store before it goes on (:meth:`LiveRuns.catch_up`): firing series continue, and the
windows (means, ``for`` counts) start again from the batch in hand.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Optional

from alerts.pipeline.raising import rule_alert_rows
from alerts.rules.active import ActiveRules
from alerts.rules.engine import RunRules, Transition
from alerts.rules.schema import RunInfo
from alerts.sdk.crashes import CRASH_AFTER
from alerts.store import jsoncodec
from alerts.store.db import Store
from alerts.store.models import RunRecord

logger = logging.getLogger("alerts.server")

# A run not heard from for this long (no batch, no heartbeat: its heartbeats come every 10 s) is
# forgotten here; the crash check marks it crashed at the same age.
FORGET_AFTER = CRASH_AFTER


def run_info(record: RunRecord) -> RunInfo:
    """What rules match a run on and templates show of it."""
    return RunInfo(id=record.id, name=record.name, project=record.project, owner=record.owner,
                   group=record.group, job_type=record.job_type, tags=tuple(jsoncodec.loads(record.tags) or ()))


@dataclass
class LiveRun:
    """One remote run's engine and what the server knows of its liveness."""

    run_id: str
    info: RunInfo
    rules: Optional[RunRules]
    generation: int
    last_contact: float  # server time of its last batch, heartbeat, create or resume
    lock: threading.Lock = field(default_factory=threading.Lock)


class LiveRuns:
    """The engines of the remote runs this server process is evaluating rules for."""

    def __init__(self, store: Store, active: ActiveRules) -> None:
        self.store = store
        self.active = active
        self._runs: dict[str, LiveRun] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._runs)

    @property
    def templates(self) -> Any:
        """What renders the rule alerts' titles and texts: the active rule set."""
        return self.active.ruleset

    def start(self, record: RunRecord, now: float, resumed: bool) -> LiveRun:
        """A run was created or resumed through the API: a fresh engine (a resumed run continues the
        series that were firing)."""
        live = self._build(record, now, restore=resumed)
        with self._lock:
            old = self._runs.get(record.id)
            if old is not None:
                live.lock = old.lock  # a batch of the run's earlier life may still hold it
            self._runs[record.id] = live
        return live

    def get(self, record: RunRecord, now: float) -> LiveRun:
        """The run's engine, rebuilt from the store if this process has none (a restart), and
        brought up to date with the active rules; marks the run as heard from at ``now``."""
        with self._lock:
            live = self._runs.get(record.id)
        if live is None:
            built = self._build(record, now, restore=True)
            with self._lock:
                live = self._runs.setdefault(record.id, built)
        if live.generation != self.active.generation:
            with live.lock:
                if live.generation != self.active.generation:
                    live.generation = self.active.generation
                    live.rules = self._rules_for(live.info, now, previous=live.rules)
        live.last_contact = max(live.last_contact, now)
        return live

    def touch(self, run_id: str, now: float) -> bool:
        """Mark a run whose engine this process holds, up to date with the active rules, as heard from
        at ``now``; False (nothing done) otherwise: then :meth:`get` with its record does the rest."""
        live = self._runs.get(run_id)  # a dict read is atomic; the lock guards changes of the dict
        if live is None or live.generation != self.active.generation:
            return False
        live.last_contact = max(live.last_contact, now)
        return True

    def catch_up(self, live: LiveRun, stored_last_step: int, now: float) -> None:
        """Before the engine sees a batch: if the store holds steps it never saw (another replica
        stored them, a load balancer spreading one run's batches), rebuild it from the store, so
        that what the other replica fired is continued here rather than fired again. Called with the
        run's row locked, so the alerts of the batches stored before are committed."""
        rules = live.rules
        if rules is None or stored_last_step <= (rules.last_step if rules.last_step is not None else -1):
            return
        fresh = self._rules_for(live.info, now)
        if fresh is not None:
            fresh.last_step = stored_last_step
            fresh.restore_firing(self.store.firing_rule_alerts(live.run_id))
        live.rules = fresh

    def identity_changed(self, live: LiveRun, changed: dict, now: float) -> None:
        """The script renamed the run or changed its tags (``changed``: the new ``name``/``tags``):
        its rules see them from now on (a rule selecting on tags may now apply, or no longer); the
        series of the rules that still apply go on. Called with the run's lock held."""
        info = live.info
        live.info = RunInfo(id=info.id, name=changed.get("name", info.name), project=info.project, owner=info.owner,
                            group=info.group, job_type=info.job_type,
                            tags=tuple(changed["tags"]) if "tags" in changed else info.tags)
        live.rules = self._rules_for(live.info, now, previous=live.rules)

    def ended(self, record: RunRecord) -> LiveRun:
        """A stand-in for a run that has ended: no rules, kept nowhere (a late batch is stored, not judged)."""
        return LiveRun(record.id, run_info(record), None, self.active.generation, record.updated_at)

    def forget(self, run_id: str) -> None:
        """The run ended (or its engine's state is in doubt after a failed write): drop its engine."""
        with self._lock:
            self._runs.pop(run_id, None)

    def _build(self, record: RunRecord, now: float, restore: bool) -> LiveRun:
        info = run_info(record)
        # The last data the server knows of: the run's last update (server time) or now, for a new run.
        rules = self._rules_for(info, record.updated_at if restore else now)
        if rules is not None and restore:
            rules.last_step = record.last_step if record.last_step >= 0 else None
            rules.restore_firing(self.store.firing_rule_alerts(record.id))
        return LiveRun(record.id, info, rules, self.active.generation, now)

    def _rules_for(self, info: RunInfo, start: float, previous: Optional[RunRules] = None) -> Optional[RunRules]:
        ruleset = self.active.ruleset
        if not len(ruleset):
            return None
        rules = RunRules(ruleset.plain_rules, info, start=start, previous=previous)
        return rules if rules.metric_rules or rules.stalled_rules or rules.state_rules else None

    # -- the tick hook ----------------------------------------------------------------------------

    def stalled_transitions(self, now: float) -> list[tuple[LiveRun, list[Transition]]]:
        """Evaluate the stalled rules of every run heard from lately: the runs with transitions, and
        theirs (to be checked against the store before they are recorded: another replica may have
        recorded them, or stored data this one never saw). Runs silent for :data:`FORGET_AFTER` are
        forgotten."""
        with self._lock:
            runs = list(self._runs.values())
            for live in runs:
                if now - live.last_contact >= FORGET_AFTER:
                    self._runs.pop(live.run_id, None)
        found: list[tuple[LiveRun, list[Transition]]] = []
        for live in runs:
            if now - live.last_contact >= FORGET_AFTER or live.rules is None:
                continue
            transitions = live.rules.check_stalled(now)
            if transitions:
                found.append((live, transitions))
        return found

    def alert_rows(self, transitions: list[Transition], channels: Any) -> list[tuple[dict, list]]:
        """``(alert row, outbox rows)`` for rule transitions; a transition whose template fails is
        logged and skipped (one bad rule must not cost the batch)."""
        out = []
        for transition in transitions:
            try:
                row, deliveries = rule_alert_rows(transition, self.templates, None, channels)
            except Exception:
                logger.exception("alerts: could not raise the alert of rule %r", transition.rule.name)
                continue
            jsoncodec.clean_columns(row)
            for delivery in deliveries:
                jsoncodec.clean_columns(delivery)
            out.append((row, deliveries))
        return out
