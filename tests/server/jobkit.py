"""What the jobs tests share: channel files on the fake Slack, runs and alerts committed the way a
logging process commits them, and a bounded wait."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from alerts.channels.base import Notification
from alerts.pipeline.route import delivery_rows
from alerts.store.db import Batch, Store
from alerts.store.models import alert_row

WAIT = 120.0  # a bound for giving up on a loaded 2-core machine, never a timing assertion


def slack_channels(folder: Path, slack, users=("alice",)) -> Path:
    """One channel file per user, each a webhook of its own on the fake Slack (named after the user)."""
    folder.mkdir(parents=True, exist_ok=True)
    for user in users:
        (folder / f"{user}.yaml").write_text(
            f"user: {user}\nchannels:\n  - type: slack\n    webhook_url: {slack.webhook_url(user + '-hook')}\n",
            encoding="utf-8")
    return folder


def crashed_rule(folder: Path) -> Path:
    """A rule folder whose one rule fires when a run crashes."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "crashed.yaml").write_text(
        "rules:\n  - {name: crashed, kind: run_state, states: [crashed], level: ERROR,"
        " title: '{run.name} crashed'}\n", encoding="utf-8")
    return folder


def add_run(store: Store, now: float, *, owner: str = "alice", heartbeat_at: float | None = None,
            host: str = "gpu-node-7", pid: int | None = 4242, name: str | None = None, project: str = "p") -> str:
    """A running run's row, as ``init()`` writes it (its heartbeat ``heartbeat_at``, default ``now``)."""
    run_id = uuid.uuid4().hex[:8]
    store.create_run({"id": run_id, "owner": owner, "project": project, "name": name or f"run-{run_id}",
                      "state": "running", "created_at": now, "updated_at": now,
                      "heartbeat_at": now if heartbeat_at is None else heartbeat_at, "host": host, "pid": pid})
    return run_id


def add_alert(store: Store, channels, run_id: str, title: str, now: float, *, owner: str = "alice",
              project: str = "p", run_name: str = "r") -> int:
    """Commit an explicit alert and its outbox rows in one transaction, as ``alert()`` does; returns
    how many outbox rows."""
    note = Notification(title=title, text="the job died at 3 a.m.", level="ERROR", run_id=run_id, run_name=run_name,
                        project=project, owner=owner, created_at=now)
    uid, rows = delivery_rows(note, channels, [owner], now)
    store.write_batch(Batch(alerts=[alert_row(uid=uid, run_id=run_id, created_at=now, title=title, text=note.text,
                                              level="ERROR", outcome="notified")],
                            deliveries=rows))
    return len(rows)


def carried(messages: list[dict]) -> int:
    """How many alerts Slack messages carried ("title (+N more)" carries N + 1)."""
    return sum(int(m["text"].split("(+")[1].split(" ")[0]) + 1 if "(+" in m["text"] else 1 for m in messages)


def wait_until(predicate, what: str, timeout: float = WAIT, every: float = 0.2):
    """Poll ``predicate`` until true, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: {what}")
        time.sleep(every)
