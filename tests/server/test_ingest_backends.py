"""A batch is stored once per (run, seq) on SQLite and on PostgreSQL: replays store nothing, and two posts of
one seq at the same moment, to one server or to two servers on one database, store it exactly once.
In-process (two apps over one store: two replicas) and through real ``alerts serve`` processes."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import httpx
import pytest
from fastapi.testclient import TestClient

from alerts.clock import FakeClock
from alerts.server import accounts
from alerts.server.app import create_app
from alerts.settings import load_settings
from tests.server.conftest import auth

API = "/api/v1"
SEQS = 15
ROWS = 20


def _body(seq: int) -> dict:
    first = (seq - 1) * ROWS
    return {"seq": seq, "rows": [{"step": first + i, "time": float(first + i), "values": {"loss": float(first + i),
                                                                                          "acc": 0.5}}
                                 for i in range(ROWS)]}


def _race(posters: list[Callable[[dict], dict]]) -> list[list[bool]]:
    """For each seq, every poster posts it at the same moment (a barrier); the ``stored`` answers."""
    results = []
    with ThreadPoolExecutor(len(posters)) as pool:
        for seq in range(1, SEQS + 1):
            barrier = threading.Barrier(len(posters))

            def post(poster, body=_body(seq)):
                barrier.wait()
                return poster(body)

            answers = list(pool.map(post, posters))
            assert {a["last_seq"] for a in answers} == {seq}
            results.append([a["stored"] for a in answers])
    return results


def _check_stored_once(results: list[list[bool]], history: list[dict]) -> None:
    assert [stored.count(True) for stored in results] == [1] * SEQS
    assert [row["_step"] for row in history] == list(range(SEQS * ROWS))


def _read_history(get: Callable[[str, dict], dict], run_id: str) -> list[dict]:
    rows, cursor = [], None
    while True:
        page = get(f"{API}/runs/{run_id}/history", {"limit": 1000, **({"cursor": cursor} if cursor else {})})
        rows += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return rows


def test_two_replicas_in_process_store_each_seq_once(store_backend):
    key = accounts.add_user(store_backend, "alice", now=0.0)
    apps = [create_app(load_settings(), store=store_backend, clock=FakeClock()) for _ in range(2)]
    with TestClient(apps[0]) as one, TestClient(apps[1]) as two:
        assert one.post(f"{API}/runs", json={"id": "r", "project": "p"}, headers=auth(key)).status_code == 201

        def poster(client):
            def post(body):
                answer = client.post(f"{API}/runs/r/batches", json=body, headers=auth(key))
                assert answer.status_code == 200, answer.text
                return answer.json()
            return post

        results = _race([poster(one), poster(two), poster(one)])
        history = _read_history(lambda path, params: two.get(path, params=params, headers=auth(key)).json(), "r")
        _check_stored_once(results, history)
        # A replay of any of them later, to either replica: nothing stored.
        assert one.post(f"{API}/runs/r/batches", json=_body(3), headers=auth(key)).json()["stored"] is False
        run = two.get(f"{API}/runs/r", headers=auth(key)).json()
        assert run["last_seq"] == SEQS and run["last_step"] == SEQS * ROWS - 1


@pytest.mark.parametrize("servers", [1, 2])
def test_live_servers_store_each_seq_once(store_backend, live_server, servers):
    if servers == 2 and store_backend.is_sqlite:
        pytest.skip("two servers share one database on PostgreSQL (one SQLite file works too, but is not the "
                    "deployment)")
    key = accounts.add_user(store_backend, "alice", now=0.0)
    urls = [live_server(ALERTS_DATABASE_URL=store_backend.url).url for _ in range(servers)]
    clients = [httpx.Client(base_url=url, headers=auth(key), timeout=30) for url in urls]
    try:
        created = clients[0].post(f"{API}/runs", json={"id": "r", "project": "p", "host": "h", "pid": 1})
        assert created.status_code == 201, created.text

        def poster(client):
            def post(body):
                answer = client.post(f"{API}/runs/r/batches", json=body)
                assert answer.status_code == 200, answer.text
                return answer.json()
            return post

        results = _race([poster(clients[i % servers]) for i in range(3)])
        history = _read_history(lambda path, params: clients[-1].get(path, params=params).json(), "r")
        _check_stored_once(results, history)
        finished = clients[-1].post(f"{API}/runs/r/finish", json={"state": "finished"})
        assert finished.status_code == 200 and finished.json()["state"] == "finished"
    finally:
        for client in clients:
            client.close()


def test_what_no_database_stores_is_repaired_not_a_5xx(store_backend):
    """NUL and lone surrogates (valid JSON escapes) in keys, values, alerts, config, host and error text:
    repaired to U+FFFD where stored, on both backends (PostgreSQL refuses NUL in text outright)."""
    key = accounts.add_user(store_backend, "alice", now=0.0)
    headers = {**auth(key), "content-type": "application/json"}
    app = create_app(load_settings(), store=store_backend, clock=FakeClock())
    with TestClient(app) as client:
        create = {"id": "r", "project": "p", "host": "gpu\u00001", "config": {"k\ud800": "v\u0000"}}
        assert client.post(f"{API}/runs", content=json.dumps(create), headers=headers).status_code == 201
        body = {"seq": 1, "rows": [{"step": 0, "time": 1.0, "values": {"k\ud800": "v\u0000\ud800", "big": 2**70}}],
                "summary": {"s\ud800": 1}, "alerts": [{"title": "t\u0000\ud800", "text": "x\u0000",
                                                       "created_at": 1.0}]}
        answer = client.post(f"{API}/runs/r/batches", content=json.dumps(body), headers=headers)
        assert answer.status_code == 200 and answer.json()["stored"], answer.text
        finish = {"state": "failed", "error_type": "E\u0000", "error_text": "line\ud800"}
        assert client.post(f"{API}/runs/r/finish", content=json.dumps(finish), headers=headers).status_code == 200
        (row,) = client.get(f"{API}/runs/r/history", headers=auth(key)).json()["items"]
        assert row["k\ufffd"] == "v\ufffd\ufffd" and row["big"] == str(2**70)
        run = client.get(f"{API}/runs/r", headers=auth(key)).json()
        assert run["config"] == {"k\ufffd": "v\u0000"} and run["summary"]["s\ufffd"] == 1
        assert run["error_type"] == "E\ufffd" and run["error_text"] == "line\ufffd"
        (alert,) = store_backend.alerts_of("r")
        assert alert.title == "t\ufffd\ufffd" and alert.text == "x\ufffd"
