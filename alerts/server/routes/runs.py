"""``/api/v1/runs``: create or resume a run, send its batches, heartbeats and finish (what the SDK's
remote mode calls), and read runs back (list, get, history).

Routes stay thin: the work is in :mod:`alerts.server.ingest` (writes) and
:mod:`alerts.store.runqueries` (pages). Another user's run is a 404 on every route (admins see all).
"""

from __future__ import annotations

import json
import threading
from typing import Optional

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from alerts.server.accounts import Principal
from alerts.server.auth import current_user, not_found, require_visible
from alerts.server.encoding import SafeJSONResponse
from alerts.server.ingest import REASON_HEADER, Ingest, IngestError
from alerts.server.live import LiveRuns
from alerts.server.pagination import Page, PageParams, encode_cursor, page_params
from alerts.server.runmodels import RUN_STATES, BatchIn, BatchOut, FinishIn, RunIn, RunOut, inline_schema
from alerts.store import jsoncodec, runqueries
from alerts.store.models import RunRecord

router = APIRouter(tags=["runs"])

_install_lock = threading.Lock()


def install(app: FastAPI) -> Ingest:
    """The app's :class:`Ingest` (made once, over ``app.state``'s store and rules), with its tick hook
    (the stalled rules of live remote runs) registered in ``app.state.tick_hooks``."""
    with _install_lock:
        ingest = getattr(app.state, "ingest", None)
        if ingest is not None:
            return ingest
        state = app.state
        live = LiveRuns(state.store, state.rules)
        # Looked up at each call: the relay's owner sets wake_relay when it starts.
        ingest = Ingest(state.store, live, wake=lambda: state.wake_relay())

        def check_stalled(now: float) -> None:
            ingest.check_stalled(now, state.channels)

        state.tick_hooks.append(check_stalled)
        state.ingest = ingest
        return ingest


def _ingest(request: Request) -> Ingest:
    sync = getattr(request.app.state, "rule_sync", None)
    if sync is not None:  # a replica without jobs follows the others' rules reloads from here
        sync.follow_if_due(_now(request))
    return install(request.app)


def _now(request: Request) -> float:
    return request.app.state.clock()


def _raise(exc: IngestError) -> HTTPException:
    return HTTPException(exc.status, exc.detail, headers={REASON_HEADER: exc.reason} if exc.reason else None)


def _json(content, status_code: int = 200) -> SafeJSONResponse:
    # Returned as a response, not through response_model: FastAPI's serialisation of the model would
    # write NaN and the infinities as null; SafeJSONResponse writes them as "NaN", "Infinity", ...
    # (the response_model still documents the shape in the OpenAPI schema).
    return SafeJSONResponse(content, status_code=status_code)


def run_out(record: RunRecord) -> dict:
    """A stored run as the API shows it."""
    return {
        "id": record.id, "owner": record.owner, "project": record.project, "name": record.name,
        "group": record.group, "job_type": record.job_type, "tags": jsoncodec.loads(record.tags) or [],
        "notes": record.notes, "config": jsoncodec.loads(record.config) or {},
        "summary": jsoncodec.loads(record.summary) or {}, "state": record.state, "created_at": record.created_at,
        "updated_at": record.updated_at, "heartbeat_at": record.heartbeat_at, "finished_at": record.finished_at,
        "exit_code": record.exit_code, "error_type": record.error_type, "error_text": record.error_text,
        "last_step": record.last_step, "last_seq": record.last_seq or 0,
    }


def _visible_run(request: Request, user: Principal, run_id: str) -> RunRecord:
    record = request.app.state.store.get_run(run_id)
    require_visible(user, record.owner if record is not None else None, "run", run_id)
    return record


_NOT_FOUND = {404: {"description": "no such run, or another user's"}}


@router.post("/runs", response_model=RunOut, status_code=status.HTTP_201_CREATED,
             summary="Create a run (201), or resume one (200)",
             responses={200: {"model": RunOut, "description": "resumed"},
                        404: {"description": "resume='must' and no such run"},
                        409: {"description": "the id exists (no resume), is another user's, or is being "
                                             "written by another live process"}})
def create_run(body: RunIn, request: Request, user: Principal = Depends(current_user)):
    try:
        record, created = _ingest(request).create(user.name, body, _now(request))
    except IngestError as exc:
        raise _raise(exc) from None
    return _json(run_out(record), status.HTTP_201_CREATED if created else status.HTTP_200_OK)


async def _raw_body(request: Request) -> bytes:
    return await request.body()


def _batch(raw: bytes) -> BatchIn:
    """The batch, parsed and checked in one pass by pydantic's own JSON parser: a batch is mostly floats,
    which it reads about twice as fast as ``json.loads`` followed by validation. NaN and the infinities
    are accepted as bare tokens there too. Errors are the same 422, field by field.

    What that parser refuses as JSON is read again by ``json.loads``, which takes more: a lone surrogate
    escape (``"\\ud800"``, what ``json.dumps`` writes for a key that is not valid Unicode) is valid JSON
    and is repaired where it is stored, never a reason to refuse the batch."""
    try:
        return BatchIn.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors()
    if any(error["type"] == "json_invalid" for error in errors):
        try:
            parsed = json.loads(raw)
        except (ValueError, RecursionError):
            pass  # not JSON for either parser: the first parser's error says where
        else:
            try:
                return BatchIn.model_validate(parsed)
            except ValidationError as exc:
                errors = exc.errors()
    raise RequestValidationError([{**error, "loc": ("body", *error["loc"])} for error in errors])


_BATCH_BODY = {"requestBody": {"required": True,
                               "content": {"application/json": {"schema": inline_schema(BatchIn)}}}}


# ``/log`` is the name the architecture document (DESIGN.md) gives the batched log call; the SDK
# posts to ``/batches``. Both are one handler, so a client written against either works.
@router.post("/runs/{run_id}/log", response_model=BatchOut, responses=_NOT_FOUND,
             summary="Log a batch (the same call as /batches)", openapi_extra=_BATCH_BODY)
@router.post("/runs/{run_id}/batches", response_model=BatchOut, responses=_NOT_FOUND,
             summary="Log a batch of rows, config, summary and alerts (stored once per seq)",
             openapi_extra=_BATCH_BODY)
def post_batch(run_id: str, request: Request, raw: bytes = Depends(_raw_body),
               user: Principal = Depends(current_user)):
    record = _visible_run(request, user, run_id)
    body = _batch(raw)
    answer, alerts = _ingest(request).accept_batch(record, body, _now(request), request.app.state.channels)
    metrics = getattr(request.app.state, "metrics", None)  # the server's /metrics, when the app has them
    if metrics is not None:
        if answer["stored"]:
            points = sum(len(row.values) for row in body.rows[answer["dropped_rows"]:])
            metrics.ingested(points=points, batches=1, alerts=alerts)
        else:
            metrics.ingested(replayed=1)
    return _json(answer)


@router.post("/runs/{run_id}/heartbeat", status_code=status.HTTP_204_NO_CONTENT, responses=_NOT_FOUND,
             summary="The run is alive")
async def heartbeat(run_id: str, request: Request, user: Principal = Depends(current_user)) -> Response:
    # On the event loop: the UPDATE is made by the heartbeats' writer thread, many per commit.
    if not await _ingest(request).heartbeat(run_id, None if user.is_admin else user.name, _now(request)):
        raise not_found("run", run_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/runs/{run_id}/finish", response_model=RunOut, responses=_NOT_FOUND,
             summary="End the run (idempotent); fires its run_state rules")
def finish(run_id: str, body: FinishIn, request: Request, user: Principal = Depends(current_user)):
    record = _visible_run(request, user, run_id)
    return _json(run_out(_ingest(request).finish(record, body, _now(request), request.app.state.channels)))


@router.get("/runs", response_model=Page[RunOut], summary="Runs, newest first",
            responses={403: {"description": "owner= of another user, without an admin's key"}})
def list_runs(request: Request, project: Optional[str] = Query(None, max_length=1024),
              group: Optional[str] = Query(None, max_length=4096),
              state: Optional[str] = Query(None, description=" | ".join(RUN_STATES)),
              owner: Optional[str] = Query(None, max_length=64, description="admins only (others: themselves)"),
              page: PageParams = Depends(page_params), user: Principal = Depends(current_user)):
    if state is not None and state not in RUN_STATES:
        raise HTTPException(422, [{"loc": ["query", "state"], "msg": f"state is one of {', '.join(RUN_STATES)}",
                                   "type": "value_error"}])
    if not user.is_admin:
        if owner is not None and owner != user.name:
            raise HTTPException(403, "owner=: only an admin lists other users' runs")
        owner = user.name
    after = _run_key(page.after)
    records = runqueries.runs_page(request.app.state.store, limit=page.limit + 1, after=after, owner=owner,
                                   project=project, group=group, state=state)
    items = records[:page.limit]
    cursor = encode_cursor([items[-1].created_at, items[-1].id]) if len(records) > page.limit else None
    return _json({"items": [run_out(record) for record in items], "next_cursor": cursor})


def _run_key(after) -> Optional[tuple[float, str]]:
    if after is None:
        return None
    if (isinstance(after, list) and len(after) == 2 and isinstance(after[0], (int, float))
            and not isinstance(after[0], bool) and isinstance(after[1], str)):
        return float(after[0]), after[1]
    raise HTTPException(400, "cursor: not a cursor of this list (use next_cursor as given)")


@router.get("/runs/{run_id}", response_model=RunOut, responses=_NOT_FOUND, summary="One run")
def get_run(run_id: str, request: Request, user: Principal = Depends(current_user)):
    return _json(run_out(_visible_run(request, user, run_id)))


@router.get("/runs/{run_id}/history", response_model=Page[dict], responses=_NOT_FOUND,
            summary="History rows in step order: {_step, _timestamp, ...values}")
def history(run_id: str, request: Request,
            keys: Optional[str] = Query(None, max_length=65_536,
                                        description="comma-separated keys: only rows that have all of them, "
                                                    "reduced to _step, _timestamp and those keys"),
            min_step: Optional[int] = Query(None, ge=0, le=2**63 - 1),
            max_step: Optional[int] = Query(None, ge=0, le=2**63 - 1),
            page: PageParams = Depends(page_params), user: Principal = Depends(current_user)):
    _visible_run(request, user, run_id)
    after = page.after
    if after is not None and (not isinstance(after, int) or isinstance(after, bool)):
        raise HTTPException(400, "cursor: not a cursor of this list (use next_cursor as given)")
    wanted = [key for key in keys.split(",") if key] if keys else None
    rows = runqueries.history_page(request.app.state.store, run_id, limit=page.limit + 1, after_step=after,
                                   min_step=min_step, max_step=max_step, keys=wanted)
    items = rows[:page.limit]
    cursor = encode_cursor(items[-1]["_step"]) if len(rows) > page.limit else None
    return _json({"items": items, "next_cursor": cursor})
