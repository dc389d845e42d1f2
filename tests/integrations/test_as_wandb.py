"""ALERTS_AS_WANDB=1: ``import wandb`` and the ``wandb`` distribution resolve to alerts, and only then."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import sys

import pytest

import alerts
from alerts.integrations import as_wandb

PROBE = """
    import importlib.metadata, importlib.util, json, sys

    out = {"alerts_imported_at_start": "alerts" in sys.modules,
           "finders": [repr(f) for f in sys.meta_path if getattr(f, "_alerts_as_wandb", False)]}
    spec = importlib.util.find_spec("wandb")
    out["origin"] = spec.origin if spec else None
    try:
        out["version"] = importlib.metadata.version("wandb")
    except importlib.metadata.PackageNotFoundError:
        out["version"] = None
    if spec is not None:
        import wandb
        out["real"] = getattr(wandb, "REAL", False)
    print(json.dumps(out))
"""


@pytest.fixture
def real_wandb(tmp_path):
    """A folder holding a package ``wandb`` and its distribution metadata (version 0.30.9), standing
    for a real wandb installed beside alerts."""
    folder = tmp_path / "real-wandb"
    (folder / "wandb").mkdir(parents=True)
    (folder / "wandb" / "__init__.py").write_text("REAL = True\n__version__ = '0.30.9'\n")
    (folder / "wandb-0.30.9.dist-info").mkdir()
    (folder / "wandb-0.30.9.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: wandb\nVersion: 0.30.9\n")
    return folder


def probe(wandb_script, env) -> dict:
    result = wandb_script(PROBE, env=env)
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("switch", [None, "0", "true"])
def test_without_the_switch_a_real_wandb_is_untouched(wandb_script, real_wandb, switch):
    from conftest import REPO

    env = {"PYTHONPATH": f"{REPO}:{real_wandb}", "ALERTS_AS_WANDB": switch}
    if switch is None:
        env["ALERTS_AS_WANDB"] = ""
    seen = probe(wandb_script, env)
    assert seen["finders"] == [] and not seen["alerts_imported_at_start"]
    assert seen["origin"] == str(real_wandb / "wandb" / "__init__.py")
    assert seen["version"] == "0.30.9" and seen["real"] is True


def test_with_the_switch_wandb_and_its_metadata_are_alerts_and_start_up_stays_light(wandb_script, real_wandb):
    from conftest import REPO

    seen = probe(wandb_script, {"PYTHONPATH": f"{REPO}:{real_wandb}"})
    assert len(seen["finders"]) == 1
    assert seen["origin"] == str(as_wandb.STANDIN_DIR / "__init__.py")  # the real one is shadowed
    assert seen["version"] == as_wandb.WANDB_VERSION and seen["real"] is False
    assert not seen["alerts_imported_at_start"]  # alerts is imported by `import wandb`, not before


def test_what_the_frameworks_touch_works_and_the_run_is_stored(wandb_script, tmp_path):
    result = wandb_script("""
        import warnings
        import wandb
        from wandb.sdk.lib import RunDisabled
        from wandb.sdk.lib.config_util import ConfigError
        from wandb.wandb_run import Run
        import wandb.sdk.wandb_run

        assert wandb.sdk.wandb_run.Run is Run and hasattr(wandb, "run") and wandb.run is None
        assert issubclass(ConfigError, Exception)
        wandb.require("service")
        wandb.termwarn("said once", repeat=False)
        wandb.termwarn("said once", repeat=False)
        run = wandb.init(project="as-wandb", name="surface", dir=".", config={"lr": 0.1})
        assert wandb.run is run and isinstance(run, Run) and not isinstance(run, RunDisabled)
        run._label(code="transformers_trainer")
        wandb.config.update({"batch": 8}, allow_val_change=True)
        wandb.define_metric("*", step_metric="train/global_step", step_sync=True)
        for step in range(3):
            wandb.log({"loss": 1.0 / (step + 1), "train/global_step": step})
        artifact = wandb.Artifact(name="model-x", type="model", metadata={"a": 1})
        with artifact.new_file("arch.txt", mode="w") as handle:
            handle.write("Linear")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            wandb.log_artifact(artifact, aliases=["final"])
        files = getattr(artifact, "files", None)
        print("artifact:", sorted(files) if isinstance(files, dict) else files, [str(w.message) for w in caught])
        print("url:", run.url)
        wandb.finish()
        assert wandb.run is None
    """)
    assert result.stderr.count("said once") == 1
    if not hasattr(alerts, "Artifact"):  # until alerts stores artifacts, the stand-in's say they are not kept
        assert "artifact: ['arch.txt'] [\"alerts: artifacts are not stored yet; log_artifact('model-x') was ignored" \
            in result.stdout
    assert not list(tmp_path.glob("*.db"))  # dir="." (Lightning's default) did not move the store
    (run,) = alerts.Api().runs("as-wandb")
    assert (run.name, run.state, run.config) == ("surface", "finished", {"lr": 0.1, "batch": 8})
    assert [(row["_step"], row["loss"]) for row in run.history(pandas=False)] == [(0, 1.0), (1, 0.5), (2, 1 / 3)]


def test_install_and_uninstall_in_a_running_interpreter():
    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("a wandb is installed here: this test needs an interpreter without one")
    try:
        as_wandb.install()
        as_wandb.install()  # idempotent
        assert sum(bool(getattr(f, as_wandb.MARKER, False)) for f in sys.meta_path) == 1
        assert importlib.util.find_spec("wandb").origin == str(as_wandb.STANDIN_DIR / "__init__.py")
        assert importlib.metadata.version("wandb") == as_wandb.WANDB_VERSION
        import wandb

        assert wandb.init is not alerts.init and wandb.Run is alerts.Run and wandb.run is alerts.run
    finally:
        as_wandb.uninstall()
    assert not as_wandb.installed() and "wandb" not in sys.modules
    assert importlib.util.find_spec("wandb") is None
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.version("wandb")
