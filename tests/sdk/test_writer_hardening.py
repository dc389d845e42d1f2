"""The background writer under hostile input and a locked database (issue 7, data loss).

* A lone surrogate (``"k\\ud800"``) in a key or a string must be repaired where it is encoded and
  cost nothing else: not the other rows of its batch, not the run's summary, not its end.
* A run update the store refuses in part must still record the run's state.

Real SQLite and PostgreSQL, real child processes.
"""

from __future__ import annotations

import json

import pytest

import alerts as wandb
from alerts.store import jsoncodec

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


def test_clean_text_replaces_what_no_database_stores():
    assert jsoncodec.clean_text("k\ud800x") == "k\ufffdx"
    assert jsoncodec.clean_text("a\x00b") == "a\ufffdb"  # PostgreSQL's text refuses NUL
    assert jsoncodec.clean_text("\ud83d\ude00") == "\U0001F600"  # a surrogate pair is a character
    plain = "plain"
    assert jsoncodec.clean_text(plain) is plain
