"""``init()`` in remote mode: create (or resume) the run on the server, then hand it to the remote writer.

The create is one bounded request (:data:`INIT_TIMEOUT`). If the server cannot be reached, the run is
started anyway: its id (and name) are made here and the create goes first into the run's log, sent
before its first batch once the server answers. A server that answers and refuses (an id that exists
without ``resume``, ``resume="must"`` of an unknown run, an invalid argument, a refused key) is an
error from ``init()``, as it would be from the embedded store; a run another live process is writing
is the same :class:`~alerts.errors.RunInUseError` as there.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import warnings
from typing import Any, Optional

from alerts.channels.console import ConsoleChannel
from alerts.errors import AlertsWarning, AuthenticationError, Error, InvalidArgument, RunInUseError, UsageError
from alerts.sdk import remote
from alerts.sdk.convert import SkipValue
from alerts.sdk.credentials import Remote, stored_user
from alerts.sdk.ingest import AUTH, REJECT, RUN_IN_USE, IngestClient, IngestError, host_and_pid
from alerts.sdk.names import new_run_id, new_run_name
from alerts.sdk.run import Run
from alerts.sdk.spool import CREATE
from alerts.settings import Settings

logger = logging.getLogger("alerts")

# Seconds init() waits for the server to create the run before going on without it.
INIT_TIMEOUT = 10.0
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def start_remote(settings: Settings, server: Remote, *, project: str, name: Optional[str], config: dict,
                 tags: list, notes: Optional[str], group: Optional[str], job_type: Optional[str],
                 run_id: Optional[str], resume: Any, on_finish, extra: Optional[dict] = None) -> Run:
    """Start a run that logs to ``server`` (see the module docstring)."""
    writer = remote.writer_for(server.url, server.api_key, settings.dir / "spool", settings.flush_interval,
                               settings.spool_max_bytes, settings.media_dir())
    run_id = run_id or new_run_id()
    log = writer.open_log(run_id)
    body = {"id": run_id, "project": project, "name": name, "group": group, "job_type": job_type,
            "tags": list(tags or ()), "notes": notes, "config": config, "resume": _resume(resume),
            **host_and_pid()}
    out: Optional[dict] = None
    if not log.items:
        out = _create(server, body, run_id, resume, writer)
    else:  # this run's leftovers are sent first; it is resumed after them
        logger.warning("alerts: run %s has %d requests left in %s from an earlier process; they are sent "
                       "before this one's", run_id, len(log.items), log.folder)
    if out is None:
        body["name"] = name = name or new_run_name(secrets.randbelow(999) + 1)
        body["resume"] = "must" if body["resume"] == "must" else "allow"  # a retry may find it created
        log.add(CREATE, json.dumps(body, separators=(",", ":")).encode())
    elif log.offset is None:
        log.offset = int(out.get("last_seq") or 0)
    writer.add_log(log)
    owner = (out or {}).get("owner") or stored_user(server.url) or settings.user
    run = Run(id=run_id, name=(out or {}).get("name") or name, project=project, owner=owner,
              config={**((out or {}).get("config") or {}), **config}, summary=_decode((out or {}).get("summary")),
              group=group, job_type=job_type, tags=tags or (), notes=notes, dir=str(settings.dir), writer=writer,
              channel=ConsoleChannel(), start_step=_start_step(out), on_finish=on_finish, **(extra or {}))
    run._media = _media_dropper(run)
    writer.attach(run)
    return run


def _create(server: Remote, body: dict, run_id: str, resume: Any, writer) -> Optional[dict]:
    """``POST /runs`` within INIT_TIMEOUT: the RunOut, or None if the server could not be reached."""
    client = IngestClient(server.url, server.api_key)
    try:
        return client.create_run(json.dumps(body, separators=(",", ":")).encode(), timeout=INIT_TIMEOUT)
    except IngestError as exc:
        if exc.verdict == REJECT:
            raise _refusal(exc, run_id, resume, server.url) from None
        if exc.verdict == AUTH:
            raise AuthenticationError(f"{server.url} refused the API key ({exc.status}): run `alerts login "
                                      f"--host {server.url}` with a valid key, or set ALERTS_API_KEY") from None
        writer.note_down(exc)
        logger.warning("alerts: %s; run %s starts anyway: its data is kept on disk and sent when the server "
                       "answers", exc, run_id)
        return None
    finally:
        client.close()


def _refusal(exc: IngestError, run_id: str, resume: Any, url: str) -> Error:
    if exc.status == 409 and exc.reason == RUN_IN_USE:  # the embedded store's error for the same case
        return RunInUseError(
            f"run {run_id!r} is being written by another process, says {url} ({exc.detail}). One process "
            f"writes a run at a time: wait until that process has ended (or, if it was killed, until the "
            f"server marks the run crashed, 2 minutes after its last heartbeat), then init(id={run_id!r}, "
            f"resume='allow') again; or start a new run (init() without id=).")
    if exc.status == 409:
        return UsageError(f"run id {run_id!r} cannot be used on the server ({exc}); to continue your own "
                          "run, pass resume='allow'")
    if exc.status == 404:
        return UsageError(f"resume={resume!r} but the server has no run with id {run_id!r}")
    if exc.status == 422:
        return InvalidArgument(f"the server refused the run: {exc}")
    return Error(f"the server refused the run: {exc}")


def _resume(resume: Any) -> Any:
    """``resume`` as the contract takes it (wandb's ``"auto"`` is ``"allow"``)."""
    return "allow" if resume == "auto" else resume


def _start_step(out: Optional[dict]) -> int:
    if not out:
        return 0
    last = out.get("last_step")
    return int(last) + 1 if isinstance(last, int) and last >= 0 else 0


def _decode(summary: Any) -> dict:
    """A RunOut's summary with the API's "NaN"/"Infinity" strings read back as floats."""
    if not isinstance(summary, dict):
        return {}
    return {k: _NON_FINITE.get(v, v) if isinstance(v, str) else v for k, v in summary.items()}


def _media_dropper(run: Run):
    """The run's media hook in remote mode: media are not sent to a server (v1), so each is left out
    of its row, with one warning per run."""
    warned = []

    def drop(key: str, media: Any) -> Any:
        if not warned:
            warned.append(True)
            warnings.warn(f"alerts: run {run.id} logs to a server, which does not take tables and images yet: "
                          f"{key!r} and any later ones are left out of the rows", AlertsWarning, stacklevel=7)
        raise SkipValue(key)

    return drop
