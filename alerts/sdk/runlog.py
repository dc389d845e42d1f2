"""One remote run's requests that the server has not acknowledged yet, in the order they must arrive.

Items are kept in memory while the server takes them, and written to the run's spool folder
(:mod:`alerts.sdk.spool`) when it does not; :meth:`RunLog.send` sends the oldest first (the spool's
before anything newer) and stops at the first failure worth retrying. A batch's seq is
``index + offset``, fixed once the run's create has been answered (see the spool's docstring).
"""

from __future__ import annotations

import json
import logging
from collections import deque
from pathlib import Path
from typing import Any, Optional

from alerts.sdk.ingest import REJECT, IngestClient, IngestError
from alerts.sdk.spool import BATCH, CREATE, FINISH, Item, RunSpool

logger = logging.getLogger("alerts")


def with_seq(body: bytes, seq: int) -> bytes:
    """A batch body (a JSON object) with ``"seq"`` as its first member."""
    if body == b"{}":
        return b'{"seq":%d}' % seq
    return b'{"seq":%d,' % seq + body[1:]


class RunLog:
    """The unacknowledged items of one run. Touched by one thread at a time: ``init()`` until it hands
    the log to the writer, then the writer's thread."""

    def __init__(self, run_id: str, spool_root: Path, meta: dict, spool: Optional[RunSpool] = None) -> None:
        self.run_id = run_id
        self.spool_root = spool_root
        self.meta = meta  # what the spool's run.json says: server, key fingerprint
        self.spool = spool
        self.items: deque[Item] = deque()
        self.offset: Optional[int] = None
        self.next_index = 1
        self.run: Any = None  # the live Run, while it logs (None for a leftover spool being replayed)
        self.finished = False  # its finish item has been formed
        self.last_contact = 0.0  # writer clock: the last request the server accepted for this run
        self.warned_keys = False
        self.server_dropped = 0  # rows the server did not store: at or below a step it already had
        self.server_dropped_told = 0
        if spool is not None:
            self.items.extend(spool.items())
            self.offset = spool.offset
            if self.items:
                self.next_index = self.items[-1].index + 1
            self.finished = bool(self.items) and self.items[-1].kind == FINISH

    @classmethod
    def claim(cls, spool_root: Path, run_id: str) -> Optional["RunLog"]:
        """The leftover spool of ``run_id``, locked by this process; None if there is none or another
        process holds it."""
        spool = RunSpool.claim(spool_root, run_id)
        if spool is None:
            return None
        return cls(run_id, spool_root, spool.meta, spool)

    # -- forming ---------------------------------------------------------------------------------

    def add(self, kind: str, body: bytes, rows: int = 0, alerts: int = 0) -> Item:
        item = Item(self.next_index, kind, body, rows=rows, alerts=alerts)
        self.next_index += 1
        self.items.append(item)
        if kind in (FINISH, CREATE):
            self.finished = kind == FINISH  # a create after an end: the run was resumed
        return item

    # -- state -----------------------------------------------------------------------------------

    @property
    def folder(self) -> Path:
        return self.spool_root / self.run_id

    def counts(self) -> tuple[int, int, int, bool]:
        """``(batches, history rows, alerts, finish pending)`` not acknowledged yet."""
        items = list(self.items)
        return (sum(1 for i in items if i.kind == BATCH), sum(i.rows for i in items),
                sum(i.alerts for i in items), any(i.kind == FINISH for i in items))

    def durable_through(self, index: int) -> bool:
        """Whether every item up to ``index`` is acknowledged or on disk."""
        for item in self.items:
            if item.index > index:
                return True
            if not item.on_disk:
                return False
        return True

    def acked_through(self, index: int) -> bool:
        return not self.items or self.items[0].index > index

    # -- the spool -------------------------------------------------------------------------------

    def spool_memory(self, budget: int) -> int:
        """Write the items only held in memory to the spool; returns the history rows dropped (the
        oldest) to keep the folder within ``budget`` bytes."""
        pending = [item for item in self.items if not item.on_disk]
        if not pending:
            return 0
        if self.spool is None:
            try:
                self.spool = RunSpool.create(self.spool_root, self.run_id, {**self.meta, "offset": self.offset})
            except FileExistsError:  # left by an earlier process and not claimed: take it over
                self.spool = RunSpool.claim(self.spool_root, self.run_id)
                if self.spool is None:
                    raise
                if self.offset is not None:
                    self.spool.set_offset(self.offset)
        dropped = 0
        for item in pending:
            dropped += self._make_room(len(item.body), budget)
            self.spool.write(item)
            item.body = None  # on disk now: memory stays flat however long the outage
        return dropped

    def _make_room(self, incoming: int, budget: int) -> int:
        """Drop the history rows of the oldest batches on disk until ``incoming`` more bytes fit.
        A batch's alerts, config, summary and run fields are kept (rewritten without its rows)."""
        dropped = 0
        for position, item in enumerate(list(self.items)):
            if self.spool.size + incoming <= budget:
                break
            if not item.on_disk or item.kind != BATCH or not item.rows:
                continue
            body = json.loads(self.spool.read(item))
            body.pop("rows", None)
            lighter = Item(item.index, BATCH, json.dumps(body, separators=(",", ":")).encode(), rows=0,
                           alerts=item.alerts)
            self.spool.replace(item, lighter)
            lighter.body = None
            self.items[position] = lighter
            dropped += item.rows
        return dropped

    def release(self) -> None:
        """Let go of the spool folder: removed when nothing is left in it."""
        if self.spool is not None:
            self.spool.release(remove=not self.items)
            self.spool = None

    # -- sending ---------------------------------------------------------------------------------

    def send(self, client: IngestClient, on_rejected) -> bool:
        """Send the items in order until done (True) or a failure worth retrying (IngestError raised).
        A refused item (4xx) is dropped and passed to ``on_rejected(log, item, error)``; a refused
        create drops the whole run. Returns True when something was acknowledged."""
        progressed = False
        while self.items:
            item = self.items[0]
            try:
                self._send_one(client, item)
            except IngestError as exc:
                if exc.verdict != REJECT:
                    raise
                on_rejected(self, item, exc)
                doomed = list(self.items) if item.kind == CREATE or self.offset is None else [item]
                for gone in doomed:
                    self._drop(gone)
                continue
            self._drop(item)
            progressed = True
        return progressed

    def _send_one(self, client: IngestClient, item: Item) -> None:
        body = item.body if item.body is not None else self.spool.read(item)
        if item.kind == CREATE:
            out = client.create_run(body)
            if self.offset is None:
                self.offset = int((out or {}).get("last_seq") or 0)
                if self.spool is not None:
                    self.spool.set_offset(self.offset)  # before any batch numbered with it is sent
        elif item.kind == BATCH:
            if self.offset is None:
                raise IngestError(f"run {self.run_id} was never created on the server", REJECT)
            answer = client.send_batch(self.run_id, with_seq(body, item.index + self.offset))
            if isinstance(answer, dict) and answer.get("dropped_rows"):
                self.server_dropped += int(answer["dropped_rows"])
        else:
            client.finish(self.run_id, body)

    def _drop(self, item: Item) -> None:
        self.items.remove(item)
        if item.on_disk and self.spool is not None:
            self.spool.remove(item)
