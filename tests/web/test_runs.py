"""The runs list and a run's page, in Chromium against a real ``alerts serve``; and, in process, the
series and media routes they read.

The runs are real: scripts logging with ``import alerts as wandb`` into the store the server serves,
under a rule file with a threshold rule on ``loss``, so the alerts and their steps are the engine's.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from server.conftest import auth
from web.conftest import shot, sign_in

RULES = """
rules:
  - name: loss-high
    metric: loss
    condition: "> 2"
    level: ERROR
    title: "loss is {value} in {run.name}"
  - name: loss-nan
    metric: loss
    condition: nan
    level: ERROR
    title: "loss is nan in {run.name}"
"""

# loss = 1 + step/20 crosses 2 at step 21 (the rule fires there); step 45 logs NaN; acc rises.
TRAINING = """
import alerts as wandb
wandb.init(project="vision", name="trial-7", id="trial-7", group="sweep-1", config={"lr": 0.1, "arch": "<b>cnn</b>"})
for step in range(60):
    loss = float("nan") if step == 45 else 1.0 + step / 20
    wandb.log({"loss": loss, "acc": step / 60})
wandb.finish()
"""

FAILING = """
import alerts as wandb
wandb.init(project="vision", name="broken", id="broken-1")
wandb.log({"loss": 1.0})
raise RuntimeError("CUDA out of memory <img src=x onerror=alert(1)>")
"""

BOBS = """
import alerts as wandb
wandb.init(project="secret", name="bobs-run", id="bobs-run")
wandb.log({"loss": 3.0})
wandb.finish()
"""

MEDIA = """
import numpy as np
import alerts as wandb
wandb.init(project="vision", name="with-media", id="with-media")
pixels = np.zeros((8, 8, 3), dtype=np.uint8); pixels[:, :4, 0] = 255
table = wandb.Table(columns=["input", "label", "picture"])
table.add_data("<script>alert(1)</script>", 7, wandb.Image(pixels))
wandb.log({"samples": wandb.Image(pixels, caption="red half"), "predictions": table, "page": wandb.Html("<b>x</b>")})
wandb.finish()
"""


@pytest.fixture
def rules_file(tmp_path, monkeypatch):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    monkeypatch.setenv("ALERTS_RULES", str(path))
    return path


@pytest.fixture
def users(store_dir):
    from alerts.server import accounts
    from alerts.settings import load_settings
    from alerts.store.db import open_store

    store = open_store(load_settings().resolved_database_url())
    return {name: accounts.add_user(store, name, now=0.0) for name in ("alice", "bob")}


def _log(run_script, source: str, user: str = "alice") -> None:
    result = run_script(source, env={"ALERTS_USER": user, "ALERTS_RELAY": "0"})
    assert "Traceback" not in result.stderr or "RuntimeError" in result.stderr, result.stderr


def _chart_ready(page) -> None:
    page.wait_for_selector("#charts[data-state=ready]")


def test_the_run_page_charts_loss_with_the_threshold_the_alert_step_and_the_nan(
        rules_file, users, run_script, live_server, page, new_page, console):
    _log(run_script, TRAINING)
    _log(run_script, FAILING)
    _log(run_script, BOBS, user="bob")
    server = live_server()
    page.set_viewport_size({"width": 1280, "height": 900})
    sign_in(page, server.url, users["alice"], then="/runs")

    # The list: alice's runs with their state and alert counts, not bob's.
    rows = {row.get_attribute("data-run"): row for row in page.query_selector_all("tr.run-row")}
    assert set(rows) == {"trial-7", "broken-1"}
    # loss-high fired at step 21; loss-nan fired at 45 and resolved at 46.
    assert rows["trial-7"].query_selector(".alert-count").text_content() == "3"
    assert "failed" in rows["broken-1"].text_content()
    shot(page, "runs-list")

    page.click("a[href='/runs/trial-7']")
    page.wait_for_url(server.url + "/runs/trial-7")
    _chart_ready(page)
    loss = page.locator(".chart[data-key=loss]")
    assert int(loss.locator("path.series").get_attribute("data-points")) == 59  # every finite point: 60 - the NaN
    threshold = loss.locator(".threshold[data-rule=loss-high]")
    assert threshold.get_attribute("data-value") == "2"
    assert loss.locator(".alert-mark[data-step='21']").count() == 1  # where loss-high fired
    assert loss.locator(".alert-mark[data-step='45']").count() == 1  # where loss-nan fired
    assert loss.locator(".nan-mark[data-step='45']").count() == 1
    assert loss.locator(".alert-mark").count() == 2  # a resolution is not a firing
    # acc has no rule: no threshold on its chart, and the loss alerts are not marked on it.
    acc = page.locator(".chart[data-key=acc]")
    assert acc.locator(".threshold").count() == 0 and acc.locator(".alert-mark").count() == 0
    assert "<b>cnn</b>" in page.text_content(".run-config")  # config shown as text
    shot(page, "run-page-laptop")

    # Zoom: drag across steps ~10..~30 of the loss chart; the series comes back for that range only.
    box = loss.locator(".zoom-overlay").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 10 / 59, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 20 / 59, y, steps=4)
    page.mouse.move(box["x"] + box["width"] * 30 / 59, y, steps=4)
    page.mouse.up()
    expect(page.locator(".zoom-state")).to_have_text(re.compile(r"^steps \d+–\d+$"), timeout=15_000)
    _chart_ready(page)
    zoomed = page.locator(".chart[data-key=loss]")
    assert zoomed.locator(".alert-mark[data-step='21']").count() == 1
    assert zoomed.locator(".nan-mark").count() == 0  # step 45 is outside the range now
    assert int(zoomed.locator("path.series").get_attribute("data-points")) < 30
    shot(page, "run-page-zoomed")
    page.click(".reset-zoom")
    expect(page.locator(".zoom-state")).to_have_text("all steps", timeout=15_000)
    assert page.locator(".chart[data-key=loss] .nan-mark[data-step='45']").count() == 1

    # Choosing metrics: acc off, and the URL remembers it.
    page.uncheck(".metric-picker input[value=acc]")
    expect(page.locator(".chart[data-key=acc]")).to_have_count(0, timeout=15_000)
    assert "keys=loss" in page.url

    # The failed run: its exception, as text (no element made of it).
    page.goto(server.url + "/runs/broken-1")
    _chart_ready(page)
    error = page.locator(".run-error")
    assert "RuntimeError" in error.text_content()
    assert "CUDA out of memory <img src=x onerror=alert(1)>" in error.locator(".error-text").text_content()
    assert error.locator("img").count() == 0
    shot(page, "run-page-failed")

    # Bob's run, by its id: a 404 page, as if it did not exist.
    response = page.goto(server.url + "/runs/bobs-run")
    assert response.status == 404 and "No such run" in page.text_content("h1")
    assert "secret" not in page.content()  # nothing of bob's run (its project) on the page
    # Chromium reports the 404 of the page itself as a console error: that one is expected.
    assert all("404" in e for e in console.errors), console.errors
    console.errors.clear()

    # A phone's width: the same page, readable (nothing wider than the screen).
    phone = new_page(viewport={"width": 390, "height": 844})
    sign_in(phone, server.url, users["alice"], then="/runs/trial-7")
    _chart_ready(phone)
    assert phone.locator(".chart[data-key=loss] .nan-mark").count() == 1
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    shot(phone, "run-page-phone")
    phone.goto(server.url + "/runs")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    shot(phone, "runs-list-phone")


def test_tables_and_images_are_shown_and_their_files_served_only_to_the_owner(
        users, run_script, live_server, page):
    _log(run_script, MEDIA)
    server = live_server()
    sign_in(page, server.url, users["alice"], then="/runs/with-media")
    image = page.locator(".run-image img")
    assert image.count() == 1
    expect(image).to_have_js_property("naturalWidth", 8, timeout=15_000)
    table = page.locator(".logged-table")
    assert table.locator("th").all_text_contents() == ["input", "label", "picture"]
    assert "<script>alert(1)</script>" in table.locator("td").first.text_content()
    expect(table.locator("img.cell-image")).to_have_js_property("naturalWidth", 8, timeout=15_000)
    assert "page" in page.text_content(".other-media")  # the HTML file is listed, never served
    shot(page, "run-page-media")

    import httpx

    src = image.get_attribute("src")
    as_alice = httpx.get(server.url + src, headers=auth(users["alice"]))
    assert as_alice.status_code == 200 and as_alice.headers["content-type"] == "image/png"
    assert as_alice.content.startswith(b"\x89PNG")
    assert httpx.get(server.url + src, headers=auth(users["bob"])).status_code == 404
    html = httpx.get(server.url + "/api/v1/runs/with-media/media", headers=auth(users["alice"])).json()
    page_file = next(m["path"] for m in html if m["kind"] == "html")
    assert httpx.get(server.url + "/api/v1/runs/with-media/media/file", params={"path": page_file},
                     headers=auth(users["alice"])).status_code == 404
    for outside in ("../alerts.db", "with-media/../../alerts.db", "/etc/passwd", "bobs-run/x.png"):
        assert httpx.get(server.url + "/api/v1/runs/with-media/media/file", params={"path": outside},
                         headers=auth(users["alice"])).status_code == 404


# -- in process ---------------------------------------------------------------------------------------


def _history(store, run_id: str, owner: str, values: list, key: str = "loss", chunk: int = 1000) -> None:
    from alerts.store import jsoncodec
    from alerts.store.db import Batch
    from server.apidata import add_run

    add_run(store, run_id, owner)
    chunks = []
    for first in range(0, len(values), chunk):
        rows = [{"_step": s, "_timestamp": 1.0 + s, key: values[s]} for s in range(first, min(first + chunk, len(values)))]
        chunks.append({"run_id": run_id, "first_step": rows[0]["_step"], "last_step": rows[-1]["_step"],
                       "n_rows": len(rows), "last_time": rows[-1]["_timestamp"], "data": jsoncodec.pack_rows(rows)})
    store.write_batch(Batch(history=chunks))


def test_the_series_api_downsamples_keeps_nan_and_extremes_and_hides_other_users_runs(
        client, make_user, server_store):
    alice, bob = make_user("alice"), make_user("bob")
    values = [float(s % 100) for s in range(20_000)]
    values[12_345] = float("nan")
    values[777] = -50.0
    values[15_000] = float("inf")
    _history(server_store, "long", "alice", values)
    answer = client.get("/api/v1/runs/long/series", params={"keys": "loss,missing", "points": 400},
                        headers=auth(alice))
    assert answer.status_code == 200, answer.text
    loss = answer.json()["series"]["loss"]
    assert loss["downsampled"] and loss["count"] == 20_000 and len(loss["points"]) <= 400
    assert loss["min"] == {"step": 777, "value": -50.0} and [777, -50.0] in loss["points"]
    assert {"step": 12_345, "value": "NaN", "count": 1} in loss["marks"]
    assert {"step": 15_000, "value": "Infinity", "count": 1} in loss["marks"]
    assert answer.json()["series"]["missing"]["count"] == 0
    # A range: finer buckets, only its steps.
    part = client.get("/api/v1/runs/long/series", params={"keys": "loss", "start": 12_300, "end": 12_400},
                      headers=auth(alice)).json()["series"]["loss"]
    assert not part["downsampled"] and part["count"] == 101
    assert [m["step"] for m in part["marks"]] == [12_345]
    assert all(12_300 <= s <= 12_400 for s, _ in part["points"])
    # Another user's run is a 404, and so is one that does not exist; bad queries are 422s.
    assert client.get("/api/v1/runs/long/series", params={"keys": "loss"}, headers=auth(bob)).status_code == 404
    assert client.get("/api/v1/runs/nope/series", params={"keys": "loss"}, headers=auth(alice)).status_code == 404
    assert client.get("/api/v1/runs/long/series", params={"keys": ","}, headers=auth(alice)).status_code == 422
    assert client.get("/api/v1/runs/long/series", params={"keys": "loss", "start": 9, "end": 3},
                      headers=auth(alice)).status_code == 422


def test_a_key_logged_with_text_or_gaps_gives_only_its_numbers(client, make_user, server_store):
    alice = make_user("alice")
    _history(server_store, "mixed", "alice", [1.0, "warming up", None, 4, True, float("-inf"), 6.5])
    loss = client.get("/api/v1/runs/mixed/series", params={"keys": "loss"}, headers=auth(alice)).json()["series"]["loss"]
    assert loss["points"] == [[0, 1.0], [3, 4.0], [6, 6.5]]
    assert loss["marks"] == [{"step": 5, "value": "-Infinity", "count": 1}]


def test_the_runs_list_pages_with_a_cursor_filters_and_counts_alerts(client, make_user, server_store):
    from server.apidata import add_alert, add_run

    make_user("bob")
    key = make_user("alice")
    for i in range(120):
        add_run(server_store, f"r{i:03d}", "alice", project="vision" if i % 2 else "audio", now=1_000.0 + i,
                group="g1" if i < 10 else None)
    add_run(server_store, "bobs", "bob", project="vision", now=5_000.0)
    for _ in range(3):
        add_alert(server_store, "r119", "alice")
    client.post("/login", data={"key": key})
    seen, url = [], "/runs"
    while url:
        html = client.get(url).text
        seen += re.findall(r'data-run="([^"]+)"', html)
        found = re.search(r'class="button next" rel="next" href="([^"]+)"', html)
        url = found.group(1).replace("&amp;", "&") if found else None
    assert seen == [f"r{i:03d}" for i in range(119, -1, -1)]  # newest first, each once, never bob's
    first = client.get("/runs").text
    assert re.search(r'data-run="r119".*?class="num alert-count">3<', first, re.S)
    vision = re.findall(r'data-run="([^"]+)"', client.get("/runs", params={"project": "vision", "state": "running"}).text)
    assert len(vision) == 50 and all(int(r[1:]) % 2 for r in vision)
    assert re.findall(r'data-run="([^"]+)"', client.get("/runs", params={"group": "g1"}).text) == [
        f"r{i:03d}" for i in range(9, -1, -1)]
    # Not an admin: owner= is ignored, bob's runs stay hidden.
    assert "bobs" not in client.get("/runs", params={"owner": "bob"}).text
    assert client.get("/runs", params={"cursor": "garbage"}).status_code == 200


def test_the_run_page_of_another_user_is_a_404_and_an_admin_sees_it(client, make_user, server_store):
    from server.apidata import add_run

    add_run(server_store, "bobs", "bob")
    client.post("/login", data={"key": make_user("alice")})
    missing = client.get("/runs/bobs")
    assert missing.status_code == 404 and "No such run" in missing.text
    client.post("/login", data={"key": make_user("root", admin=True)})
    assert client.get("/runs/bobs").status_code == 200
    assert client.get("/runs/bobs", follow_redirects=False).headers["content-security-policy"].startswith("default-src")


def test_the_series_follows_a_growing_run_and_chunks_deleted_by_retention(client, make_user, server_store):
    from sqlalchemy import delete

    from alerts.store import jsoncodec
    from alerts.store.db import Batch
    from alerts.store.models import HistoryChunk

    alice = make_user("alice")
    _history(server_store, "live", "alice", [float(s) for s in range(3_000)])

    def loss(**params):
        return client.get("/api/v1/runs/live/series", params={"keys": "loss", **params},
                          headers=auth(alice)).json()["series"]["loss"]

    assert loss()["count"] == 3_000 and loss()["max"] == {"step": 2_999, "value": 2_999.0}
    rows = [{"_step": s, "loss": float("nan") if s == 3_005 else 10_000.0} for s in range(3_000, 3_010)]
    server_store.write_batch(Batch(history=[{"run_id": "live", "first_step": 3_000, "last_step": 3_009, "n_rows": 10,
                                             "last_time": 0.0, "data": jsoncodec.pack_rows(rows)}]))
    grown = loss()
    assert grown["count"] == 3_010 and grown["max"]["value"] == 10_000.0
    assert {"step": 3_005, "value": "NaN", "count": 1} in grown["marks"]
    with server_store.engine.begin() as conn:  # retention drops the oldest chunk
        conn.execute(delete(HistoryChunk).where(HistoryChunk.run_id == "live", HistoryChunk.first_step == 0))
    assert loss()["count"] == 2_010 and loss()["min"] == {"step": 1_000, "value": 1_000.0}
