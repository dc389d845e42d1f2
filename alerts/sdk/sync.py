"""``alerts sync``: send what runs left in the spool (ALERTS_DIR/spool) to their server, now.

The same replay a remote writer does for spools left by earlier processes, on the caller's thread:
each folder of this server and key is locked, sent in order, and removed once empty. Folders that a
live process holds, or that belong to another server or key, are left alone and reported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from alerts.sdk.credentials import Remote
from alerts.sdk.ingest import IngestClient, IngestError, key_id
from alerts.sdk.runlog import RunLog
from alerts.sdk.spool import folders

logger = logging.getLogger("alerts")


@dataclass
class Outcome:
    """What happened to one run's spool folder."""

    run_id: str
    sent: int = 0  # items acknowledged (creates, batches, ends)
    rows: int = 0  # history rows in them
    left: int = 0  # items still in the folder
    refused: int = 0  # items the server refused for good (dropped)
    note: Optional[str] = None  # why something is left


def sync(spool_root: Path, server: Remote) -> list[Outcome]:
    """Replay every spool folder under ``spool_root`` meant for ``server``; one outcome per folder."""
    outcomes = []
    mine = key_id(server.api_key)
    client = IngestClient(server.url, server.api_key)
    try:
        for run_id in folders(spool_root):
            outcome = Outcome(run_id)
            outcomes.append(outcome)
            log = RunLog.claim(spool_root, run_id)
            if log is None:
                outcome.note = "held by a live process (it sends it itself)"
                continue
            if log.meta.get("server") != server.url or log.meta.get("key_id") != mine:
                outcome.left = len(log.items)
                outcome.note = f"for {log.meta.get('server')} with another API key: not sent"
                log.spool.release(remove=False)
                continue
            _replay(log, client, outcome)
    finally:
        client.close()
    return outcomes


def _replay(log: RunLog, client: IngestClient, outcome: Outcome) -> None:
    before = {item.index: item.rows for item in log.items}

    def refused(_log, item, exc) -> None:
        outcome.refused += 1
        logger.error("alerts: run %s: the server refused %s item %d for good: %s", log.run_id, item.kind,
                     item.index, exc)

    try:
        log.send(client, refused)
    except IngestError as exc:
        outcome.note = str(exc)
    finally:
        left = {item.index for item in log.items}
        gone = [index for index in before if index not in left]
        outcome.sent = len(gone) - outcome.refused
        outcome.rows = sum(before[index] for index in gone)
        outcome.left = len(left)
        log.release()
