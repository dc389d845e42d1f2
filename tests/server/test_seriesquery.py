"""Reading a run's series out of its history chunks, on SQLite and PostgreSQL: only numbers, NaN kept,
the process's column cache following chunks appended and deleted."""

from __future__ import annotations

import math

from sqlalchemy import delete

from alerts.server.seriesquery import SeriesCache, run_series
from alerts.store import jsoncodec
from alerts.store.db import Batch
from alerts.store.models import HistoryChunk
from tests.server.apidata import add_run


def _chunk(run_id: str, rows: list) -> dict:
    return {"run_id": run_id, "first_step": rows[0]["_step"], "last_step": rows[-1]["_step"], "n_rows": len(rows),
            "last_time": 0.0, "data": jsoncodec.pack_rows(rows)}


def test_series_on_each_backend_follow_appended_and_deleted_chunks(store_backend):
    store, cache = store_backend, SeriesCache()
    add_run(store, "r", "alice")
    dense = [{"_step": s, "loss": float(s), "acc": s % 7} for s in range(0, 30_000)]
    sparse = [{"_step": s, "loss": "warming up" if s == 30_010 else -1.0, "eval/acc": 0.5}
              for s in range(30_000, 30_100, 10)]  # steps 10 apart, a text value, a key of its own
    store.write_batch(Batch(history=[_chunk("r", dense[i:i + 10_000]) for i in range(0, 30_000, 10_000)]
                            + [_chunk("r", sparse)]))
    answer = run_series(store, "r", ["loss", "eval/acc", "acc"], points=400, cache=cache)
    loss = answer["series"]["loss"]
    assert answer["start"] == 0 and answer["end"] == 30_090
    assert loss["count"] == 30_000 + 9 and loss["downsampled"] and len(loss["points"]) <= 400
    assert loss["min"] == {"step": 30_000, "value": -1.0} and loss["max"] == {"step": 29_999, "value": 29_999.0}
    assert answer["series"]["eval/acc"]["points"] == [[s, 0.5] for s in range(30_000, 30_100, 10)]
    assert answer["series"]["acc"]["count"] == 30_000
    store.write_batch(Batch(history=[_chunk("r", [{"_step": 40_000, "loss": math.nan}, {"_step": 40_001, "loss": 5.0}])]))
    grown = run_series(store, "r", ["loss"], 39_000, 41_000, cache=cache)["series"]["loss"]
    assert grown["marks"] == [{"step": 40_000, "value": "NaN", "count": 1}] and grown["points"] == [[40_001, 5.0]]
    with store.engine.begin() as conn:
        conn.execute(delete(HistoryChunk).where(HistoryChunk.first_step < 20_000))
    after = run_series(store, "r", ["loss"], cache=cache)["series"]["loss"]
    assert after["count"] == 10_000 + 9 + 2 and after["min"]["value"] == -1.0 and after["max"]["step"] == 29_999
