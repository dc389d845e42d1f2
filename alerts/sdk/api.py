"""The module-level functions: ``alerts.init``, ``alerts.log``, ``alerts.alert``, ``alerts.finish``...

As in wandb, ``init()`` sets the package's ``run``, ``config`` and ``summary`` attributes, so that
``import alerts as wandb`` followed by ``wandb.config.lr`` works; ``finish()`` puts them back.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from typing import Any, Iterable, Optional, Sequence

from sqlalchemy.exc import OperationalError

from alerts import clock as _clock
from alerts.channels.console import ConsoleChannel
from alerts.errors import StoreUnavailable, UsageError
from alerts.sdk import claims, crashes, credentials, lifecycle, noops
from alerts.sdk.config import PreInit, config_dict
from alerts.sdk.metrics import Metric
from alerts.sdk.runsettings import from_settings
from alerts.sdk.names import check_project, check_run_id, check_tags, check_text, new_run_id, new_run_name
from alerts.sdk.run import Run
from alerts.sdk.worker import NEW_RUN, writer_for
from alerts.delivery import embedded as delivery
from alerts.delivery import boost, warm
from alerts.rules.active import active_rules
from alerts.rules.engine import RunRules
from alerts.rules.schema import RunInfo
from alerts.settings import Settings, load_settings
from alerts.store import jsoncodec
from alerts.store.db import SQLITE_BUSY_TIMEOUT_MS, open_store
from alerts.logredact import redact

logger = logging.getLogger("alerts")

MODES = {"online": "online", "run": "online", "offline": "offline", "dryrun": "offline", "disabled": "disabled"}
DEFAULT_PROJECT = "uncategorized"
# wandb.init() keywords that scripts pass and that have no meaning here: accepted and ignored.
IGNORED_INIT_KEYWORDS = frozenset({
    "save_code", "anonymous", "sync_tensorboard", "monitor_gym", "magic", "force",
    "fork_from", "resume_from", "tensorboard", "config_exclude_keys", "config_include_keys",
})

_current: Optional[Run] = None


def _package():
    return sys.modules["alerts"]


def _set_globals(run: Optional[Run]) -> None:
    global _current
    _current = run
    package = _package()
    package.run = run
    package.config = run.config if run is not None else PreInit("alerts.config")
    package.summary = run.summary if run is not None else PreInit("alerts.summary")


def _on_finish(run: Run) -> None:
    lifecycle.unregister(run)
    if _current is run:
        _set_globals(None)


def _resolve_mode(mode: Optional[str]) -> str:
    raw = mode or os.environ.get("ALERTS_MODE") or os.environ.get("WANDB_MODE") or "online"
    try:
        return MODES[raw]
    except KeyError:
        raise ValueError(f"mode must be one of {sorted(set(MODES))}, not {raw!r}") from None


def init(
    project: Optional[str] = None,
    name: Optional[str] = None,
    config: Any = None,
    tags: Optional[Sequence[str]] = None,
    notes: Optional[str] = None,
    group: Optional[str] = None,
    job_type: Optional[str] = None,
    entity: Optional[str] = None,
    id: Optional[str] = None,
    resume: Any = None,
    dir: Optional[str] = None,
    mode: Optional[str] = None,
    reinit: Any = None,
    settings: Any = None,
    allow_val_change: Optional[bool] = None,
    **kwargs: Any,
) -> Run:
    """Start a run and make it the current one (``alerts.run``), as ``wandb.init``.

    ``mode`` is ``"online"`` (to the server of ``ALERTS_URL``/``ALERTS_API_KEY`` or ``alerts login``
    when there is one, else like offline), ``"offline"`` (the embedded store in ``ALERTS_DIR``) or
    ``"disabled"`` (nothing is stored; every call is a cheap no-op). Each argument left out is taken
    from ``settings`` (an :class:`alerts.Settings` or a dict, with wandb's names: ``run_name``,
    ``run_group``, ...) and then from wandb's environment variables: ``WANDB_PROJECT``,
    ``WANDB_NAME``, ``WANDB_RUN_ID``, ``WANDB_RESUME``, ``WANDB_RUN_GROUP``, ``WANDB_JOB_TYPE``,
    ``WANDB_TAGS`` (comma-separated), ``WANDB_NOTES``, ``WANDB_MODE`` (after ``ALERTS_MODE``).

    ``dir`` (and ``WANDB_DIR``) do not choose the store: scripts set them for their own outputs,
    and every run of a machine goes to one store, ``ALERTS_DIR`` (default ``./.alerts``); set that
    to keep runs apart. ``entity`` (and ``WANDB_ENTITY``) are ignored: runs belong to
    ``ALERTS_USER``, whose channels get their alerts. ``allow_val_change=True`` lets the config's
    values change later (see :class:`~alerts.sdk.config.Config`).

    ``id`` with ``resume="allow"``/``"must"``/``True`` continues an earlier run, unless another live
    process is writing it (:class:`~alerts.errors.RunInUseError`: one writer per run). If a run of
    this process is current, it is returned (``reinit="finish_previous"`` or ``True`` finishes it
    first; ``"create_new"`` starts another beside it); a forked child starts a run of its own.

    Ids, names and the project follow the rules in :mod:`alerts.sdk.names` (an id is 1-64 letters,
    digits, ``-`` or ``_``); one that breaks them is an :class:`~alerts.errors.InvalidArgument`.
    """
    unknown = set(kwargs) - IGNORED_INIT_KEYWORDS
    if unknown:
        raise TypeError(f"init() got unexpected keyword arguments: {', '.join(sorted(unknown))}")
    if _current is not None and not _current.finished and _current._pid == os.getpid():
        if reinit in (None, False, "default", "return_previous"):
            return _current
        if reinit in (True, "finish_previous"):
            _current.finish()
    given = from_settings(settings)
    config_values = _filter_config(config_dict(config), kwargs.get("config_include_keys"),
                                   kwargs.get("config_exclude_keys"))
    env = os.environ
    project = check_project(project or given.get("project") or env.get("WANDB_PROJECT") or DEFAULT_PROJECT)
    id, resume = _run_id_and_resume(id if id is not None else given.get("run_id"),
                                    resume if resume is not None else given.get("resume"))
    name = check_text(name or given.get("run_name") or env.get("WANDB_NAME") or None, "name")
    group = check_text(group or given.get("run_group") or env.get("WANDB_RUN_GROUP") or None, "group")
    job_type = check_text(job_type or given.get("run_job_type") or env.get("WANDB_JOB_TYPE") or None, "job_type")
    notes = check_text(notes or given.get("run_notes") or env.get("WANDB_NOTES") or None, "notes")
    if tags is None:
        tags = given.get("run_tags") or [t.strip() for t in env.get("WANDB_TAGS", "").split(",") if t.strip()]
    tags = check_tags(tags)
    if entity or given.get("entity") or env.get("WANDB_ENTITY"):
        noops.warn_once("entity", "runs belong to ALERTS_USER (the owner whose channels get their alerts)")
    extra = {"mode": None, "sweep_id": env.get("WANDB_SWEEP_ID") or given.get("sweep_id"),
             "settings": settings if settings is not None else _default_settings()}
    resolved_mode = _resolve_mode(mode or given.get("mode"))
    extra["mode"] = resolved_mode
    allow_changes = bool(allow_val_change or given.get("allow_val_change") or "ipykernel" in sys.modules)
    if resolved_mode == "disabled":
        run = Run(id=id or new_run_id(), name=name or "disabled-run", project=project, owner="",
                  config=config_values, group=group, job_type=job_type, tags=tags or (), notes=notes,
                  on_finish=_on_finish, **extra)
        _allow_config_changes(run, allow_changes)
        _set_globals(run)
        return run
    settings = load_settings()  # ALERTS_DIR, never dir=: one store unless the user asks otherwise
    extra["server_url"] = settings.server_url
    server = _server(settings) if resolved_mode == "online" else None
    if server is not None:
        from alerts.sdk.remote_init import start_remote  # httpx and the remote writer: only when used

        run = start_remote(settings, server, project=project, name=name, config=config_values, tags=tags,
                           notes=notes, group=group, job_type=job_type, run_id=id, resume=resume,
                           on_finish=_on_finish, extra=extra)
        _allow_config_changes(run, allow_changes)
        lifecycle.register(run)
        _set_globals(run)
        return run
    try:
        run = _start_embedded(settings, project=project, name=name, config=config_values, tags=tags,
                              notes=notes, group=group, job_type=job_type, run_id=id, resume=resume,
                              extra=extra)
    except OperationalError as exc:  # raised before anything started: nothing to undo
        cause = getattr(exc, "orig", None) or exc
        raise StoreUnavailable(
            f"could not start the run: the store was locked past its busy timeout ({SQLITE_BUSY_TIMEOUT_MS // 1000} s "
            f"on SQLite) or could not be reached ({type(cause).__name__}: {redact(str(cause))})") from None
    _allow_config_changes(run, allow_changes)
    _apply_rules(run, settings)
    _apply_delivery(run, settings)
    run._writer.attach(run)  # from now on the writer keeps its summary and heartbeat current
    lifecycle.register(run)
    _set_globals(run)
    return run


def _default_settings() -> Any:
    from alerts.sdk.runsettings import Settings as RunSettings

    return RunSettings()


def _allow_config_changes(run: Run, allow: bool) -> None:
    if allow:
        object.__setattr__(run.config, "_allow_val_change", True)


def _server(settings: Settings) -> Optional[credentials.Remote]:
    """The server to log to (``ALERTS_URL``/``ALERTS_API_KEY``, else ``alerts login``'s), or None."""
    key = settings.api_key.get_secret_value() if settings.api_key is not None else None
    return credentials.resolve(settings.url, key)


def _run_id_and_resume(run_id: Optional[str], resume: Any) -> tuple[Optional[str], Any]:
    """The run id (``id``, else ``WANDB_RUN_ID``), checked, and ``resume`` (else ``WANDB_RESUME``)."""
    if run_id is not None:
        run_id = check_run_id(run_id)
    elif os.environ.get("WANDB_RUN_ID"):
        run_id = check_run_id(os.environ["WANDB_RUN_ID"], "WANDB_RUN_ID")
    if resume is None and os.environ.get("WANDB_RESUME"):
        resume = os.environ["WANDB_RESUME"]
    return run_id, resume


def _apply_rules(run: Run, settings: Settings) -> None:
    """Load ``ALERTS_RULES`` (once per process) and evaluate it on this run; the writer's tick then
    runs the stalled rules and picks up ``alerts rules reload``."""
    active = active_rules(settings.rules, settings.dir)
    rules = _run_rules(active, run, None)
    if rules is not None and run._resumed:
        rules.restore_firing(run._writer.store.firing_rule_alerts(run.id))
    run.use_rules(rules, active.ruleset)
    # A renamed or re-tagged run: its rules' selectors and templates see the new name and tags.
    run._identity_changed = lambda: run.use_rules(_run_rules(active, run, run._rules), active.ruleset)

    writer = run._writer
    # The first check waits a full interval: never in the first moments of a run, nor in the exit
    # flush of a short one. (At exit, a first-time SQLAlchemy query on this thread exec()s generated
    # source, which makes CPython forget that the process is ending on Ctrl-C: it then exits with
    # 1 instead of dying of SIGINT.)
    last_crash_check = [_clock.now()]
    host = socket.gethostname()

    def tick(now: float, live: list) -> None:
        if active.reload_if_asked():
            for live_run in live:
                live_run.use_rules(_run_rules(active, live_run, live_run._rules), active.ruleset)
        for live_run in live:
            live_run._watch(now)
        if now - last_crash_check[0] >= crashes.CHECK_EVERY and not lifecycle.exiting():
            last_crash_check[0] = now
            crashed = crashes.find_crashed(writer.store, now, host)
            if crashed:
                logger.warning("alerts: run(s) %s crashed (no heartbeat, process gone)",
                               ", ".join(r.name for r in crashed))
                channels = live[0]._channels if live else None
                crashes.raise_for_crashed(crashed, active.ruleset, ConsoleChannel(), channels, now, writer.append)

    run._writer.on_tick = tick


def _apply_delivery(run: Run, settings: Settings) -> None:
    """Send this run's alerts to the channels in ``ALERTS_CHANNELS``, if any are configured."""
    channels = delivery.channels_for(settings)
    if channels is None or not channels.users:
        return
    run.use_delivery(channels)
    relay = None
    writer = run._writer
    if settings.relay:
        relay = delivery.relay_for(writer.store, channels, settings)
        relay.on_idle = boost.end
        writer.on_deliveries = _urgent_wake(relay)
    # The first alert must not wait for delivery to start: prepare it now, and commit the run's row
    # (its INSERT is then compiled too), within WARM_UP_WAIT so that a store locked by another
    # process does not hold init() back for its busy timeout.
    deadline = time.monotonic() + warm.WARM_UP_WAIT
    writer.wake()
    warm.start(writer.store, relay, run.entity).join(warm.WARM_UP_WAIT)
    writer.flush(max(0.0, deadline - time.monotonic()))


def _urgent_wake(relay):
    """What the writer calls after committing outbox rows: the relay is woken, and gets the GIL
    quickly until it is idle again (see :mod:`alerts.delivery.boost`)."""

    def wake() -> None:
        boost.start()
        relay.wake()

    return wake


def _run_rules(active, run: Run, previous: Optional[RunRules]) -> Optional[RunRules]:
    if not len(active.ruleset):
        return None
    info = RunInfo(id=run.id, name=run.name, project=run.project, owner=run.entity, group=run.group,
                   job_type=run.job_type, tags=tuple(run.tags))
    rules = RunRules(active.ruleset.plain_rules, info, start=run._start, previous=previous)
    has_any = rules.metric_rules or rules.stalled_rules or rules.state_rules
    return rules if has_any else None


def _filter_config(values: dict, include: Optional[Iterable[str]], exclude: Optional[Iterable[str]]) -> dict:
    if include:
        values = {k: v for k, v in values.items() if k in set(include)}
    if exclude:
        values = {k: v for k, v in values.items() if k not in set(exclude)}
    return values


def _start_embedded(settings: Settings, *, project: str, name: Optional[str], config: dict, tags: list,
                    notes: Optional[str], group: Optional[str], job_type: Optional[str],
                    run_id: Optional[str], resume: Any, extra: dict) -> Run:
    store = open_store(settings.resolved_database_url())
    writer = writer_for(store, settings.media_dir(), settings.flush_interval)
    now = _clock.now()
    common = dict(project=project, owner=settings.user, group=group, job_type=job_type, tags=tags,
                  notes=notes, dir=str(settings.dir), writer=writer, channel=ConsoleChannel(),
                  on_finish=_on_finish, **extra)
    if run_id is not None and store.get_run(run_id) is not None:
        return _resume_run(store, run_id, resume, name, config, now, common)
    if resume == "must":
        raise UsageError(f"resume='must' but there is no run with id {run_id!r}")
    row = {
        "id": run_id or new_run_id(), "owner": settings.user, "project": project,
        "name": name or new_run_name(store.count_runs(project) + 1), "group": group,
        "job_type": job_type, "tags": jsoncodec.dumps(tags), "notes": notes, "config": jsoncodec.dumps(config),
        "summary": "{}", "state": "running", "created_at": now, "updated_at": now, "heartbeat_at": now,
        "last_step": -1, "host": socket.gethostname(), "pid": os.getpid(),
    }
    if run_id is None and not lifecycle.forked():
        writer.append((NEW_RUN, row))  # a fresh random id: written with the first batch, init() waits for nothing
    elif not store.create_run(row) and run_id is not None:
        # (A forked child writes its run at once: a child that ends in os._exit() right after
        # init() still leaves its run in the store, where the crash check finds it.)
        # A given id is created now, in the store, so that of two processes starting it at once
        # exactly one creates it; the other resumes it (or finds it held) like any existing run.
        return _resume_run(store, run_id, resume, name, config, now, common)
    return Run(id=row["id"], name=row["name"], config=config, **common)


def _resume_run(store, run_id: str, resume: Any, name: Optional[str], config: dict, now: float,
                common: dict) -> Run:
    """Continue the stored run ``run_id``, once this process has claimed it (one writer per run)."""
    if resume in (None, False, "never"):
        raise UsageError(f"run id {run_id!r} already exists; pass resume='allow' to continue it")

    def fields_for(record) -> dict:
        merged = {**jsoncodec.loads(record.config), **config}
        return {"state": "running", "config": jsoncodec.dumps(merged), "updated_at": now, "heartbeat_at": now,
                "finished_at": None, "exit_code": None, "error_type": None, "error_text": None,
                "pid": os.getpid(), "host": socket.gethostname()}

    writer = common["writer"]
    live_here = {run.id for run in lifecycle.live_runs()}
    existing = claims.claim(store, run_id, fields_for, now, socket.gethostname(), live_here=live_here,
                            flush=writer.flush)
    run = Run(id=existing.id, name=name or existing.name, config={**jsoncodec.loads(existing.config), **config},
              summary=jsoncodec.loads(existing.summary), start_step=existing.last_step + 1, **common)
    run._resumed = True
    return run


def _require_run(what: str) -> Run:
    run = _current
    if run is None:
        raise UsageError(f"You must call alerts.init() before alerts.{what}()")
    return run


def log(data: Any, step: Optional[int] = None, commit: Optional[bool] = None) -> None:
    """Log values to the current run (see :meth:`Run.log`)."""
    run = _current
    if run is None:
        raise UsageError("You must call alerts.init() before alerts.log()")
    run.log(data, step, commit)


def alert(title: str, text: str, level: Any = None, wait_duration: Any = None) -> None:
    """Raise an alert on the current run (see :meth:`Run.alert`)."""
    _require_run("alert").alert(title, text, level, wait_duration)


def finish(exit_code: Optional[int] = None, quiet: Optional[bool] = None) -> None:
    """Finish the current run (a no-op when there is none)."""
    if _current is not None:
        _current.finish(exit_code=exit_code, quiet=quiet)


def mark_preempting() -> None:
    """Mark the current run as being preempted (see :meth:`Run.mark_preempting`)."""
    _require_run("mark_preempting").mark_preempting()


def define_metric(name: str, *args: Any, **kwargs: Any) -> Metric:
    """Customise a metric's summary and x-axis on the current run (see :meth:`Run.define_metric`)."""
    return _require_run("define_metric").define_metric(name, *args, **kwargs)


def watch(*args: Any, **kwargs: Any) -> None:
    """A no-op: gradients and parameters are not recorded (a warning says so, once)."""
    noops.warn_once("watch")
    return None


def login(key: Optional[str] = None, host: Optional[str] = None, relogin: Optional[bool] = None,
          **kwargs: Any) -> bool:
    """Log in to a server, as ``wandb.login``: check ``key`` with it and store both for later runs.

    ``host`` defaults to ``ALERTS_URL``, else the server stored last. The key is checked with
    ``GET /api/v1/me`` and stored in the user's credentials file (mode 0600,
    :mod:`alerts.sdk.credentials`); later ``init()`` calls log to that server. A refused key is an
    :class:`~alerts.errors.AuthenticationError`; an unreachable server an :class:`~alerts.errors.Error`.
    Without ``key`` this does nothing (the embedded store needs no login) and never prompts. Returns True.
    """
    if key is None:
        return True
    from alerts.sdk import login as _login

    _login.login(key, host)
    return True

