"""``/api/v1/rules``: the rules in force, the check of a posted rule file (every error with its line, rule
and key; never a 5xx, whatever the text), and reload (admins; a broken file keeps the rules in force)."""

from __future__ import annotations

import shutil

import pytest

from alerts.server.app import create_app
from alerts.settings import load_settings
from tests.server.conftest import REPO, auth


@pytest.fixture
def rules_dir(tmp_path, monkeypatch):
    folder = tmp_path / "rules"
    folder.mkdir()
    shutil.copy(REPO / "rules" / "default.yaml", folder / "default.yaml")
    monkeypatch.setenv("ALERTS_RULES", str(folder))
    return folder


@pytest.fixture
def app(server_store, server_clock, rules_dir):
    return create_app(load_settings(), store=server_store, clock=server_clock)


@pytest.fixture
def keys(client, make_user):
    return {name: make_user(name, admin=name == "root") for name in ("alice", "root")}


def _validate(client, key, text, content_type="application/yaml"):
    return client.post("/api/v1/rules/validate", headers={**auth(key), "content-type": content_type},
                       content=text.encode("utf-8") if isinstance(text, str) else text)


def test_lists_the_rules_in_force(client, keys):
    answer = client.get("/api/v1/rules", headers=auth(keys["alice"]))
    assert answer.status_code == 200
    body = answer.json()
    assert [r["name"] for r in body["items"]] == ["loss-not-finite", "loss-divergence", "stalled", "run-failed"]
    first = body["items"][0]
    assert first["source"] == "default.yaml:5" and first["definition"]["condition"] == "non-finite"
    assert body["files"] == ["default.yaml"] and body["last_error"] is None


BROKEN = """\
rules:
  - name: accuracy-floor
    metric: val/acc
    condition: "<< 0.3"
  - name: jump
    kind: change
    metric: loss
    change: {by: -1}
  - name: typo
    metric: loss
    conditon: "> 1"
"""


def test_every_error_has_its_line_rule_and_key(client, keys):
    answer = _validate(client, keys["alice"], BROKEN)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["valid"] is False and body["rules"] == []
    found = {(e["line"], e["rule"], e["key"]) for e in body["errors"]}
    assert (4, "accuracy-floor", "condition") in found
    assert (8, "jump", "change.by") in found
    assert (11, "typo", "conditon") in found
    assert all(e["text"].startswith("posted.yaml:") for e in body["errors"])


def test_a_good_file_is_valid_and_names_clashing_with_rules_in_force_are_warned(client, keys):
    text = "rules:\n  - name: stalled\n    kind: stalled\n    after: 5m\n  - name: fresh\n    metric: acc\n    condition: '< 0.1'\n"
    body = _validate(client, keys["alice"], text).json()
    assert body["valid"] is True and [r["name"] for r in body["rules"]] == ["stalled", "fresh"]
    assert len(body["warnings"]) == 1 and "stalled" in body["warnings"][0] and "default.yaml" in body["warnings"][0]
    assert _validate(client, keys["alice"], '{"text": "rules: []"}', "application/json").json()["valid"] is True


@pytest.mark.parametrize("text", [
    "rules: [\n",                                   # not YAML
    "a: &a [*a]\n",                                 # a recursive alias
    "x: &x [1,2,3,4,5,6,7,8,9,0]\n" + "".join(f"y{i}: [*x,*x,*x,*x,*x,*x,*x,*x,*x,*x]\n" for i in range(200)),  # alias bomb
    "[" * 200 + "]" * 200,                          # too deep
    "rules:\n  - name: a\n    metric: x\n    condition: '> 1'\n  - name: a\n    metric: y\n    condition: '> 1'\n",
    "- just a list\n",
    "rules: 7\n",
    b"rules:\n  - name: caf\xe9\n",                   # Latin-1, not UTF-8
    "rules:\n  - name: t\n    metric: x\n    condition: '> 1'\n    title: '{value:>5000}'\n",
    "rules:\n  - name: t\n    metric: x\n    condition: '> 1'\n    title: '{run.__class__}'\n",
    "",
    "\x00\x01",
])
def test_any_text_gets_an_answer_not_a_crash(client, keys, text):
    answer = _validate(client, keys["alice"], text)
    assert answer.status_code in (200, 422), answer.text
    if answer.status_code == 200 and text:
        body = answer.json()
        assert body["valid"] is False and body["errors"] and all(e["message"] for e in body["errors"])


def test_a_huge_file_is_413(client, keys):
    assert _validate(client, keys["alice"], "#" * (1024 * 1024 + 1)).status_code == 413


def test_reload_is_for_admins_and_a_broken_file_keeps_the_rules(client, app, keys, rules_dir):
    assert client.post("/api/v1/rules/reload", headers=auth(keys["alice"])).status_code == 403
    (rules_dir / "extra.yaml").write_text("rules:\n  - name: fresh\n    metric: acc\n    condition: '< 0.1'\n")
    answer = client.post("/api/v1/rules/reload", headers=auth(keys["root"]))
    assert answer.status_code == 200 and answer.json()["rules"] == 5
    assert "fresh" in [r["name"] for r in client.get("/api/v1/rules", headers=auth(keys["alice"])).json()["items"]]
    (rules_dir / "extra.yaml").write_text("rules:\n  - name: fresh\n    metric: acc\n    condition: '<< 0.1'\n")
    failed = client.post("/api/v1/rules/reload", headers=auth(keys["root"]))
    assert failed.status_code == 422
    assert failed.json()["detail"]["errors"][0]["line"] == 4 and failed.json()["detail"]["errors"][0]["key"] == "condition"
    assert len(app.state.rules.ruleset) == 5
