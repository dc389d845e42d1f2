"""API keys: shown once, stored hashed, required on every API route; revoked keys stop working."""

from __future__ import annotations

import subprocess
import sys

import httpx
from sqlmodel import Session, select

from alerts.server import accounts
from alerts.store.models import ApiKeyRecord
from tests.server.conftest import REPO, auth


def test_me_needs_a_valid_key(client, make_user):
    key = make_user("alice")
    assert client.get("/api/v1/me").status_code == 401
    assert client.get("/api/v1/me", headers=auth("ak_" + "x" * 43)).status_code == 401
    assert client.get("/api/v1/me", headers={"Authorization": key}).status_code == 401  # no "Bearer"
    answer = client.get("/api/v1/me", headers=auth(key))
    assert answer.status_code == 200
    assert answer.json() == {"name": "alice", "is_admin": False}
    assert client.get("/api/v1/me", headers=auth(key)).headers.get("www-authenticate") is None


def test_401_says_how_to_authenticate_and_names_no_key(client, make_user):
    make_user("alice")
    answer = client.get("/api/v1/me", headers=auth("ak_wrong"))
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    assert "ak_wrong" not in answer.text


def test_keys_are_stored_hashed_and_revocable(client, make_user, server_store, server_clock):
    key = make_user("alice")
    with Session(server_store.engine) as session:
        stored = session.exec(select(ApiKeyRecord)).all()
    assert len(stored) == 1 and key not in repr(stored[0].model_dump()) and stored[0].key_hash != key
    assert accounts.revoke_key(server_store, key[:accounts.SHOWN_PREFIX_CHARS], now=server_clock()) == 1
    assert client.get("/api/v1/me", headers=auth(key)).status_code == 401


def test_a_key_revoked_after_use_stops_working_within_the_key_cache_bound(client, make_user, server_store,
                                                                         server_clock, app):
    # A key found valid is remembered for ALERTS_KEY_CACHE_SECONDS (5 s): a revocation made in the store
    # (by `alerts keys revoke` in another process, or another replica) reaches this server within that.
    bound = app.state.settings.key_cache_seconds
    assert bound == 5.0
    key, other = make_user("alice"), make_user("bob")
    assert client.get("/api/v1/me", headers=auth(key)).status_code == 200
    assert client.get("/api/v1/me", headers=auth(other)).status_code == 200
    assert accounts.revoke_key(server_store, key[:accounts.SHOWN_PREFIX_CHARS], now=server_clock()) == 1
    server_clock.advance(bound - 0.5)
    assert client.get("/api/v1/me", headers=auth(key)).status_code == 200  # remembered: at most the bound
    server_clock.advance(0.5)
    assert client.get("/api/v1/me", headers=auth(key)).status_code == 401
    assert client.get("/api/v1/runs", headers=auth(key)).status_code == 401
    server_clock.advance(bound * 10)  # and it stays refused: a refused key is never remembered
    assert client.get("/api/v1/me", headers=auth(key)).status_code == 401
    assert client.get("/api/v1/me", headers=auth(other)).json()["name"] == "bob"  # the other key still works


def test_a_disabled_user_is_refused_within_the_bound_and_0_turns_the_cache_off(server_store, server_clock,
                                                                              make_user):
    from fastapi.testclient import TestClient
    from sqlalchemy import update

    from alerts.server.app import create_app
    from alerts.settings import load_settings
    from alerts.store.models import UserRecord

    key = make_user("alice")
    for seconds in (5.0, 0.0):
        app = create_app(load_settings(key_cache_seconds=seconds), store=server_store, clock=server_clock, jobs=False)
        with TestClient(app) as client:
            with server_store.engine.begin() as conn:
                conn.execute(update(UserRecord).where(UserRecord.name == "alice").values(disabled=False))
            assert client.get("/api/v1/me", headers=auth(key)).status_code == 200
            with server_store.engine.begin() as conn:
                conn.execute(update(UserRecord).where(UserRecord.name == "alice").values(disabled=True))
            answer = client.get("/api/v1/me", headers=auth(key)).status_code
            assert answer == (200 if seconds else 401)
            server_clock.advance(seconds)
            assert client.get("/api/v1/me", headers=auth(key)).status_code == 401


def test_admin_flag(client, make_user):
    key = make_user("root", admin=True)
    assert client.get("/api/v1/me", headers=auth(key)).json() == {"name": "root", "is_admin": True}


def _cli(*args: str, env=None):
    return subprocess.run([sys.executable, "-m", "alerts", *args], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=60)


def test_cli_users_add_list_and_revoke_through_a_live_server(live_server, monkeypatch):
    added = _cli("users", "add", "carol")
    assert added.returncode == 0, added.stderr
    key = added.stdout.strip()
    assert key.startswith("ak_") and "shown this once" in added.stderr
    again = _cli("users", "add", "carol")
    assert again.returncode == 1 and "already exists" in again.stderr
    listed = _cli("users", "list")
    assert "carol" in listed.stdout and key[:11] in listed.stdout and key not in listed.stdout

    # The key cache off: the revocation, made by another process, must show at once (no waiting here;
    # the bound with the cache on is tested with a clock above).
    server = live_server(ALERTS_KEY_CACHE_SECONDS="0")
    assert httpx.get(server.url + "/api/v1/me", headers=auth(key)).json()["name"] == "carol"
    revoked = _cli("keys", "revoke", key[:11])
    assert revoked.returncode == 0, revoked.stderr
    assert httpx.get(server.url + "/api/v1/me", headers=auth(key)).status_code == 401
    assert key not in server.output()


def test_bad_user_names_are_refused():
    answer = _cli("users", "add", "../etc")
    assert answer.returncode == 1 and "invalid user name" in answer.stderr


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"


def test_oversized_and_malformed_bodies_are_4xx(client, make_user):
    key = make_user("alice")
    big = client.post("/api/v1/me", headers={**auth(key), "Content-Type": "application/json"},
                      content=b"[" + b"0," * (5 * 1024 * 1024) + b"0]")
    assert big.status_code == 413


def test_readiness_fails_while_the_schema_is_behind(client, server_store):
    from sqlalchemy import text

    with server_store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert "alerts db upgrade" in answer.json()["checks"]["migrations"]
