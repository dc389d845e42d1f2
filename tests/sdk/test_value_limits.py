"""Values that would recurse without end: self-referencing or very deep dicts and lists in ``log()``,
``config`` and ``summary`` are skipped with a warning naming the key; they never raise into the
training loop, and never keep the run's end from being stored."""

from __future__ import annotations

import warnings

import pytest

import alerts as wandb
from alerts.rules.templates import MAX_TEXT_CHARS, MAX_TITLE_CHARS
from alerts.sdk.convert import MAX_DEPTH, MAX_ITEMS


def self_dict() -> dict:
    value = {"a": 1}
    value["self"] = value
    return value


def self_list() -> list:
    value = [1]
    value.append(value)
    return value


def deep_dict(levels: int) -> dict:
    top = current = {}
    for _ in range(levels - 1):
        current["x"] = {}
        current = current["x"]
    current["leaf"] = 1
    return top


def deep_list(levels: int) -> list:
    top = current = []
    for _ in range(levels - 1):
        inner: list = []
        current.append(inner)
        current = inner
    current.append(1)
    return top


def stored(run):
    return wandb.Api().run(run.id)


@pytest.mark.parametrize("bad, problem", [
    (self_dict(), "contains itself"),
    (self_list(), "contains itself"),
    (deep_dict(5000), f"nested more than {MAX_DEPTH} levels"),
    (deep_list(5000), f"nested more than {MAX_DEPTH} levels"),
    ([[0] * 10_000] * 100, f"more than {MAX_ITEMS} values"),  # small in memory, 10^6 values to store
], ids=["self-dict", "self-list", "deep-dict", "deep-list", "shared-lists"])
def test_log_skips_a_value_that_recurses_and_keeps_the_row(bad, problem):
    run = wandb.init(project="p")
    with pytest.warns(wandb.AlertsWarning, match=f"skipped key 'bad': it.*{problem}"):
        wandb.log({"loss": 0.5, "bad": bad, "nested": {"ok": 2}})
    wandb.log({"loss": 0.25})
    wandb.finish()
    rows = stored(run).history(pandas=False)
    assert [r["loss"] for r in rows] == [0.5, 0.25]
    assert rows[0]["nested/ok"] == 2 and not any(k.startswith("bad") for r in rows for k in r)
    assert stored(run).state == "finished"


def test_a_value_nested_up_to_the_limit_is_stored():
    run = wandb.init(project="p")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wandb.log({"d": deep_dict(MAX_DEPTH), "l": deep_list(MAX_DEPTH)})
    wandb.finish()
    (row,) = stored(run).history(pandas=False)
    assert row["d/" + "x/" * (MAX_DEPTH - 1) + "leaf"] == 1
    inner = row["l"]
    for _ in range(MAX_DEPTH - 1):
        (inner,) = inner
    assert inner == [1]


def test_init_config_that_contains_itself_skips_that_key():
    with pytest.warns(wandb.AlertsWarning, match="config skipped key 'self': it contains itself"):
        run = wandb.init(project="p", config=self_dict())
    assert run.config.a == 1 and "self" not in run.config
    wandb.finish()
    assert stored(run).config == {"a": 1}


def test_config_and_summary_changes_that_recurse_are_skipped_and_the_run_ends():
    run = wandb.init(project="p", config={"lr": 0.1})
    with pytest.warns(wandb.AlertsWarning, match="config skipped key 'loop'"):
        wandb.config.update({"loop": self_dict(), "epochs": 3})
    with pytest.warns(wandb.AlertsWarning, match="config skipped key 'deep'"):
        wandb.config["deep"] = deep_dict(5000)
    with pytest.warns(wandb.AlertsWarning, match="summary skipped key 'loop'"):
        wandb.summary["loop"] = self_list()
    with pytest.warns(wandb.AlertsWarning, match="summary skipped key 'deep'"):
        wandb.summary.update({"deep": deep_list(5000), "best": 0.9})
    wandb.log({"loss": 0.5})
    wandb.finish()
    record = stored(run)
    assert record.state == "finished"
    assert record.config == {"lr": 0.1, "epochs": 3}
    assert record.summary["best"] == 0.9 and record.summary["loss"] == 0.5
    assert "loop" not in record.summary and "deep" not in record.summary


def test_a_cycle_made_after_the_value_was_set_is_stored_as_a_placeholder():
    """A dict changed in place after it was set is not seen by the check: the store cuts the cycle
    (and a branch too deep) rather than losing the run's end."""
    run = wandb.init(project="p")
    wandb.summary["s"] = {"a": 1}
    wandb.summary["s"]["me"] = wandb.summary["s"]
    wandb.summary["d"] = {}
    wandb.summary["d"]["x"] = deep_dict(5000)
    wandb.finish()
    record = stored(run)
    assert record.state == "finished"
    assert record.summary["s"]["a"] == 1 and record.summary["s"]["me"] == "<not stored: refers to itself>"
    inner = record.summary["d"]  # the summary is level 0 and "d" level 1: the 99th "x" is cut
    for _ in range(MAX_DEPTH - 1):
        inner = inner["x"]
    assert inner == f"<not stored: nested deeper than {MAX_DEPTH} levels>"


def test_alert_cuts_a_long_title_and_text_and_keeps_long_titles_apart(capsys):
    """alert()'s title and text are cut to 250 and 3000 characters where they are stored and shown;
    the suppression window still compares full titles, so titles that differ only after the cut are
    two alerts, and a repeat of one long title is suppressed."""
    run = wandb.init(project="p", name="r1")
    head = "x" * 300
    wandb.alert(title=head + " first", text="y" * 1_000_000)
    wandb.alert(title=head + " second", text="short")
    wandb.alert(title=head + " first", text="again")
    wandb.finish()
    alerts = wandb.Api().run(run.id).alerts()
    assert [a["outcome"] for a in alerts] == ["notified", "notified", "suppressed"]
    cut = "x" * (MAX_TITLE_CHARS - 1) + "…"
    assert [a["title"] for a in alerts] == [cut, cut, cut]
    assert len(alerts[0]["text"]) == MAX_TEXT_CHARS and alerts[0]["text"].endswith("y…")
    assert alerts[1]["text"] == "short"
    assert max(len(line) for line in capsys.readouterr().err.splitlines()) < MAX_TITLE_CHARS + MAX_TEXT_CHARS + 100


@pytest.mark.parametrize("bad", [self_list(), deep_list(5000)], ids=["self-list", "deep-list"])
def test_a_table_cell_that_recurses_is_left_empty_with_a_warning(bad):
    """Table.add_data and Table(data=...) raised RecursionError into the script (the probe)."""
    run = wandb.init(project="p")
    with pytest.warns(wandb.AlertsWarning, match="a table cell was not stored"):
        table = wandb.Table(columns=["c", "n"], data=[[bad, 1]])
    with pytest.warns(wandb.AlertsWarning, match="a table cell was not stored"):
        table.add_data(bad, 2)
    wandb.log({"t": table})
    run.finish()
    loaded = wandb.Api().run(run.id).load_table("t")
    assert loaded["data"] == [[None, 1], [None, 2]]
