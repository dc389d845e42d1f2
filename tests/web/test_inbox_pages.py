"""The inbox and silences pages in-process (the app's TestClient): what a browser adds nothing to.
The browser's tests, against a real ``alerts serve``, are in test_inbox.py."""

from __future__ import annotations

import re

import pytest

from alerts.pipeline import silence
from alerts.pipeline.incident import INCIDENT_GAP
from server.apidata import add_alert, add_run

T0 = 1_700_000_000.0


def signed_in(client, key: str) -> str:
    """Sign ``client`` in with ``key``; the CSRF token of its session."""
    assert client.post("/login", data={"key": key}, follow_redirects=False).status_code == 303
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get("/inbox").text).group(1)


def rows(html: str) -> list[str]:
    return re.findall(r'<li class="incident[^"]*"[^>]*data-count="(\d+)"[^>]*data-alert-id="(\d+)"', html)


@pytest.fixture
def alice(client, make_user, server_store, server_clock):
    key = make_user("alice")
    server_clock.advance(10_000)
    return key


def test_one_row_per_incident_with_its_count_newest_first(client, alice, server_store):
    add_run(server_store, "r1", "alice", group="sweep-1")
    add_run(server_store, "r2", "alice", group="sweep-1")
    add_run(server_store, "r3", "alice", project="audio")
    add_alert(server_store, "r1", "alice", now=T0)  # id 1: alone, an incident that ended
    add_alert(server_store, "r1", "alice", now=T0 + INCIDENT_GAP + 10)  # 2, 3: one incident of sweep-1
    add_alert(server_store, "r2", "alice", now=T0 + INCIDENT_GAP + 20)
    add_alert(server_store, "r3", "alice", project="audio", now=T0 + INCIDENT_GAP + 30)  # 4: audio's
    signed_in(client, alice)
    page = client.get("/inbox").text
    assert rows(page) == [("1", "4"), ("2", "3"), ("1", "1")]
    assert "2 runs: r1-name, r2-name" in page


def test_filters_narrow_the_list(client, alice, server_store):
    add_run(server_store, "r1", "alice", group="sweep-1")
    add_run(server_store, "r3", "alice", project="audio")
    add_alert(server_store, "r1", "alice", now=T0, level="WARN")
    add_alert(server_store, "r3", "alice", project="audio", now=T0 + 1, rule="acc-low", status="resolved")
    signed_in(client, alice)
    assert [r[1] for r in rows(client.get("/inbox?project=audio").text)] == ["2"]
    assert [r[1] for r in rows(client.get("/inbox?group=sweep-1").text)] == ["1"]
    assert [r[1] for r in rows(client.get("/inbox?rule=acc-low").text)] == ["2"]
    assert [r[1] for r in rows(client.get("/inbox?level=WARN").text)] == ["1"]
    assert [r[1] for r in rows(client.get("/inbox?status=resolved").text)] == ["2"]
    assert rows(client.get("/inbox?time=1h").text) == []  # the clock is 10,000 s later
    assert "No alerts match these filters" in client.get("/inbox?time=1h").text


def test_pages_go_back_by_keyset_without_overlap(client, alice, server_store, monkeypatch):
    from alerts.web.pages import inbox

    monkeypatch.setattr(inbox, "PAGE_ALERTS", 3)
    add_run(server_store, "r1", "alice")
    for i in range(7):  # far apart: each alert an incident of its own
        add_alert(server_store, "r1", "alice", now=T0 + i * 2 * INCIDENT_GAP)
    signed_in(client, alice)
    seen, url = [], "/inbox"
    while url:
        page = client.get(url).text
        seen.append([int(r[1]) for r in rows(page)])
        older = re.search(r'href="(/inbox\?[^"]*cursor=[^"]+)" rel="next"', page)
        url = older.group(1).replace("&amp;", "&") if older else None
    assert seen == [[7, 6, 5], [4, 3, 2], [1]]


def test_another_users_alert_is_neither_listed_nor_shown_by_its_url(client, alice, make_user, server_store):
    add_run(server_store, "rb", "bob")
    add_alert(server_store, "rb", "bob", title="bob's secret", now=T0)
    signed_in(client, alice)
    assert "bob&#39;s secret" not in client.get("/inbox").text and rows(client.get("/inbox").text) == []
    missing = client.get("/inbox/alerts/1")
    assert missing.status_code == 404 and "secret" not in missing.text
    assert client.get("/inbox/alerts/999999").status_code == 404  # the same answer as a missing one
    assert client.post("/inbox/alerts/1/silence", data={"csrf": signed_in(client, alice), "matcher": "rule=x",
                                                       "duration": "1h", "comment": "c"}).status_code == 404
    assert silence.active(client.app.state.store, T0 + 10_000) == []


def test_silencing_from_an_alert_makes_the_users_own_silence_with_the_ticked_matchers(client, alice, server_store):
    add_run(server_store, "r1", "alice", group="sweep-1")
    add_alert(server_store, "r1", "alice", now=T0)
    csrf = signed_in(client, alice)
    form = client.get("/inbox/alerts/1").text
    ticked = re.findall(r'name="matcher" value="([^"]+)" checked', form)
    assert ticked == ["rule=loss-not-finite", "group=sweep-1"]
    assert 'value="run=r1"' in form and 'value="project=vision"' in form  # offered, not ticked
    made = client.post("/inbox/alerts/1/silence", data={"csrf": csrf, "matcher": ticked, "extra": "level!=INFO\n",
                                                        "duration": "2h", "comment": "known NaN"},
                       follow_redirects=False)
    assert made.status_code == 303 and made.headers["location"].startswith("/silences?made=")
    (s,) = silence.active(server_store, T0 + 10_000)
    assert [str(m) for m in s.matchers] == ["rule=loss-not-finite", "group=sweep-1", "level!=INFO"]
    assert s.user == "alice" and s.ends_at - s.starts_at == 7200 and s.comment == "known NaN"


def test_a_silence_the_api_would_refuse_is_refused_with_the_apis_reason_and_the_form_kept(client, alice,
                                                                                           server_store):
    add_run(server_store, "r1", "alice")
    add_alert(server_store, "r1", "alice", now=T0)
    csrf = signed_in(client, alice)
    bad = client.post("/inbox/alerts/1/silence", data={"csrf": csrf, "matcher": "rule=loss-not-finite",
                                                       "extra": "colour=red", "duration": "2h", "comment": "kept"})
    assert bad.status_code == 422 and "unknown label" in bad.text and ">kept</textarea>" in bad.text
    long = client.post("/inbox/alerts/1/silence", data={"csrf": csrf, "matcher": "rule=loss-not-finite",
                                                        "duration": "400d", "comment": "x"})
    assert long.status_code == 422 and "duration" in long.text
    none = client.post("/inbox/alerts/1/silence", data={"csrf": csrf, "duration": "1h", "comment": "x"})
    assert none.status_code == 422
    assert silence.active(server_store, T0 + 10_000) == []


def test_posts_without_the_csrf_token_or_with_another_sessions_change_nothing(app, alice, make_user, server_store,
                                                                              server_clock):
    from fastapi.testclient import TestClient

    add_run(server_store, "r1", "alice")
    add_alert(server_store, "r1", "alice", now=T0)
    sid = silence.add(server_store, [silence.parse_matcher("rule=x")], T0, T0 + 86400, "alice", "mine", T0,
                      user="alice")
    bob_key = make_user("bob")
    with TestClient(app) as alice_browser, TestClient(app) as bob_browser:
        signed_in(alice_browser, alice)
        bob_csrf = signed_in(bob_browser, bob_key)
        form = {"matcher": "rule=loss-not-finite", "duration": "1h", "comment": "x"}
        for extra in ({}, {"csrf": ""}, {"csrf": bob_csrf}):
            assert alice_browser.post("/inbox/alerts/1/silence", data={**form, **extra}).status_code == 403
            assert alice_browser.post(f"/silences/{sid}/expire", data=extra).status_code == 403
    assert [s.id for s in silence.active(server_store, server_clock())] == [sid]


def test_the_silences_page_lists_current_and_expired_and_expires_one_now(client, alice, make_user, server_store,
                                                                         server_clock):
    now = server_clock()
    mine = silence.add(server_store, [silence.parse_matcher("project=vision")], now - 60, now + 3600, "alice",
                       "node 7 is down", now - 60, user="alice")
    everyone = silence.add(server_store, [silence.parse_matcher("rule=stalled")], now - 60, now + 3600, "root",
                           "maintenance", now - 60)
    old = silence.add(server_store, [silence.parse_matcher("rule=old")], now - 7200, now - 3600, "alice", "over",
                      now - 7200, user="alice")
    bobs = silence.add(server_store, [silence.parse_matcher("rule=bob")], now - 60, now + 3600, "bob", "bob's",
                       now - 60, user="bob")
    csrf = signed_in(client, alice)
    page = client.get("/silences").text
    current = page.split("<h2>Expired</h2>")[0]
    assert f'data-silence-id="{mine}"' in current and f'data-silence-id="{everyone}"' in current
    assert f'data-silence-id="{old}"' in page.split("<h2>Expired</h2>")[1]
    assert f'data-silence-id="{bobs}"' not in page and "bob&#39;s" not in page
    assert current.count("Expire now") == 1  # not everyone's: only an admin ends that one
    ended = client.post(f"/silences/{mine}/expire", data={"csrf": csrf})
    assert "was ended" in ended.text
    assert sorted(s.id for s in silence.active(server_store, server_clock())) == sorted([everyone, bobs])
    assert "only an admin" in client.post(f"/silences/{everyone}/expire", data={"csrf": csrf}).text
    assert "no such silence" in client.post(f"/silences/{bobs}/expire", data={"csrf": csrf}).text
    assert sorted(s.id for s in silence.active(server_store, server_clock())) == sorted([everyone, bobs])


def test_an_admin_sees_everyones_incidents_each_with_its_owner(client, make_user, server_store, server_clock):
    server_clock.advance(10_000)
    root = make_user("root", admin=True)
    add_run(server_store, "ra", "alice")
    add_run(server_store, "rb", "bob")
    add_alert(server_store, "ra", "alice", now=T0)
    add_alert(server_store, "rb", "bob", now=T0 + 1)  # same rule and project, another owner: another row
    signed_in(client, root)
    page = client.get("/inbox").text
    assert [r[1] for r in rows(page)] == ["2", "1"]
    assert '<span class="owner">bob\'s</span>' in page and '<span class="owner">alice\'s</span>' in page
