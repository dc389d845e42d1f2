"""The SDK's remote mode against a fake server that keeps to the ingest contract: what arrives, in
which order, through outages, lost answers, timeouts, and what is left in the spool."""

from __future__ import annotations

import json
import logging
import math
import warnings

import pytest

import alerts
from alerts.errors import AlertsWarning, AuthenticationError, UsageError
from alerts.sdk import ingest, remote
from remote.remote_helpers import KEY, retry_now, spooled, wait_until, writer_of


def test_a_run_reaches_the_server_whole(online, store_dir):
    fake = online
    run = alerts.init(project="vision", config={"lr": 0.1}, tags=["baseline"], group="sweep-1")
    for step in range(25):
        alerts.log({"loss": 1.0 / (step + 1), "train": {"acc": step / 25}})
    alerts.log({"loss": float("nan")})
    alerts.alert("Low accuracy", "acc below 0.3", level="WARN")
    alerts.alert("Low accuracy", "again")  # within wait_duration: suppressed, still recorded
    run.summary["best_acc"] = 0.9
    run.config.update({"batch_size": 32})
    alerts.finish()

    stored = fake.runs[run.id]
    assert stored.created["project"] == "vision" and stored.created["config"] == {"lr": 0.1}
    assert stored.created["tags"] == ["baseline"] and stored.created["group"] == "sweep-1"
    assert run.name == stored.name  # the server named it
    assert [row["step"] for row in stored.rows] == list(range(26))
    assert stored.rows[3]["values"]["train/acc"] == 3 / 25
    assert math.isnan(stored.rows[25]["values"]["loss"])
    assert [(a["title"], a["level"], a["suppressed"] is not None) for a in stored.alerts] == [
        ("Low accuracy", "WARN", False), ("Low accuracy", "INFO", True)]
    assert "wait_duration" in stored.alerts[1]["suppressed"]
    assert stored.config == {"lr": 0.1, "batch_size": 32}
    assert stored.summary["best_acc"] == 0.9
    assert stored.state == "finished" and len(stored.finishes) == 1
    assert all(stored_ for _, stored_ in stored.seqs)  # nothing sent twice
    assert [seq for seq, _ in stored.seqs] == sorted({seq for seq, _ in stored.seqs})
    assert not (store_dir / "spool").exists() or not any((store_dir / "spool").iterdir())
    assert not (store_dir / "alerts.db").exists()  # nothing went to an embedded store


def test_log_never_waits_for_the_server(online):
    fake = online
    release = fake.hold("batches")  # the server takes batches but does not answer
    run = alerts.init(project="p")
    writer = writer_of(run)
    for step in range(20_000):
        alerts.log({"loss": 1.0})
        if step == 100:
            writer.wake()
    # Every call returned while the server sat on the first batch (had log() waited, this test
    # would hang until its timeout).
    assert not release.is_set()
    release.set()
    alerts.finish()
    assert fake.steps(run.id) == list(range(20_000))


def test_an_outage_spools_to_disk_and_everything_arrives_in_order_once(online, clock, store_dir):
    fake = online
    run = alerts.init(project="p")
    for step in range(100):
        alerts.log({"loss": float(step)})
    assert writer_of(run).flush(30)
    fake.stop()
    for step in range(100, 250):
        alerts.log({"loss": float(step)})
    alerts.alert("during the outage", "kept")
    writer_of(run).wake()
    folder = store_dir / "spool" / run.id
    wait_until(lambda: any(".batch." in name for name in spooled(folder)), what="batches spooled")
    on_disk = [json.loads((folder / name).read_bytes()) for name in spooled(folder)]
    assert sum(len(body.get("rows", [])) for body in on_disk) == 150  # on disk, not in memory
    assert any(body.get("alerts") for body in on_disk)

    fake.start()
    retry_now(run, clock)
    alerts.finish()
    stored = fake.runs[run.id]
    assert fake.steps(run.id) == list(range(250))
    assert [a["title"] for a in stored.alerts] == ["during the outage"]
    assert stored.state == "finished"
    assert not folder.exists()  # replayed and removed


def test_a_batch_whose_answer_is_lost_is_stored_once(online, clock):
    fake = online
    run = alerts.init(project="p")
    fake.fail_next("batches", 500, after_store=True)  # stored, then a 500: the client cannot know
    for step in range(10):
        alerts.log({"loss": float(step)})
    writer = writer_of(run)
    writer.wake()
    wait_until(lambda: writer.down_reason, what="the 500 seen")
    retry_now(run, clock)
    alerts.finish()
    stored = fake.runs[run.id]
    assert fake.steps(run.id) == list(range(10))
    first_seq = stored.seqs[0][0]
    assert stored.seqs[:2] == [(first_seq, True), (first_seq, False)]  # the replay: stored=false


def test_a_timeout_is_retried_with_the_same_seq(online, clock, monkeypatch):
    fake = online
    monkeypatch.setattr(ingest, "READ_TIMEOUT", 0.3)
    run = alerts.init(project="p")
    release = fake.hold("batches")
    alerts.log({"loss": 1.0})
    writer = writer_of(run)
    writer.wake()
    wait_until(lambda: writer.down_reason and "in time" in writer.down_reason, what="the timeout")
    release.set()
    del fake._holds["batches"]
    retry_now(run, clock)
    alerts.finish()
    stored = fake.runs[run.id]
    assert fake.steps(run.id) == [0]
    assert [flag for _, flag in stored.seqs] == [True, False]


def test_a_server_down_at_init_gets_the_run_created_first_when_back(online, clock):
    fake = online
    fake.stop()
    run = alerts.init(project="p", config={"lr": 1})  # does not raise: the run starts locally
    assert run.id and run.name
    for step in range(5):
        alerts.log({"loss": float(step)})
    alerts.alert("early", "before the server was up")
    fake.start()
    retry_now(run, clock)
    alerts.finish()
    stored = fake.runs[run.id]
    assert stored.name == run.name and stored.config == {"lr": 1}
    assert fake.steps(run.id) == list(range(5))
    assert [a["title"] for a in stored.alerts] == ["early"]
    paths = [path for method, path, status in fake.requests if status < 300]
    assert paths.index("/api/v1/runs") < paths.index(f"/api/v1/runs/{run.id}/batches")


def test_a_run_resumed_while_the_server_is_down_is_numbered_after_what_it_stored(online, clock):
    fake = online
    first = alerts.init(project="p", id="resumable")
    for step in range(10):
        alerts.log({"loss": float(step)})
        assert writer_of(first).flush(30)  # a batch each: the server's last seq is 10
    first.finish()
    last_seq = fake.runs["resumable"].last_seq
    remote.close_all(timeout=1)  # the next process starts afresh

    fake.stop()
    second = alerts.init(project="p", id="resumable", resume="allow")
    for step in range(10, 20):
        alerts.log({"loss": float(step)}, step=step)
    fake.start()
    retry_now(second, clock)
    second.finish()
    stored = fake.runs["resumable"]
    # Had the second process numbered its batches from 1, the server would have taken them for
    # replays of the first's and stored none.
    assert fake.steps("resumable") == list(range(20))
    assert all(flag for _, flag in stored.seqs) and stored.seqs[-1][0] > last_seq
    assert stored.creates == 2 and stored.state == "finished"


def test_rows_the_server_drops_as_old_steps_are_reported(online, clock, caplog):
    fake = online
    first = alerts.init(project="p", id="again")
    for step in range(10):
        alerts.log({"loss": float(step)})
    first.finish()
    remote.close_all(timeout=1)
    fake.stop()
    second = alerts.init(project="p", id="again", resume="allow")  # cannot learn the last step
    for step in range(5):
        alerts.log({"loss": float(step)})
    fake.start()
    retry_now(second, clock)
    with caplog.at_level(logging.WARNING, logger="alerts"):
        second.finish()
    assert fake.steps("again") == list(range(10))
    assert any("did not store 5 rows" in r.getMessage() for r in caplog.records)


def test_finish_while_down_says_what_is_left_and_the_next_run_sends_it(online, clock, store_dir, caplog):
    fake = online
    run = alerts.init(project="p")
    for step in range(30):
        alerts.log({"loss": float(step)})
    assert writer_of(run).flush(30)
    fake.stop()
    for step in range(30, 60):
        alerts.log({"loss": float(step)})
    with caplog.at_level(logging.WARNING, logger="alerts"):
        run.finish(timeout=1)
    folder = store_dir / "spool" / run.id
    message = next(r.getMessage() for r in caplog.records if "not acknowledged" in r.getMessage())
    assert "30 history rows" in message and "the run's end" in message and str(folder) in message
    assert any(".finish." in name for name in spooled(folder))
    remote.close_all(timeout=1)  # this process is done with it: as if it had exited

    fake.start()
    later = alerts.init(project="p")  # another run in the same folder replays what was left
    later.finish()
    stored = fake.runs[run.id]
    assert fake.steps(run.id) == list(range(60)) and stored.state == "finished"
    assert not folder.exists()


def test_the_spool_keeps_within_its_budget_by_dropping_the_oldest_rows(online, clock, store_dir, monkeypatch,
                                                                       caplog):
    fake = online
    monkeypatch.setenv("ALERTS_SPOOL_MAX_BYTES", "60000")
    fake.stop()
    run = alerts.init(project="p")
    writer = writer_of(run)
    with caplog.at_level(logging.WARNING, logger="alerts"):
        for round_ in range(10):
            for i in range(200):
                alerts.log({"loss": float(round_ * 200 + i), "acc": 0.5, "lr": 0.001})
            alerts.alert(f"round {round_}", "kept whatever the budget")
            assert writer.commit_now(30)  # on disk
    folder = store_dir / "spool" / run.id
    assert sum((folder / name).stat().st_size for name in spooled(folder)) <= 60_000
    assert writer.dropped_rows > 0
    assert any("dropped" in r.getMessage() and "oldest history rows" in r.getMessage() for r in caplog.records)

    fake.start()
    retry_now(run, clock)
    alerts.finish()
    steps = fake.steps(run.id)
    assert steps == list(range(2000 - len(steps), 2000))  # the newest survive, in order
    assert len(steps) == 2000 - writer.dropped_rows
    assert [a["title"] for a in fake.runs[run.id].alerts] == [f"round {i}" for i in range(10)]


def test_a_refused_batch_is_dropped_with_the_servers_reason(online, caplog):
    fake = online
    run = alerts.init(project="p")
    fake.fail_next("batches", 422)
    alerts.log({"loss": 1.0})
    with caplog.at_level(logging.ERROR, logger="alerts"):
        assert writer_of(run).flush(30)
    assert any("refused for good" in r.getMessage() and "failing on purpose" in r.getMessage()
               for r in caplog.records)
    alerts.log({"loss": 2.0})
    alerts.finish()
    assert fake.steps(run.id) == [1]  # the refused one is gone, the next arrives


def test_init_refusals_are_errors_as_in_the_embedded_store(online, monkeypatch):
    fake = online
    alerts.init(project="p", id="taken").finish()
    with pytest.raises(UsageError, match="resume='allow'"):
        alerts.init(project="p", id="taken")
    with pytest.raises(UsageError, match="no run with id 'ghost'"):
        alerts.init(project="p", id="ghost", resume="must")
    monkeypatch.setenv("ALERTS_API_KEY", "ak_wrong")
    with pytest.raises(AuthenticationError):
        alerts.init(project="p")
    assert set(fake.runs) == {"taken"}


def test_an_idle_run_sends_heartbeats(online, clock):
    fake = online
    run = alerts.init(project="p")
    assert writer_of(run).flush(30)
    clock.advance(11)
    writer_of(run).wake()
    fake.wait_for(lambda: fake.runs[run.id].heartbeats >= 1, what="a heartbeat")
    alerts.finish()


def test_rules_are_left_to_the_server(online, tmp_path, monkeypatch):
    fake = online
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text("rules:\n  - name: any-loss\n    metric: loss\n    condition: '> 0'\n")
    monkeypatch.setenv("ALERTS_RULES", str(rules))
    run = alerts.init(project="p")
    alerts.log({"loss": 5.0})
    alerts.finish()
    assert run._rules is None
    assert fake.runs[run.id].alerts == []  # the client raised nothing itself


def test_media_are_left_out_with_one_warning(online):
    np = pytest.importorskip("numpy")
    fake = online
    run = alerts.init(project="p")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(3):
            alerts.log({"img": alerts.Image(np.zeros((4, 4, 3), dtype=np.uint8)), "loss": float(step)})
    alerts.finish()
    assert len([w for w in caught if issubclass(w.category, AlertsWarning)]) == 1
    assert [row["values"].keys() - {"_runtime"} for row in fake.runs[run.id].rows] == [{"loss"}] * 3


@pytest.mark.parametrize("status, verdict", [
    (200, None), (201, None), (204, None), (401, "auth"), (403, "auth"), (400, "reject"), (404, "reject"),
    (408, "retry"), (409, "reject"), (413, "reject"), (422, "reject"), (425, "retry"), (429, "retry"),
    (500, "retry"), (502, "retry"), (503, "retry"), (504, "retry"),
])
def test_what_each_status_means_for_the_sender(status, verdict):
    assert ingest.verdict_for(status) == verdict


def test_backoff_doubles_with_jitter_up_to_its_cap_and_honours_retry_after():
    assert [remote.backoff(n, None, rand=lambda: 0.5) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert remote.backoff(20, None, rand=lambda: 0.5) == remote.BACKOFF_MAX
    assert remote.backoff(1, None, rand=lambda: 0.0) == 0.375 and remote.backoff(1, None, rand=lambda: 1.0) == 0.625
    assert remote.backoff(1, 7.0) == 7.0 and remote.backoff(1, 600.0) == remote.BACKOFF_MAX
    assert remote.backoff(5, None, cap=1.0, rand=lambda: 0.5) == 1.0


def test_a_script_that_raises_ends_its_remote_run_failed_with_the_traceback(fake, run_script):
    done = run_script("""
        import alerts
        alerts.init(project="p", id="crashy")
        for step in range(3):
            alerts.log({"loss": float(step)})
        raise RuntimeError("boom at step 3")
    """, env={"ALERTS_URL": fake.url, "ALERTS_API_KEY": KEY})
    assert done.returncode == 1 and "boom at step 3" in done.stderr
    stored = fake.runs["crashy"]
    assert fake.steps("crashy") == [0, 1, 2]
    assert stored.state == "failed" and stored.finishes[0]["error_type"] == "RuntimeError"
    assert "boom at step 3" in stored.finishes[0]["error_text"]


def test_a_script_that_never_calls_finish_is_finished_at_exit(fake, run_script):
    done = run_script("""
        import sys
        import alerts
        alerts.init(project="p", id="no-finish")
        alerts.log({"loss": 1.0})
        alerts.alert("last words", "sent at exit")
        print("server code loaded:", sorted(m for m in sys.modules if m.startswith(("alerts.server", "fastapi"))))
    """, env={"ALERTS_URL": fake.url, "ALERTS_API_KEY": KEY}, check=True)
    assert "server code loaded: []" in done.stdout  # the SDK speaks HTTP only
    stored = fake.runs["no-finish"]
    assert stored.state == "finished" and fake.steps("no-finish") == [0]
    assert [a["title"] for a in stored.alerts] == ["last words"]


def test_a_run_ended_while_the_server_is_down_can_be_resumed_in_the_same_process(online, clock):
    fake = online
    first = alerts.init(project="p", id="twice")
    alerts.log({"loss": 1.0})
    fake.stop()
    alerts.log({"loss": 2.0})
    first.finish(timeout=1)  # its end waits in the spool
    second = alerts.init(project="p", id="twice", resume="allow")
    alerts.log({"loss": 3.0}, step=2)
    with pytest.raises(UsageError):
        alerts.init(project="p", id="twice", resume="allow", reinit="create_new")  # one writer per run
    fake.start()
    retry_now(second, clock)
    second.finish()
    stored = fake.runs["twice"]
    assert fake.steps("twice") == [0, 1, 2] and stored.state == "finished"
    assert [f["state"] for f in stored.finishes] == ["finished", "finished"] and stored.creates == 2
