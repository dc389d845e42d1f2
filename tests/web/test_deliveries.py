"""Deliveries (``/deliveries``): a dead delivery shows its reason and Retry (after the fake Slack
recovers) delivers it through a real ``alerts serve``; another user's deliveries are not listed and
are a 404 to read or retry; a Retry without the CSRF token changes nothing. In-process: why a pending
delivery waits (backing off after a 429, waiting for its group), silenced ones, the filters and the
keyset pages."""

from __future__ import annotations

import re
import time

import pytest

from alerts.channels.config import load_channels
from alerts.delivery import outbox
from alerts.delivery.relay import Relay
from alerts.server import accounts
from alerts.settings import load_settings
from alerts.store.db import open_store
from fakes.slack import FakeSlack
from server.apidata import add_alert, add_run
from server.conftest import auth
from web.conftest import shot, sign_in

LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
HOOKS = {"alice": ["hook", "pager"], "bob": ["hook"]}


def _write_channels(folder, slack) -> None:
    """Each user's Slack webhooks on the fake Slack (``alice-hook``, ``alice-pager``, ``bob-hook``)."""
    folder.mkdir(exist_ok=True)
    for user, names in HOOKS.items():
        entries = "".join(f"  - type: slack\n    name: {name}\n    webhook_url: {slack.webhook_url(f'{user}-{name}')}\n"
                          for name in names)
        (folder / f"{user}.yaml").write_text(f"user: {user}\nchannels:\n{entries}", encoding="utf-8")


def _states(store) -> dict:
    return {(row.user, row.destination): row.state for row in outbox.listing(store)}


def _wait_for(condition, what: str, timeout: float = 60.0):
    """Poll for an outcome the server's relay (its own 1 s job, on real time) brings about."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


def test_a_dead_delivery_shows_its_reason_and_retry_delivers_it_once_slack_recovers(live_server, tmp_path, page):
    with FakeSlack() as slack:
        folder = tmp_path / "channels"
        _write_channels(folder, slack)
        slack.fail_next("alice-hook", error="no_service", times=None)
        slack.fail_next("bob-hook", error="no_service", times=None)
        store = open_store(load_settings().resolved_database_url())
        keys = {name: accounts.add_user(store, name, now=0.0) for name in HOOKS}
        server = live_server(ALERTS_SLACK_WEBHOOK_HOSTS="127.0.0.1", ALERTS_CHANNELS=str(folder))
        channels = load_channels([folder], webhook_hosts=["127.0.0.1"])
        now = time.time()
        add_run(store, "trial-7", "alice", now=now)
        add_run(store, "bob-run", "bob", now=now)
        add_alert(store, "trial-7", "alice", title="loss is nan in trial-7", level="ERROR", channels=channels, now=now)
        add_alert(store, "bob-run", "bob", title="bob's secret alert", channels=channels, now=now)
        _wait_for(lambda: _states(store).get(("alice", "alice/hook")) == "dead"
                  and _states(store).get(("bob", "bob/hook")) == "dead", "the hooks' deliveries go dead")
        [alice_id] = [r.id for r in outbox.listing(store, "dead") if r.user == "alice"]
        [bob_id] = [r.id for r in outbox.listing(store, "dead") if r.user == "bob"]

        sign_in(page, server.url, keys["alice"], then="/deliveries")
        row = page.locator(f'tr[data-delivery="{alice_id}"]')
        assert "dead" in row.inner_text() and "no_service" in row.inner_text()
        assert "loss is nan in trial-7" in row.inner_text() and "alice/hook" in row.inner_text()
        assert "sent" in page.locator("tr.delivery-sent").first.inner_text()  # the pager's went
        assert "bob's secret alert" not in page.content() and f'data-delivery="{bob_id}"' not in page.content()
        page.set_viewport_size(LAPTOP)
        shot(page, "deliveries-laptop")
        page.set_viewport_size(PHONE)
        shot(page, "deliveries-phone")
        page.set_viewport_size(LAPTOP)

        # Without the CSRF token, or for bob's delivery: nothing changes.
        csrf = page.get_attribute('meta[name="csrf-token"]', "content")
        assert page.request.post(f"{server.url}/deliveries/{alice_id}/retry", form={}).status == 403
        assert page.request.post(f"{server.url}/deliveries/{bob_id}/retry", form={"csrf": csrf}).status == 404
        assert page.request.post(f"{server.url}/api/v1/deliveries/{bob_id}/retry",
                                 headers={"X-CSRF-Token": csrf}).status == 404
        assert page.request.get(f"{server.url}/api/v1/deliveries/{bob_id}").status == 404
        assert _states(store)[("alice", "alice/hook")] == "dead" and _states(store)[("bob", "bob/hook")] == "dead"

        page.select_option("select[name=state]", "dead")
        page.click(".filters button[type=submit]")
        page.wait_for_url("**/deliveries?state=dead*")
        assert page.locator("tr[data-delivery]").count() == 1

        slack.clear_failures()
        page.locator(f'tr[data-delivery="{alice_id}"] form.retry button').click()
        page.wait_for_selector(f"text=Delivery #{alice_id} is queued again")
        assert "state=dead" in page.url  # back on the list it was pressed on
        [message] = slack.wait_for_messages(1, "alice-hook", timeout=60)
        assert "loss is nan in trial-7" in str(message)
        _wait_for(lambda: _states(store)[("alice", "alice/hook")] == "sent", "the retried delivery is recorded sent")
        page.goto(f"{server.url}/deliveries?state=sent")
        assert "sent" in page.locator(f'tr[data-delivery="{alice_id}"]').inner_text()
        assert _states(store)[("bob", "bob/hook")] == "dead" and slack.messages("bob-hook") == []


# In-process, on the test's clock: what the page says of each state.

T0 = 1_700_000_000.0


@pytest.fixture
def slack(server_clock):
    with FakeSlack(clock=server_clock) as fake:
        yield fake


@pytest.fixture
def app(server_store, server_clock, tmp_path, monkeypatch, slack):
    from alerts.server.app import create_app

    folder = tmp_path / "channels"
    _write_channels(folder, slack)
    monkeypatch.setenv("ALERTS_CHANNELS", str(folder))
    monkeypatch.setenv("ALERTS_SLACK_WEBHOOK_HOSTS", "127.0.0.1")
    return create_app(load_settings(), store=server_store, clock=server_clock, jobs=False)


def _relay(app, store, clock, group_interval: float = 30.0) -> Relay:
    return Relay(store, app.state.channels, app.state.settings, clock=clock, group_interval=group_interval)


def _row_text(html: str, delivery_id: int) -> str:
    found = re.search(rf'<tr data-delivery="{delivery_id}".*?</tr>', html, re.S)
    assert found, f"delivery {delivery_id} is not on the page"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(0)))


def _ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-delivery="(\d+)"', html)]


def test_pending_deliveries_say_why_they_wait_and_silenced_ones_say_by_what(client, app, make_user, server_store,
                                                                            server_clock, slack):
    assert server_clock() == T0  # the times below are written out
    key = make_user("alice")
    client.post("/login", data={"key": key})
    relay = _relay(app, server_store, server_clock)
    add_run(server_store, "r1", "alice", now=server_clock())
    # The pager answers 429 (Retry-After 120 s); the hook takes the first alert of the group.
    slack.fail_next("alice-pager", status=429, retry_after=120)
    add_alert(server_store, "r1", "alice", title="first", channels=app.state.channels, now=server_clock())
    relay.run_once(server_clock())
    # A second alert of the same group within the group interval waits for the group's next message.
    server_clock.advance(5)
    add_alert(server_store, "r1", "alice", title="second", channels=app.state.channels, now=server_clock())
    relay.run_once(server_clock())
    # An alert of a silenced rule is not sent.
    made = client.post("/api/v1/silences", headers=auth(key),
                       json={"matchers": ["rule=grad-norm"], "duration": "1h", "comment": "known"})
    assert made.status_code == 201, made.text
    add_alert(server_store, "r1", "alice", title="muted", rule="grad-norm", channels=app.state.channels,
              now=server_clock())
    relay.run_once(server_clock())

    rows = {(r.destination, r.payload.split('"title": "')[1].split('"')[0]): r for r in outbox.listing(server_store)}
    html = client.get("/deliveries").text
    backing_off = _row_text(html, rows[("alice/pager", "first")].id)
    assert "pending" in backing_off and "backing off until 2023-11-14 22:15:20 UTC" in backing_off
    assert "rate limited (429)" in backing_off
    waiting = _row_text(html, rows[("alice/hook", "second")].id)
    assert "waiting for its group" in waiting and "the next one goes at 2023-11-14 22:13:50 UTC" in waiting
    assert "sent 2023-11-14 22:13:20 UTC" in _row_text(html, rows[("alice/hook", "first")].id)
    silenced = _row_text(html, rows[("alice/hook", "muted")].id)
    assert "silenced" in silenced and "silenced by #" in silenced
    assert "Retry" not in html  # nothing is dead


def test_filters_and_keyset_pages(client, app, make_user, server_store, server_clock, monkeypatch):
    from alerts.web.pages import deliveries as page_module

    monkeypatch.setattr(page_module, "PAGE_SIZE", 2)
    key = make_user("alice")
    client.post("/login", data={"key": key})
    for run in ("r1", "r2"):
        add_run(server_store, run, "alice", now=server_clock())
    for n in range(3):  # each alert: one row to alice/hook, one to alice/pager
        add_alert(server_store, "r1" if n < 2 else "r2", "alice", title=f"a{n}", channels=app.state.channels,
                  now=server_clock())
    every = sorted((r.id for r in outbox.listing(server_store)), reverse=True)
    assert len(every) == 6

    seen, url = [], "/deliveries"
    while url:
        html = client.get(url).text
        seen += _ids(html)
        more = re.search(r'<a class="button" href="([^"]+)" rel="next">', html)
        url = more.group(1).replace("&amp;", "&") if more else None
    assert seen == every  # newest first, each once, across pages

    by_run = _ids(client.get("/deliveries?run=r2").text)
    assert len(by_run) == 2 and set(by_run) == {r.id for r in outbox.listing(server_store)
                                                if '"run_id": "r2"' in r.payload}
    pager_pages = client.get("/deliveries?channel=alice/pager").text
    assert all("alice/pager" in _row_text(pager_pages, i) for i in _ids(pager_pages))
    older = re.search(r'href="([^"]+)" rel="next"', pager_pages).group(1).replace("&amp;", "&")
    assert "channel=alice%2Fpager" in older  # a page keeps its filters
    assert "No deliveries match these filters" in client.get("/deliveries?state=dead").text
    add_alert(server_store, "r2", "alice", title="<img src=x onerror=alert(1)>", channels=app.state.channels,
              now=server_clock())
    newest = client.get("/deliveries").text
    assert "&lt;img src=x onerror=alert(1)&gt;" in newest and "<img src=x" not in newest  # a title is text
    assert "not one this page made" in client.get("/deliveries?cursor=bm90LWFuLWlk").text
