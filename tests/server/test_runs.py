"""The runs API in-process: create and resume, batches stored once, limits, reads, isolation."""

from __future__ import annotations

import json
import math

import pytest
from fastapi.testclient import TestClient

from alerts.sdk import crashes
from alerts.store.models import RunRecord
from tests.server.conftest import auth

API = "/api/v1"


def post_json(client, path: str, text: str, key: str):
    """A body written by hand: bare NaN/Infinity tokens, as Python's json.dumps writes them."""
    return client.post(API + path, content=text, headers={**auth(key), "content-type": "application/json"})


def create(client, key: str, **body):
    return client.post(f"{API}/runs", json={"project": "p", **body}, headers=auth(key))


def batch(client, key: str, run_id: str, seq: int, rows=(), **extra):
    body = {"seq": seq, "rows": [{"step": s, "time": 1000.0 + s, "values": v} for s, v in rows], **extra}
    return client.post(f"{API}/runs/{run_id}/batches", json=body, headers=auth(key))


def history(client, key: str, run_id: str, **params) -> list[dict]:
    answer = client.get(f"{API}/runs/{run_id}/history", params=params, headers=auth(key))
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


# -- create / resume ---------------------------------------------------------------------------------


def test_create_names_the_run_and_the_caller_owns_it(client, make_user, server_clock):
    key = make_user("alice")
    answer = create(client, key, id="run-1", config={"lr": 0.001}, tags=["a", "b"], group="sweep", host="gpu1",
                    pid=42)
    assert answer.status_code == 201, answer.text
    run = answer.json()
    assert run["id"] == "run-1" and run["owner"] == "alice" and run["state"] == "running"
    assert run["name"].endswith("-1") and run["config"] == {"lr": 0.001} and run["tags"] == ["a", "b"]
    assert run["last_seq"] == 0 and run["last_step"] == -1 and run["created_at"] == server_clock()
    fresh = create(client, key)
    assert fresh.status_code == 201 and len(fresh.json()["id"]) == 8 and fresh.json()["name"].endswith("-2")


@pytest.mark.parametrize("body, field", [
    ({"id": "a/b"}, "id"), ({"id": "x" * 65}, "id"), ({"project": "a/b"}, "project"),
    ({"name": "nul\u0000"}, "name"), ({"tags": ["ok", "bad\ud800"]}, "tags"), ({"notes": "\u0000"}, "notes"),
])
def test_invalid_ids_and_names_are_422_naming_the_field(client, make_user, body, field):
    key = make_user("alice")
    answer = client.post(f"{API}/runs", content=json.dumps({"project": "p", **body}),
                         headers={**auth(key), "content-type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == ["body", field]


def test_existing_id_needs_resume_and_resume_continues_it(client, make_user, server_clock):
    key = make_user("alice")
    create(client, key, id="r", config={"lr": 1, "epochs": 3})
    assert batch(client, key, "r", 1, [(0, {"loss": 2.0}), (1, {"loss": 1.0})]).json()["stored"]
    client.post(f"{API}/runs/r/finish", json={"state": "failed", "exit_code": 1}, headers=auth(key))
    again = create(client, key, id="r")
    assert again.status_code == 409 and "resume" in again.json()["detail"]
    assert create(client, key, id="r", resume="never").status_code == 409
    server_clock.advance(5)
    resumed = create(client, key, id="r", resume="allow", config={"lr": 2})
    assert resumed.status_code == 200, resumed.text
    run = resumed.json()
    assert run["state"] == "running" and run["exit_code"] is None and run["finished_at"] is None
    assert run["config"] == {"lr": 2, "epochs": 3} and run["last_step"] == 1 and run["last_seq"] == 1
    assert create(client, key, id="nothing", resume="must").status_code == 404
    assert create(client, key, id="r2", resume="must").status_code == 404
    assert create(client, key, id="r2", resume=True).status_code == 201  # allow: made when missing


def test_another_users_id_is_taken_without_a_word_more(client, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    create(client, alice, id="shared", project="secret-project")
    for resume in (None, "allow", "must"):
        answer = create(client, bob, id="shared", resume=resume)
        assert answer.status_code == 409 and answer.json() == {"detail": "run id taken"}


def test_a_run_another_live_process_writes_cannot_be_resumed_until_its_heartbeat_is_old(
        client, make_user, server_clock):
    key = make_user("alice")
    create(client, key, id="r", host="gpu1", pid=100)
    held = create(client, key, id="r", resume="allow", host="gpu2", pid=200)
    assert held.status_code == 409 and "process 100 on gpu1" in held.json()["detail"]
    assert held.headers["X-Alerts-Reason"] == "run-in-use"  # what the SDK raises RunInUseError for
    taken = create(client, key, id="r")  # exists, no resume: a conflict of another kind
    assert taken.status_code == 409 and "X-Alerts-Reason" not in taken.headers
    # The same process asking again (its first answer was lost): its run, not a conflict.
    retry = create(client, key, id="r", host="gpu1", pid=100)
    assert retry.status_code == 200 and retry.json()["id"] == "r"
    server_clock.advance(crashes.CRASH_AFTER + 1)
    taken_over = create(client, key, id="r", resume="allow", host="gpu2", pid=200)
    assert taken_over.status_code == 200, taken_over.text


# -- batches ------------------------------------------------------------------------------------------


def test_a_batch_is_stored_once_however_often_it_is_sent(client, make_user):
    key = make_user("alice")
    create(client, key, id="r")
    rows = [(0, {"loss": 3.0}), (1, {"loss": 2.0})]
    assert batch(client, key, "r", 1, rows).json() == {"seq": 1, "stored": True, "last_seq": 1, "dropped_rows": 0}
    for _ in range(3):  # a retry after a timeout, a spool replay
        assert batch(client, key, "r", 1, rows).json() == {"seq": 1, "stored": False, "last_seq": 1,
                                                           "dropped_rows": 0}
    assert batch(client, key, "r", 5, [(2, {"loss": 1.0})]).json()["stored"]  # gaps are allowed
    assert batch(client, key, "r", 3, [(9, {"loss": 0.0})]).json() == {"seq": 3, "stored": False,
                                                                       "last_seq": 5, "dropped_rows": 0}
    assert [(row["_step"], row["loss"]) for row in history(client, key, "r")] == [(0, 3.0), (1, 2.0), (2, 1.0)]
    run = client.get(f"{API}/runs/r", headers=auth(key)).json()
    assert run["last_seq"] == 5 and run["last_step"] == 2


def test_the_design_documents_log_path_is_the_same_call_as_batches(client, make_user):
    key = make_user("alice")
    create(client, key, id="r")
    rows = [{"step": 0, "time": 1.0, "values": {"loss": 3.0}}]
    sent = client.post(f"{API}/runs/r/log", json={"seq": 1, "rows": rows}, headers=auth(key))
    assert sent.json()["stored"] is True
    assert batch(client, key, "r", 1, [(0, {"loss": 3.0})]).json()["stored"] is False  # the same seq, once
    assert [row["loss"] for row in history(client, key, "r")] == [3.0]
    assert client.post(f"{API}/runs/r/log", json={"seq": 2, "rows": rows}, headers=auth(make_user("bob"))
                       ).status_code == 404


def test_values_nan_and_infinity_in_either_encoding(client, make_user):
    key = make_user("alice")
    create(client, key, id="r")
    text = ('{"seq": 1, "rows": [{"step": 0, "time": 1.5, "values": {"a": NaN, "b": Infinity, "c": -Infinity, '
            '"d": "NaN", "e": "-Infinity", "s": "text", "i": 7, "t": true, "l": [1, 2]}}]}')
    assert post_json(client, "/runs/r/batches", text, key).json()["stored"]
    (row,) = history(client, key, "r")
    assert row == {"_step": 0, "_timestamp": 1.5, "_runtime": row["_runtime"], "a": "NaN", "b": "Infinity",
                   "c": "-Infinity", "d": "NaN", "e": "-Infinity", "s": "text", "i": 7, "t": True, "l": [1, 2]}


def test_summary_config_and_lower_steps(client, make_user):
    key = make_user("alice")
    create(client, key, id="r", config={"lr": 1})
    batch(client, key, "r", 1, [(0, {"loss": 3.0, "acc": 0.1}), (1, {"loss": 2.0})], summary={"best": 0.9},
          config={"lr": 1, "batch": 32})
    answer = batch(client, key, "r", 2, [(1, {"loss": 99.0}), (2, {"loss": 1.0})])
    assert answer.json()["dropped_rows"] == 1  # step 1 is stored already: dropped, as log() drops a lower step
    run = client.get(f"{API}/runs/r", headers=auth(key)).json()
    assert run["config"] == {"lr": 1, "batch": 32}
    assert run["summary"]["loss"] == 1.0 and run["summary"]["acc"] == 0.1 and run["summary"]["best"] == 0.9
    assert run["summary"]["_step"] == 2 and run["last_step"] == 2
    assert [row["loss"] for row in history(client, key, "r")] == [3.0, 2.0, 1.0]


def test_name_tags_and_notes_set_after_init_are_stored_in_seq_order_once(client, make_user):
    key = make_user("alice")
    create(client, key, id="r", name="first", tags=["a"], notes="n1")
    assert batch(client, key, "r", 1, [(0, {"loss": 1.0})], run={"name": "second"}).json()["stored"]
    run = client.get(f"{API}/runs/r", headers=auth(key)).json()
    assert (run["name"], run["tags"], run["notes"]) == ("second", ["a"], "n1")  # only what was sent changes
    assert batch(client, key, "r", 3, run={"tags": ["b", "c"], "notes": None}).json()["stored"]
    # A replay of an older batch (a spool sent again after a lost answer) changes nothing back.
    assert not batch(client, key, "r", 2, run={"name": "stale", "tags": ["old"]}).json()["stored"]
    run = client.get(f"{API}/runs/r", headers=auth(key)).json()
    assert (run["name"], run["tags"], run["notes"]) == ("second", ["b", "c"], None)
    bad = batch(client, key, "r", 4, run={"name": "nul\u0000"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "run", "name"]
    assert client.get(f"{API}/runs/r", headers=auth(key)).json()["name"] == "second"


@pytest.mark.parametrize("body, loc, says", [
    ({"seq": 1, "rows": [{"step": i, "time": 0, "values": {}} for i in range(10_001)]}, ["body", "rows"], "10000"),
    ({"seq": 1, "rows": [{"step": 0, "time": 0, "values": {f"k{i}": i for i in range(1001)}}]},
     ["body", "rows", 0, "values"], "1000 keys"),
    ({"seq": 1, "rows": [{"step": 2, "time": 0}, {"step": 1, "time": 0}]}, ["body", "rows"], "steps must increase"),
    ({"seq": 0}, ["body", "seq"], ""),
    ({"seq": 1, "rows": [{"step": -1, "time": 0}]}, ["body", "rows", 0, "step"], ""),
    ({"seq": 1, "rows": [{"step": 2**63, "time": 0}]}, ["body", "rows", 0, "step"], ""),
    ({"seq": 1, "alerts": [{"title": "t", "level": "info", "created_at": 0}]}, ["body", "alerts", 0, "level"], ""),
    ({"seq": 1, "extra": 1}, ["body", "extra"], ""),
])
def test_malformed_batches_are_422_naming_the_field_and_store_nothing(client, make_user, body, loc, says):
    key = make_user("alice")
    create(client, key, id="r")
    answer = client.post(f"{API}/runs/r/batches", json=body, headers=auth(key))
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"][0]
    assert detail["loc"] == loc and says in detail["msg"]
    assert client.get(f"{API}/runs/r", headers=auth(key)).json()["last_seq"] == 0
    assert batch(client, key, "r", 1, [(0, {"x": 1})]).json()["stored"]  # the seq was not used up


def test_a_run_marked_crashed_that_sends_again_is_running(client, make_user, server_store, server_clock):
    key = make_user("alice")
    create(client, key, id="r")
    from sqlalchemy import update
    with server_store.engine.begin() as conn:
        conn.execute(update(RunRecord).where(RunRecord.id == "r").values(state="crashed", error_type="crashed",
                                                                        finished_at=server_clock()))
    server_clock.advance(300)
    assert client.post(f"{API}/runs/r/heartbeat", headers=auth(key)).status_code == 204
    run = client.get(f"{API}/runs/r", headers=auth(key)).json()
    assert run["state"] == "running" and run["error_type"] is None and run["heartbeat_at"] == server_clock()


def test_a_heartbeat_of_another_users_run_changes_nothing(client, make_user, server_store, server_clock):
    alice, bob = make_user("alice"), make_user("bob")
    create(client, alice, id="r")
    from sqlalchemy import update
    with server_store.engine.begin() as conn:
        conn.execute(update(RunRecord).where(RunRecord.id == "r").values(state="crashed", error_type="crashed"))
    before = client.get(f"{API}/runs/r", headers=auth(alice)).json()
    server_clock.advance(60)
    answer = client.post(f"{API}/runs/r/heartbeat", headers=auth(bob))
    assert answer.status_code == 404 and answer.json() == {"detail": "no run 'r'"}
    assert client.get(f"{API}/runs/r", headers=auth(alice)).json() == before  # still crashed, old heartbeat
    assert client.post(f"{API}/runs/r/heartbeat", headers=auth(alice)).status_code == 204
    after = client.get(f"{API}/runs/r", headers=auth(alice)).json()
    assert after["state"] == "running" and after["heartbeat_at"] == server_clock()


def test_heartbeats_sent_at_once_are_each_answered_by_their_own_outcome(client, make_user, server_store,
                                                                       server_clock):
    # Heartbeats arriving together share a commit (alerts/server/heartbeats.py); each still gets the
    # answer of its own run: 204 for the caller's live runs (stored), 404 for another user's or a
    # missing run (unchanged), 204 for an ended run (unchanged).
    from concurrent.futures import ThreadPoolExecutor

    alice, bob = make_user("alice"), make_user("bob")
    for i in range(12):
        assert create(client, alice, id=f"a{i}").status_code == 201
    assert create(client, bob, id="b0").status_code == 201
    assert client.post(f"{API}/runs/a11/finish", json={"state": "finished"}, headers=auth(alice)).status_code == 200
    ended = client.get(f"{API}/runs/a11", headers=auth(alice)).json()
    server_clock.advance(45)
    calls = [(alice, f"a{i}", 204) for i in range(11)] + [(bob, "a3", 404), (alice, "b0", 404),
                                                           (alice, "nope", 404), (alice, "a11", 204)]
    with ThreadPoolExecutor(len(calls)) as pool:
        answers = list(pool.map(lambda call: client.post(f"{API}/runs/{call[1]}/heartbeat", headers=auth(call[0])),
                                calls * 3))
    assert [answer.status_code for answer in answers] == [expected for _, _, expected in calls * 3]
    for i in range(11):
        assert client.get(f"{API}/runs/a{i}", headers=auth(alice)).json()["heartbeat_at"] == server_clock()
    assert client.get(f"{API}/runs/b0", headers=auth(bob)).json()["heartbeat_at"] == server_clock() - 45
    assert client.get(f"{API}/runs/a11", headers=auth(alice)).json() == ended


def test_a_heartbeat_the_store_refuses_fails_alone(client, make_user, server_clock, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from alerts.server import heartbeats

    key = make_user("alice")
    for run_id in ("a", "b", "bad", "c"):
        create(client, key, id=run_id)
    update = heartbeats.HeartbeatWriter._update

    def refusing(conn, beat):
        if beat[0] == "bad":
            raise RuntimeError("the store refused")
        return update(conn, beat)

    monkeypatch.setattr(heartbeats.HeartbeatWriter, "_update", staticmethod(refusing))
    server_clock.advance(20)
    with TestClient(client.app, raise_server_exceptions=False) as quiet:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda run_id: quiet.post(f"{API}/runs/{run_id}/heartbeat", headers=auth(key)),
                                    ["a", "b", "bad", "c"] * 2))
    assert [answer.status_code for answer in answers] == [204, 204, 500, 204] * 2
    for run_id in ("a", "b", "c"):
        assert client.get(f"{API}/runs/{run_id}", headers=auth(key)).json()["heartbeat_at"] == server_clock()


def test_a_heartbeat_of_an_ended_run_is_204_and_changes_nothing(client, make_user, server_clock):
    key = make_user("alice")
    create(client, key, id="r")
    assert client.post(f"{API}/runs/r/finish", json={"state": "finished"}, headers=auth(key)).status_code == 200
    before = client.get(f"{API}/runs/r", headers=auth(key)).json()
    server_clock.advance(30)
    assert client.post(f"{API}/runs/r/heartbeat", headers=auth(key)).status_code == 204
    assert client.get(f"{API}/runs/r", headers=auth(key)).json() == before


def test_finish_is_idempotent(client, make_user, server_clock):
    key = make_user("alice")
    create(client, key, id="r")
    done = client.post(f"{API}/runs/r/finish", json={"state": "failed", "exit_code": 3, "error_type": "ValueError",
                                                    "error_text": "boom", "summary": {"test_acc": 0.8}},
                       headers=auth(key))
    assert done.status_code == 200
    first = done.json()
    assert first["state"] == "failed" and first["exit_code"] == 3 and first["summary"] == {"test_acc": 0.8}
    server_clock.advance(10)
    again = client.post(f"{API}/runs/r/finish", json={"state": "finished"}, headers=auth(key))
    assert again.status_code == 200 and again.json() == first
    assert client.post(f"{API}/runs/r/finish", json={"state": "crashed"}, headers=auth(key)).status_code == 422


# -- reads ----------------------------------------------------------------------------------------------


def test_list_filters_and_pages_newest_first(client, make_user, server_clock):
    key = make_user("alice")
    for i in range(7):
        server_clock.advance(1)
        create(client, key, id=f"r{i}", project="even" if i % 2 == 0 else "odd", group="g" if i < 3 else None)
    client.post(f"{API}/runs/r0/finish", json={"state": "finished"}, headers=auth(key))
    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"{API}/runs", params=params, headers=auth(key)).json()
        seen += [run["id"] for run in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"r{i}" for i in reversed(range(7))]

    def ids(**params):
        return [run["id"] for run in client.get(f"{API}/runs", params=params, headers=auth(key)).json()["items"]]

    assert ids(project="even") == ["r6", "r4", "r2", "r0"]
    assert ids(project="even", group="g") == ["r2", "r0"]
    assert ids(state="finished") == ["r0"]
    assert client.get(f"{API}/runs", params={"state": "sleeping"}, headers=auth(key)).status_code == 422
    assert client.get(f"{API}/runs", params={"cursor": "bm9wZQ"}, headers=auth(key)).status_code == 400


def test_history_pages_in_step_order_with_keys_and_bounds(client, make_user):
    key = make_user("alice")
    create(client, key, id="r")
    step = 0
    for seq in range(1, 6):  # five chunks of 20 rows; val only every 10th step
        rows = []
        for _ in range(20):
            rows.append((step, {"loss": float(step), **({"val": step / 10} if step % 10 == 0 else {})}))
            step += 1
        batch(client, key, "r", seq, rows)
    steps, cursor = [], None
    while True:
        params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        answer = client.get(f"{API}/runs/r/history", params=params, headers=auth(key)).json()
        steps += [row["_step"] for row in answer["items"]]
        cursor = answer["next_cursor"]
        if cursor is None:
            break
    assert steps == list(range(100))
    assert [row["_step"] for row in history(client, key, "r", min_step=35, max_step=41)] == list(range(35, 42))
    vals = history(client, key, "r", keys="loss,val")
    assert [row["_step"] for row in vals] == list(range(0, 100, 10))
    assert set(vals[3]) == {"_step", "_timestamp", "loss", "val"} and vals[3]["val"] == 3.0
    assert history(client, key, "r", min_step=1000) == []


# -- isolation --------------------------------------------------------------------------------------------


def test_another_users_run_is_404_everywhere_and_admins_see_all(client, make_user):
    alice, bob, root = make_user("alice"), make_user("bob"), make_user("root", admin=True)
    create(client, alice, id="r")
    batch(client, alice, "r", 1, [(0, {"loss": 1.0})])
    calls = [
        ("get", f"{API}/runs/r", None), ("get", f"{API}/runs/r/history", None),
        ("post", f"{API}/runs/r/batches", {"seq": 2, "rows": [{"step": 5, "time": 0, "values": {"x": 1}}]}),
        ("post", f"{API}/runs/r/heartbeat", None), ("post", f"{API}/runs/r/finish", {"state": "killed"}),
    ]
    for method, path, body in calls:
        answer = client.request(method, path, json=body, headers=auth(bob))
        assert answer.status_code == 404, (path, answer.text)
        missing = client.request(method, path.replace("/runs/r", "/runs/nope"), json=body, headers=auth(bob))
        assert answer.json() == {"detail": "no run 'r'"} and missing.json() == {"detail": "no run 'nope'"}
    assert client.get(f"{API}/runs", headers=auth(bob)).json()["items"] == []
    assert client.get(f"{API}/runs", params={"owner": "alice"}, headers=auth(bob)).status_code == 403
    run = client.get(f"{API}/runs/r", headers=auth(alice)).json()
    assert run["state"] == "running" and run["last_seq"] == 1  # nothing bob sent was taken
    assert [r["id"] for r in client.get(f"{API}/runs", params={"owner": "alice"}, headers=auth(root)).json()["items"]] \
        == ["r"]
    assert client.get(f"{API}/runs/r/history", headers=auth(root)).json()["items"][0]["loss"] == 1.0
    for method, path, body in calls:
        assert client.request(method, path, json=body).status_code == 401


def test_run_out_writes_non_finite_summary_values_as_strings(client, make_user):
    key = make_user("alice")
    create(client, key, id="r")
    post_json(client, "/runs/r/batches", '{"seq": 1, "rows": [{"step": 0, "time": 0, "values": {"loss": NaN}}]}',
              key)
    text = client.get(f"{API}/runs/r", headers=auth(key)).text
    assert '"loss":"NaN"' in text and math.isnan(float(json.loads(text)["summary"]["loss"]))


@pytest.mark.parametrize("text", ["{", "[1]", '{"seq": 1, "rows": [' + "[" * 100_000 + "]" * 100_000 + "]}",
                                  '{"seq": 1, "rows": [{"step": 0, "time": NaN}]}'])
def test_a_batch_that_is_not_one_is_a_4xx(client, make_user, text):
    key = make_user("alice")
    create(client, key, id="r")
    answer = post_json(client, "/runs/r/batches", text, key)
    assert 400 <= answer.status_code < 500 and answer.json()["detail"], answer.text


def test_stored_and_replayed_batches_are_counted_for_the_metrics(app, client, make_user):
    counted = []

    class Metrics:  # the seam /metrics counts ingest through: app.state.metrics.ingested(...)
        def ingested(self, **counts):
            counted.append(counts)

    app.state.metrics = Metrics()
    key = make_user("alice")
    create(client, key, id="r")
    batch(client, key, "r", 1, [(0, {"a": 1, "b": 2}), (1, {"a": 3})],
          alerts=[{"title": "t", "created_at": 0}])
    batch(client, key, "r", 1, [(0, {"a": 1})])
    batch(client, key, "r", 2, [(1, {"a": 9, "b": 9}), (2, {"a": 4})])  # step 1 is dropped: 1 point stored
    assert counted == [{"points": 3, "batches": 1, "alerts": 1}, {"replayed": 1},
                       {"points": 1, "batches": 1, "alerts": 0}]
