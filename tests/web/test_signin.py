"""Signing in with an API key, the session cookie, signing out, and CSRF on the cookie's calls."""

from __future__ import annotations

import re

from server.conftest import auth
from web.conftest import shot, sign_in


def test_sign_in_lands_on_the_page_asked_for_and_sign_out_ends_the_session(live_server, page, tmp_path):
    server = live_server()
    from alerts.server import accounts
    from alerts.settings import load_settings
    from alerts.store.db import open_store

    key = accounts.add_user(open_store(load_settings().resolved_database_url()), "alice", now=0.0)
    page.goto(server.url + "/inbox")
    assert "/login" in page.url  # not signed in: sent to sign in, and back afterwards
    page.fill("#key", "ak_wrong")
    page.click("button[type=submit]")
    assert "not accepted" in page.text_content("[role=alert]")
    page.fill("#key", key)
    page.click("button[type=submit]")
    page.wait_for_url(server.url + "/inbox")
    assert "alice" in page.text_content(".who")
    cookie = next(c for c in page.context.cookies() if c["name"] == "alerts_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and key not in cookie["value"]
    shot(page, "signin-inbox")
    page.click("form.signout button")
    page.wait_for_url(re.compile(r".*/login"))
    page.goto(server.url + "/inbox")
    assert "/login" in page.url


def test_the_session_cookie_calls_the_api_but_changes_nothing_without_the_csrf_token(client, make_user):
    key = make_user("alice")
    assert client.post("/login", data={"key": key}, follow_redirects=False).status_code == 303
    assert client.get("/api/v1/me").json()["name"] == "alice"  # the cookie alone reads
    made = client.post("/api/v1/silences", json={"matchers": ["rule=loss-high"], "duration": "1h", "comment": "x"})
    assert made.status_code == 403 and "CSRF" in made.json()["detail"]
    assert client.get("/api/v1/silences").json()["items"] == []
    page = client.get("/inbox").text
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    made = client.post("/api/v1/silences", json={"matchers": ["rule=loss-high"], "duration": "1h", "comment": "x"},
                       headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201, made.text


def test_sign_out_needs_the_csrf_token_and_a_revoked_key_ends_its_sessions(client, make_user, server_store,
                                                                          server_clock):
    from alerts.server import accounts

    key = make_user("alice")
    client.post("/login", data={"key": key}, follow_redirects=False)
    assert client.post("/logout", data={}, follow_redirects=False).status_code == 403
    assert client.get("/inbox", follow_redirects=False).status_code == 200  # still signed in
    accounts.revoke_key(server_store, key[:11], now=server_clock())
    assert client.get("/inbox", follow_redirects=False).headers["location"].startswith("/login")
    assert client.get("/api/v1/me").status_code == 401


def test_a_sign_in_posted_from_another_site_or_with_a_bad_next_is_refused(client, make_user):
    key = make_user("alice")
    foreign = client.post("/login", data={"key": key}, headers={"Origin": "https://evil.example"},
                          follow_redirects=False)
    assert "not accepted" in foreign.text and "alerts_session" not in foreign.cookies
    away = client.post("/login", data={"key": key, "next": "//evil.example/x"}, follow_redirects=False)
    assert away.status_code == 303 and away.headers["location"] == "/inbox"


def test_the_api_key_is_not_in_any_page_or_cookie(client, make_user):
    key = make_user("alice")
    signed = client.post("/login", data={"key": key}, follow_redirects=True)
    assert key not in signed.text and all(key not in v for v in client.cookies.values())
    assert client.get("/api/v1/me", headers=auth(key)).status_code == 200
