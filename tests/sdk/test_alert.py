"""``alert()`` table-tested against wandb's semantics, and its suppression window on a fake clock."""

from __future__ import annotations

from datetime import timedelta

import pytest

import alerts as wandb
from alerts import clock
from alerts.sdk.alerting import AlertThrottle, check_level, check_wait_duration


@pytest.mark.parametrize("level, expected", [
    (None, "INFO"), ("INFO", "INFO"), ("WARN", "WARN"), ("ERROR", "ERROR"),
    (wandb.AlertLevel.INFO, "INFO"), (wandb.AlertLevel.WARN, "WARN"), (wandb.AlertLevel.ERROR, "ERROR"),
])
def test_accepted_levels(level, expected):
    assert check_level(level) == expected


@pytest.mark.parametrize("level", ["info", "warn", "Error", "WARNING", "CRITICAL", 1])
def test_rejected_levels_are_value_errors(level):
    with pytest.raises(ValueError, match="level must be one of 'INFO', 'WARN', or 'ERROR'"):
        check_level(level)


@pytest.mark.parametrize("wait, seconds", [
    (None, 60.0), (0, 60.0), (0.0, 60.0), (timedelta(0), 60.0),  # falsy means the default, as in wandb
    (300, 300.0), (2.5, 2.5), (timedelta(minutes=5), 300.0), (True, 1.0),
])
def test_wait_duration_values(wait, seconds):
    assert check_wait_duration(wait) == seconds


@pytest.mark.parametrize("wait", ["x", "60", [60], object()])
def test_wait_duration_other_types_are_type_errors(wait):
    with pytest.raises(TypeError, match="wait_duration must be an int, float, or datetime.timedelta"):
        check_wait_duration(wait)


def test_through_the_module_function_bad_arguments_raise_before_anything_is_recorded():
    run = wandb.init(project="p")
    with pytest.raises(ValueError):
        wandb.alert(title="t", text="x", level="info")
    with pytest.raises(TypeError):
        wandb.alert(title="t", text="x", wait_duration="x")
    wandb.finish()
    assert wandb.Api().run(run.id).alerts() == []


def test_hundred_calls_with_one_title_inside_the_window_notify_once(capsys):
    run = wandb.init(project="p", name="storm")
    results = [wandb.alert(title="Low accuracy", text=f"call {i}") for i in range(100)]
    wandb.finish()
    assert results == [None] * 100
    records = wandb.Api().run(run.id).alerts()
    assert len(records) == 100
    assert [r["outcome"] for r in records].count("notified") == 1
    assert [r["outcome"] for r in records].count("suppressed") == 99
    assert records[0]["outcome"] == "notified" and records[0]["text"] == "call 0"
    assert all("wait_duration 60s" in r["reason"] for r in records[1:])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("alerts:")]
    assert lines == ["alerts: [INFO] Low accuracy: call 0 (run storm in p)"]


def test_window_counts_from_the_last_notification_on_a_stepped_clock(monkeypatch):
    fake = clock.FakeClock()
    monkeypatch.setattr(clock, "now", fake)
    run = wandb.init(project="p")
    outcomes = []
    for advance in (0, 30, 29, 2, 10, 300):  # t = 0, 30, 59, 61, 71, 371
        fake.advance(advance)
        wandb.alert(title="t", text="x")
    wandb.alert(title="other title", text="x")  # titles have their own windows
    wandb.alert(title="t", text="x", wait_duration=timedelta(seconds=1))  # t=371: notified 0 s ago
    fake.advance(1)
    wandb.alert(title="t", text="x", wait_duration=1)
    wandb.finish()
    outcomes = [(r["title"], r["outcome"]) for r in wandb.Api().run(run.id).alerts()]
    assert outcomes == [
        ("t", "notified"), ("t", "suppressed"), ("t", "suppressed"), ("t", "notified"), ("t", "suppressed"),
        ("t", "notified"), ("other title", "notified"), ("t", "suppressed"), ("t", "notified"),
    ]


def test_throttle_is_per_run():
    wandb.init(project="p")
    wandb.alert(title="same", text="x")
    wandb.finish()
    second = wandb.init(project="p")
    wandb.alert(title="same", text="x")
    wandb.finish()
    assert [r["outcome"] for r in wandb.Api().run(second.id).alerts()] == ["notified"]


def test_throttle_pure():
    throttle = AlertThrottle()
    assert throttle.allow("a", 60, now=100.0) == (True, None)
    allowed, reason = throttle.allow("a", 60, now=159.9)
    assert not allowed and "59.9s ago" in reason
    assert throttle.allow("a", 60, now=160.0) == (True, None)


def test_non_ascii_title_and_text_reach_the_console_and_the_store(capsys):
    run = wandb.init(project="pytorch-intro", name="ko")
    wandb.alert(title="낮은 정확도", text="정확도 0.12가\n임계값 0.3 미만입니다", level=wandb.AlertLevel.WARN)
    wandb.finish()
    err = capsys.readouterr().err
    assert "alerts: [WARN] 낮은 정확도: 정확도 0.12가 임계값 0.3 미만입니다 (run ko in pytorch-intro)\n" in err
    (record,) = wandb.Api().run(run.id).alerts()
    assert record["title"] == "낮은 정확도" and record["text"] == "정확도 0.12가\n임계값 0.3 미만입니다"
    assert record["level"] == "WARN" and record["source"] == "alert"


def test_a_failing_channel_never_raises_into_the_script(caplog):
    class Broken:
        name = "broken"

        def send(self, notification):
            raise ConnectionError("down")

    run = wandb.init(project="p")
    run._channel = Broken()
    assert wandb.alert(title="t", text="x") is None
    wandb.finish()
    assert "could not deliver alert 't': down" in caplog.text
    (record,) = wandb.Api().run(run.id).alerts()
    assert (record["outcome"], record["reason"]) == ("failed", "ConnectionError: down")


def test_a_call_that_reached_nobody_does_not_silence_the_next_one():
    class Flaky:
        name = "flaky"
        calls = 0

        def send(self, notification):
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise ConnectionError("down")

    run = wandb.init(project="p")
    run._channel = Flaky()
    wandb.alert(title="t", text="first")
    wandb.alert(title="t", text="second")
    wandb.finish()
    assert [r["outcome"] for r in wandb.Api().run(run.id).alerts()] == ["failed", "notified"]
