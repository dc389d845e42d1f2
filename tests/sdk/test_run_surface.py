"""wandb's run surface beyond log/alert: define_metric, the stored setters, properties, config's rule
for changed values, the WANDB_* variables, where the store goes, and the documented no-ops."""

from __future__ import annotations

import math

import pytest

import alerts as wandb


def stored(run_id):
    return wandb.Api().run(run_id)


def test_define_metric_summaries_and_globs():
    run = wandb.init(project="metrics")
    wandb.define_metric("loss", summary="min")
    wandb.define_metric("acc", summary="max,mean,last")
    wandb.define_metric("val/*", summary="best", goal="maximize")
    wandb.define_metric("noise", summary="none")
    wandb.define_metric("first_seen", summary="first")
    for loss, acc, val, noise in [(3.0, 0.1, 0.5, 1), (1.0, 0.4, 0.9, 2), (math.nan, 0.3, 0.7, 3), (2.0, 0.2, 0.6, 4)]:
        wandb.log({"loss": loss, "acc": acc, "val/acc": val, "noise": noise, "first_seen": noise, "plain": noise})
    wandb.finish()
    summary = stored(run.id).summary
    assert summary["loss"] == {"min": 1.0}  # a NaN is not a minimum
    assert summary["acc"] == {"max": 0.4, "mean": pytest.approx(0.25), "last": 0.2}
    assert summary["val/acc"] == {"best": 0.9}
    assert "noise" not in summary
    assert summary["first_seen"] == {"first": 1}
    assert summary["plain"] == 4  # no definition: the last value, as before
    assert run.summary["loss"] == {"min": 1.0}


def test_define_metric_step_metric_fills_the_axis_and_merges_calls():
    run = wandb.init(project="metrics")
    wandb.define_metric("epoch")
    metric = wandb.define_metric("val/*", step_metric="epoch")
    assert metric.step_metric == "epoch"
    wandb.define_metric("val/*", summary="max")  # merged: the step metric stays
    wandb.log({"epoch": 0, "train/loss": 1.0})
    wandb.log({"val/acc": 0.5})  # no epoch in this row: the last one is added
    wandb.log({"epoch": 1, "train/loss": 0.5})
    wandb.log({"val/acc": 0.7})
    wandb.log({"train/loss": 0.4})  # not a val/ metric: nothing added
    wandb.finish()
    rows = stored(run.id).history(pandas=False)
    assert [(r.get("epoch"), r.get("val/acc")) for r in rows] == [(0, None), (0, 0.5), (1, None), (1, 0.7), (None, None)]
    assert stored(run.id).summary["val/acc"] == {"max": 0.7}
    with pytest.raises(wandb.Error, match="summary op"):
        wandb.init(project="metrics").define_metric("x", summary="median")
    wandb.finish()


def test_name_tags_and_notes_set_on_the_run_are_stored(store_dir, tmp_path, monkeypatch):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(
        "rules:\n  - name: tagged\n    metric: loss\n    condition: '> 1'\n    runs: {tags: [watched]}\n"
        "    title: '{run.name} {value}'\n")
    monkeypatch.setenv("ALERTS_RULES", str(rules))
    run = wandb.init(project="ids", name="before", tags=["a"])
    wandb.log({"loss": 5.0})  # not tagged "watched" yet: no alert
    run.name = "after"
    run.tags = run.tags + ("watched",)
    run.notes = "changed in flight"
    wandb.log({"loss": 6.0})  # now the rule selects the run, and its title has the new name
    wandb.finish()
    record = stored(run.id)
    assert (record.name, record.tags, record.notes) == ("after", ["a", "watched"], "changed in flight")
    assert [a["title"] for a in record.alerts()] == ["after 6.0"]
    with pytest.raises(TypeError):
        run.tags = "one-string"


def test_properties_join_and_sweep_id(monkeypatch):
    monkeypatch.setenv("WANDB_SWEEP_ID", "sw123")
    run = wandb.init(project="props", config={"lr": 0.1})
    assert run.url is None and run.project_url is None and run.sweep_url is None
    assert run.sweep_id == "sw123"
    assert run.offline is False and run.resumed is False and run.starting_step == 0
    assert run.start_time > 0 and run.sync_dir == run.dir
    assert run.config_static.lr == 0.1
    with pytest.raises(AttributeError):
        run.config_static.lr = 0.2
    assert "props" in run.to_html() and run.display() is False
    wandb.join()
    assert run.finished and stored(run.id).state == "finished"
    monkeypatch.setenv("ALERTS_SERVER_URL", "https://alerts.example")
    run = wandb.init(project="props")
    assert run.url == f"https://alerts.example/runs/{run.id}"
    wandb.finish()


def test_config_changes_follow_wandbs_rule():
    run = wandb.init(project="cfg", config={"lr": 0.1, "layers": [1, 2]})
    wandb.config.update({"lr": 0.1, "layers": [1, 2]})  # the same values: fine
    with pytest.raises(wandb.Error, match='change value of key "lr" from 0.1 to 0.2'):
        wandb.config.update({"lr": 0.2, "new": 1})
    assert "new" not in wandb.config  # refused whole
    with pytest.raises(wandb.Error, match="allow_val_change"):
        wandb.config.lr = 0.3
    wandb.config.update({"lr": 0.2}, allow_val_change=True)
    wandb.config["batch"] = 32  # a new key: fine
    wandb.finish()
    assert stored(run.id).config == {"lr": 0.2, "layers": [1, 2], "batch": 32}
    wandb.init(project="cfg", config={"lr": 0.1}, allow_val_change=True)
    wandb.config.lr = 0.5
    assert wandb.config.lr == 0.5
    wandb.finish()


def test_wandb_environment_variables_name_the_run(monkeypatch):
    for name, value in {"WANDB_PROJECT": "envproj", "WANDB_NAME": "env-name", "WANDB_RUN_GROUP": "grp",
                        "WANDB_JOB_TYPE": "eval", "WANDB_TAGS": "a, b,,c", "WANDB_NOTES": "from env",
                        "WANDB_RUN_ID": "envrun1"}.items():
        monkeypatch.setenv(name, value)
    wandb.init()
    wandb.finish()
    record = stored("envrun1")
    assert (record.project, record.name, record.group, record.job_type, record.tags, record.notes) == (
        "envproj", "env-name", "grp", "eval", ["a", "b", "c"], "from env")
    monkeypatch.setenv("WANDB_RESUME", "allow")
    again = wandb.init(name="explicit", tags=["x"])  # arguments win over the environment
    assert again.id == "envrun1" and again.resumed and again.name == "explicit" and again.tags == ("x",)
    wandb.finish()
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb.init().disabled
    wandb.finish()


def test_settings_fill_what_init_is_not_given():
    settings = wandb.Settings(run_name="from-settings", run_group="g", start_method="thread", _disable_stats=True)
    assert settings.start_method == "thread" and settings.silent is None
    run = wandb.init(project="settings", settings=settings)
    assert run.settings is settings
    wandb.finish()
    assert (stored(run.id).name, stored(run.id).group) == ("from-settings", "g")
    assert wandb.init(project="settings", settings={"mode": "disabled"}).disabled
    wandb.finish()


def test_alerts_dir_is_the_one_store_whatever_dir_init_is_given(store_dir, tmp_path, monkeypatch):
    outputs = tmp_path / "outputs"
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-dir"))
    first = wandb.init(project="one", dir=str(outputs / "exp1"))
    wandb.finish()
    second = wandb.init(project="one", dir=str(outputs / "exp2"))
    wandb.finish()
    assert [r.id for r in wandb.Api().runs("one")] == [first.id, second.id]
    assert (store_dir / "alerts.db").exists()
    assert not outputs.exists() and not (tmp_path / "wandb-dir").exists()
    assert first.dir.startswith(str(store_dir))


def test_term_functions_print_on_stderr(capsys):
    wandb.termlog("hello")
    wandb.termwarn("careful")
    wandb.termerror("broken")
    wandb.termwarn("once", repeat=False)
    wandb.termwarn("once", repeat=False)
    err = capsys.readouterr().err
    assert err.splitlines() == ["alerts: hello", "alerts: WARNING careful", "alerts: ERROR broken",
                                "alerts: WARNING once"]


def test_documented_no_ops_warn_and_return():
    from alerts.sdk import noops

    noops.forget()
    with pytest.warns(wandb.AlertsWarning, match="sweep server"):
        sweep_id = wandb.sweep({"method": "grid"})
    called = []
    with pytest.warns(wandb.AlertsWarning, match="not called"):
        wandb.agent(sweep_id, function=lambda: called.append(1), count=2)
    assert called == []
    run = wandb.init(project="noops")
    with pytest.warns(wandb.AlertsWarning, match="gradient"):
        wandb.watch(object())
    table = wandb.Table(columns=["x"], data=[[1]])
    with pytest.warns(wandb.AlertsWarning, match="custom charts"):
        assert wandb.plot_table("spec", table, {"x": "x"}) is table
    with pytest.warns(wandb.AlertsWarning, match="registry"):
        run.link_artifact(None, "team/registry")
    wandb.unwatch()
    wandb.finish()
