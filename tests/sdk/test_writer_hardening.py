"""The background writer under hostile input and a locked database (issue 7, data loss).

* A lone surrogate (``"k\\ud800"``) in a key or a string must be repaired where it is encoded and
  cost nothing else: not the other rows of its batch, not the run's summary, not its end.
* A run update the store refuses in part must still record the run's state.
* While the database is locked, what the writer holds (queued + pending) stays within
  ``MAX_PENDING_ROWS`` at every moment; the oldest rows are dropped and counted, never a run,
  an update or an alert, and ``log()`` never waits for the database.

Real SQLite and PostgreSQL, real child processes, a real lock taken by another connection.
"""

from __future__ import annotations

import json
import re
import sqlite3

import pytest

import alerts as wandb
from alerts.sdk import worker
from alerts.store import db, jsoncodec

pytestmark = pytest.mark.timeout(240)

ROWS = 2001
BAD_STEP = 1000

# The reproduction: bad characters in a metric key, a logged string, a table cell, the
# config, the summary and an alert, in the middle of a burst of rows that ends with finish().
SURROGATE_LOGGER = """
    import alerts

    run = alerts.init(project="p", name="surrogates")
    alerts.config["note"] = "y\\ud800"
    for i in range(%(rows)d):
        row = {"i": i}
        if i == %(bad)d:
            row["k\\ud800"] = 1.5
            row["s"] = "v\\ud800"
            row["table"] = alerts.Table(columns=["a"], data=[["cell\\ud800"]])
        alerts.log(row)
    alerts.summary["note"] = "x\\ud800"
    alerts.alert(title="t\\ud800", text="x\\udfff")
    alerts.finish()
    print(run.id, flush=True)
""" % {"rows": ROWS, "bad": BAD_STEP}


def test_a_lone_surrogate_is_repaired_and_costs_no_row_and_not_the_run_end(store_backend, store_dir, run_script):
    result = run_script(SURROGATE_LOGGER, env={"ALERTS_DATABASE_URL": store_backend.url}, timeout=180)
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.split()[-1]
    store = store_backend

    record = store.get_run(run_id)
    assert record.state == "finished" and record.finished_at is not None, result.stderr
    rows = list(store.iter_history(run_id))
    assert [r["i"] for r in rows] == list(range(ROWS))  # all 2,001: the batch was not dropped
    assert rows[BAD_STEP]["k\ufffd"] == 1.5 and rows[BAD_STEP]["s"] == "v\ufffd"
    summary = jsoncodec.loads(record.summary)
    assert summary["note"] == "x\ufffd" and summary["i"] == ROWS - 1 and summary["k\ufffd"] == 1.5
    assert jsoncodec.loads(record.config) == {"note": "y\ufffd"}
    assert [(a.title, a.text) for a in store.alerts_of(run_id)] == [("t\ufffd", "x\ufffd")]
    (table,) = store.media_of(run_id)
    cells = json.loads((store_dir / "media" / table.path).read_text(encoding="utf-8"))["data"]
    assert cells == [["cell\ud800"]]  # a file holds it escaped: nothing to repair

    # The warnings name the keys, as the user wrote them.
    assert "logged key 'k\\ud800' has characters no database stores" in result.stderr
    assert "the value of logged key 's'" in result.stderr
    assert "the value of config key 'note'" in result.stderr
    assert "the value of alert key 'title'" in result.stderr
    assert "not everything was written" not in result.stderr


def test_a_run_update_the_store_refuses_in_part_still_records_the_end(store_backend, monkeypatch, caplog):
    """An exit code no INTEGER column holds: the column is dropped with an error, the end is kept."""
    monkeypatch.setenv("ALERTS_DATABASE_URL", store_backend.url)
    run = wandb.init(project="p")
    for i in range(10):
        wandb.log({"i": i})
    run.finish(exit_code=2**70, timeout=60)
    record = store_backend.get_run(run.id)
    assert (record.state, record.exit_code, record.last_step) == ("failed", None, 9)
    assert record.finished_at is not None and jsoncodec.loads(record.summary)["i"] == 9
    assert store_backend.count_history(run.id) == 10
    assert "dropping column exit_code of an update of run" in caplog.text


def held_by(writer: worker.Writer) -> int:
    """History rows the writer holds, counted from its pending batch and then its queue (in that
    order: a row moves from the queue to the batch, so a drain in between is missed, never counted
    twice), and its own count of what it holds, which includes rows being sorted."""
    pending = sum(chunk["n_rows"] for chunk in list(writer._pending.history))
    queued = sum(1 for op in list(writer.queue) if type(op) is dict)  # history rows are queued as dicts
    return max(pending + queued, writer.held_rows)


@pytest.mark.parametrize("busy_timeout_ms", [db.SQLITE_BUSY_TIMEOUT_MS, 50],
                         ids=["stuck-in-one-write", "refused-and-retried"])
def test_rows_held_while_the_database_is_locked_stay_within_the_cap(store_dir, monkeypatch, caplog,
                                                                    busy_timeout_ms):
    cap, total = 30_000, 120_000
    monkeypatch.setattr(worker, "MAX_PENDING_ROWS", cap)
    monkeypatch.setattr(worker, "CHUNK_ROWS", 1_000)  # the default's proportion to the cap: the writer drops whole chunks
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", busy_timeout_ms)
    run = wandb.init(project="p")
    writer = run._writer
    assert writer.flush()  # the run's row is in before the lock
    lock = sqlite3.connect(store_dir / "alerts.db", isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # another process writing for minutes: every write waits, then fails
    most = 0
    try:
        for i in range(total):
            wandb.log({"i": i})  # returns at once: log() never waits for the locked database
            if i == total // 2:
                wandb.alert(title="raised while locked", text="kept")
                wandb.config["lr"] = 0.1
            if i % 1000 == 0:
                most = max(most, held_by(writer))
        most = max(most, held_by(writer))
    finally:
        lock.execute("COMMIT")
        lock.close()
    run.finish(timeout=120)

    assert most <= cap
    record = wandb.Api().run(run.id)
    stored = [r["i"] for r in record.scan_history()]
    assert writer.dropped_rows > 0 and len(stored) + writer.dropped_rows == total  # every row is stored or counted
    # The writer keeps at most half the cap pending; log() sheds the queue to 90% of the cap: the
    # newest 40% of the cap are always kept.
    newest = cap * 4 // 10
    assert stored == sorted(stored) and stored[-newest:] == list(range(total - newest, total))
    assert record.state == "finished" and record.summary["i"] == total - 1 and record.config == {"lr": 0.1}
    assert [a["title"] for a in record.alerts()] == ["raised while locked"]
    assert re.search(r"dropped \d+ of the oldest history rows \(\d+ in all\) to hold at most 30000 rows", caplog.text)
    # Said again at finish(), for this run, and kept in its summary.
    assert f"{writer.dropped_rows} history rows were dropped, the oldest first" in caplog.text
    assert record.summary["_dropped_rows"] == writer.dropped_rows


def test_clean_text_replaces_what_no_database_stores():
    assert jsoncodec.clean_text("k\ud800x") == "k\ufffdx"
    assert jsoncodec.clean_text("a\x00b") == "a\ufffdb"  # PostgreSQL's text refuses NUL
    assert jsoncodec.clean_text("\ud83d\ude00") == "\U0001F600"  # a surrogate pair is a character
    plain = "plain"
    assert jsoncodec.clean_text(plain) is plain


def test_steps_and_exit_codes_past_32_bits_are_stored_alike_on_both_backends(store_backend, monkeypatch):
    """wandb's steps are 64-bit: PostgreSQL's INTEGER columns refused a step past 2**31 (the chunk was
    dropped) and an exit code past it, while SQLite stored both."""
    monkeypatch.setenv("ALERTS_DATABASE_URL", store_backend.url)
    run = wandb.init(project="p")
    wandb.log({"loss": 1.0}, step=3_000_000_000, commit=True)
    wandb.log({"loss": 0.5})
    run.finish(exit_code=2**40, timeout=60)
    record = store_backend.get_run(run.id)
    assert (record.state, record.exit_code, record.last_step) == ("failed", 2**40, 3_000_000_001)
    assert [r["_step"] for r in store_backend.iter_history(run.id)] == [3_000_000_000, 3_000_000_001]


def test_a_step_no_store_holds_is_ignored_and_costs_no_other_row(store_backend, monkeypatch):
    """log(step=2**63) made the store refuse the whole 0.2 s chunk (the probe lost the 5 rows before it);
    step=nan raised ValueError into the training loop."""
    monkeypatch.setenv("ALERTS_DATABASE_URL", store_backend.url)
    run = wandb.init(project="p")
    for i in range(5):
        wandb.log({"a": i})
    for bad in (2**63, float("nan"), float("inf"), "x"):
        with pytest.warns(wandb.AlertsWarning, match="step must be a whole number"):
            wandb.log({"b": 1}, step=bad)
    wandb.log({"a": 5})
    run.finish(timeout=60)
    rows = list(store_backend.iter_history(run.id))
    assert [(r["_step"], r.get("a"), r.get("b")) for r in rows] == [(i, i, None) for i in range(6)]
