"""My channels (``/channels``): add a Slack webhook through the page, send a test that reaches the fake
Slack, edit it without retyping the URL, remove it after the confirmation step. The webhook URL never
reaches the browser (no page, no API answer) nor the server's log; another user's channel is a 404;
a form without the CSRF token changes nothing."""

from __future__ import annotations

import re
import textwrap

import httpx
import pytest

from alerts.server import accounts, channelstore
from alerts.settings import load_settings
from alerts.store.db import open_store
from fakes.slack import FakeSlack
from server.conftest import auth
from web.conftest import shot, sign_in

LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def channel_dir(tmp_path, slack):
    """Alice's channel file: one Slack webhook, read-only on the page."""
    folder = tmp_path / "channels"
    folder.mkdir()
    (folder / "alice.yaml").write_text(textwrap.dedent(f"""\
        user: alice
        channels:
          - type: slack
            name: from-file
            webhook_url: {slack.webhook_url("alice-file-hook")}
        """), encoding="utf-8")
    return folder


class Network:
    """Every response the page received, with its body (a redirect has none)."""

    def __init__(self, page) -> None:
        self.bodies: list[tuple[str, str]] = []
        page.on("response", self._record)

    def _record(self, response) -> None:
        try:
            body = response.text()
        except Exception:  # a redirect's body is not kept: it has none worth reading
            body = ""
        self.bodies.append((response.url, body))

    def holding(self, secret: str) -> list[str]:
        return [url for url, body in self.bodies if secret in body]


def _csrf(page) -> str:
    return page.get_attribute('meta[name="csrf-token"]', "content")


def _start(live_server, channel_dir):
    store = open_store(load_settings().resolved_database_url())
    keys = {name: accounts.add_user(store, name, now=0.0) for name in ("alice", "bob")}
    server = live_server(ALERTS_SLACK_WEBHOOK_HOSTS="127.0.0.1", ALERTS_CHANNELS=str(channel_dir))
    return store, keys, server


def test_add_a_webhook_send_a_test_edit_and_remove_it_with_the_url_never_sent_back(live_server, channel_dir,
                                                                                   slack, page):
    store, keys, server = _start(live_server, channel_dir)
    network = Network(page)
    secret = slack.webhook_url("alice-page-hook")
    secret_part = "alice-page-hook"
    sign_in(page, server.url, keys["alice"], then="/channels")
    assert page.locator('tr[data-channel="alice/from-file"]').inner_text().count("read-only") == 1

    page.select_option("#kind", "webhook")
    assert page.is_hidden("#to") and page.is_visible("#webhook_url")  # the fields of the kind chosen
    page.fill("#name", "team-hook")
    page.fill("#webhook_url", secret)
    page.click(".add-channel button[type=submit]")
    page.wait_for_selector("text=Channel added.")
    row = page.locator('tr[data-channel="alice/team-hook"]')
    assert "127.0.0.1/…•••• set" in row.inner_text()

    row.locator("button[data-test-channel]").click()
    page.wait_for_selector('tr[data-channel="alice/team-hook"] .test-outcome .ok')
    assert "Sent to alice/team-hook" in row.locator(".test-outcome").inner_text()
    [message] = slack.wait_for_messages(1, "alice-page-hook")
    assert "Test notification" in str(message)
    page.set_viewport_size(LAPTOP)
    shot(page, "channels-laptop")
    page.set_viewport_size(PHONE)
    shot(page, "channels-phone")
    page.set_viewport_size(LAPTOP)

    # Edit the level without retyping the URL: the channel keeps sending to the same webhook.
    row.locator("a", has_text="Edit").click()
    assert page.input_value("#webhook_url") == ""
    page.select_option("select[name=min_level]", "WARN")
    page.click("button[type=submit].primary")
    page.wait_for_selector("text=Channel saved.")
    assert "WARN and up" in row.inner_text()
    row.locator("button[data-test-channel]").click()
    page.wait_for_selector('tr[data-channel="alice/team-hook"] .test-outcome .ok')
    assert len(slack.wait_for_messages(2, "alice-page-hook")) == 2
    [record] = [r for r in channelstore.all_records(store, "alice") if r.name == "team-hook"]
    assert channelstore.fields_of(record)["webhook_url"] == secret

    # Remove: a confirmation page first; the channel stays until its button is pressed.
    row.locator("a", has_text="Remove").click()
    page.wait_for_selector("text=Remove channel team-hook?")
    shot(page, "channels-remove-confirm")
    assert [r.name for r in channelstore.all_records(store, "alice")] == ["team-hook"]
    page.click("button.danger")
    page.wait_for_selector("text=Channel removed.")
    assert page.locator('tr[data-channel="alice/team-hook"]').count() == 0
    assert channelstore.all_records(store, "alice") == []

    # What the page's scripts read from the API: the URL is not there either.
    listed = page.evaluate("window.alertsPage.api('/api/v1/channels')")
    assert [c["name"] for c in listed["items"]] == ["from-file"]
    assert secret_part not in page.content()
    assert network.holding(secret_part) == [] and network.holding("alice-file-hook") == []
    assert any("/api/v1/channels/" in url and url.endswith("/test") for url, _ in network.bodies)
    assert network.holding("Channel added.") and network.holding("127.0.0.1/…•••• set")  # the pages were read
    server.stop()
    assert secret_part not in server.output() and "alice-file-hook" not in server.output()


def test_another_users_channel_is_not_listed_and_is_404_to_test_edit_or_remove(live_server, channel_dir, slack,
                                                                               page):
    store, keys, server = _start(live_server, channel_dir)
    made = httpx.post(server.url + "/api/v1/channels", headers=auth(keys["bob"]),
                      json={"type": "slack", "name": "bobs-room", "webhook_url": slack.webhook_url("bob-hook")})
    assert made.status_code == 201, made.text
    bob_id = made.json()["id"]
    sign_in(page, server.url, keys["alice"], then="/channels")
    assert "bobs-room" not in page.content()
    csrf = _csrf(page)
    tested = page.request.post(f"{server.url}/api/v1/channels/{bob_id}/test", headers={"X-CSRF-Token": csrf})
    assert tested.status == 404
    assert page.request.get(f"{server.url}/channels/{bob_id}/remove").status == 404
    assert page.request.post(f"{server.url}/channels/{bob_id}/remove", form={"csrf": csrf}).status == 404
    taken = {"csrf": csrf, "name": "taken-over", "webhook_url": slack.webhook_url("x")}
    assert page.request.post(f"{server.url}/channels/{bob_id}/edit", form=taken).status == 404
    assert page.request.delete(f"{server.url}/api/v1/channels/{bob_id}", headers={"X-CSRF-Token": csrf}).status == 404
    assert [(r.name, r.user) for r in channelstore.all_records(store)] == [("bobs-room", "bob")]
    assert slack.messages("bob-hook") == []
    file_id = page.get_attribute('tr[data-channel="alice/from-file"] button[data-test-channel]', "data-test-channel")
    assert page.request.get(f"{server.url}/channels/{file_id}/edit").status == 409  # read-only: change the file
    assert page.request.post(f"{server.url}/channels/{file_id}/remove", form={"csrf": csrf}).status == 409
    assert page.locator('tr[data-channel="alice/from-file"] a').count() == 0  # no Edit or Remove offered


# In-process: what a browser adds nothing to.

def _signed_in(client, key: str) -> str:
    """Sign ``client`` in; the page's CSRF token."""
    client.post("/login", data={"key": key}, follow_redirects=False)
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get("/channels").text).group(1)


@pytest.fixture
def local_hooks(monkeypatch):
    monkeypatch.setenv("ALERTS_SLACK_WEBHOOK_HOSTS", "127.0.0.1")


@pytest.fixture
def app(server_store, server_clock, local_hooks):
    from alerts.server.app import create_app

    return create_app(load_settings(), store=server_store, clock=server_clock, jobs=False)


def test_a_form_post_without_the_csrf_token_changes_nothing(client, make_user, server_store):
    csrf = _signed_in(client, make_user("alice"))
    hook = "http://127.0.0.1:9/services/T0/B0/csrf-secret"
    refused = client.post("/channels", data={"kind": "webhook", "name": "x", "webhook_url": hook})
    assert refused.status_code == 403 and channelstore.all_records(server_store) == []
    assert client.post("/channels", data={"csrf": "not-it", "kind": "webhook", "name": "x",
                                          "webhook_url": hook}).status_code == 403
    assert channelstore.all_records(server_store) == []
    added = client.post("/channels", data={"csrf": csrf, "kind": "webhook", "name": "x", "webhook_url": hook},
                        follow_redirects=False)
    assert added.status_code == 303
    [record] = channelstore.all_records(server_store)
    assert client.post(f"/channels/{record.id}/remove", data={}).status_code == 403
    assert client.post(f"/channels/{record.id}/edit", data={"name": "renamed"}).status_code == 403
    assert [r.name for r in channelstore.all_records(server_store)] == ["x"]


def test_a_refused_channel_says_why_and_never_echoes_the_url(client, make_user, server_store):
    csrf = _signed_in(client, make_user("alice"))
    answer = client.post("/channels", data={"csrf": csrf, "kind": "webhook", "name": "ok-name",
                                            "webhook_url": "https://evil.example/services/T/B/leaky-secret"})
    assert answer.status_code == 200 and "The channel was not added" in answer.text
    assert "webhook url:" in answer.text and "leaky-secret" not in answer.text
    assert 'value="ok-name"' in answer.text  # the rest of the form is kept
    bad_name = client.post("/channels", data={"csrf": csrf, "kind": "email", "name": "a/b", "to": "a@example.com"})
    assert "name: must be 1-64 letters" in bad_name.text
    assert channelstore.all_records(server_store) == []


def test_email_and_bot_channels_are_added_and_edited_from_the_forms(client, make_user, server_store):
    csrf = _signed_in(client, make_user("alice"))
    client.post("/channels", data={"csrf": csrf, "kind": "email", "name": "mail", "min_level": "ERROR",
                                   "to": "a@example.com, b@example.com"})
    client.post("/channels", data={"csrf": csrf, "kind": "bot", "name": "room", "channel": "#ml-alerts"})
    listed = client.get("/channels").text
    assert "Email: a@example.com, b@example.com" in listed and "ERROR and up" in listed and "#ml-alerts" in listed
    mail = next(r for r in channelstore.all_records(server_store) if r.name == "mail")
    edit = client.get(f"/channels/{mail.id}/edit").text
    assert 'value="a@example.com, b@example.com"' in edit
    client.post(f"/channels/{mail.id}/edit", data={"csrf": csrf, "name": "mail", "min_level": "WARN",
                                                   "to": "c@example.com"})
    assert channelstore.fields_of(channelstore.get(server_store, mail.id))["to"] == ["c@example.com"]
    assert "WARN and up" in client.get("/channels").text
