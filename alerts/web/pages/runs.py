"""The runs (``/runs``: a filtered list, newest first, a page at a time) and a run's page
(``/runs/{id}``: its state, the exception of a failed run, charts of its metrics, its alerts, config,
summary, and the tables and images it logged).

Both read through the server's own queries with the session's user: the list is
:func:`alerts.store.runqueries.runs_page` restricted to the user's runs as ``GET /api/v1/runs`` does
(an admin sees all), and a run another user owns is a 404 page, as the API's 404. The charts are drawn
by ``static/runchart.js`` from ``GET /api/v1/runs/{id}/series`` (downsampled: never every point); what
they draw beside the series (each rule's threshold, the steps alerts fired at) is given to it in the
page's ``data-`` attributes.
"""

from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from alerts.server import mediaquery, runview
from alerts.server.pagination import decode_cursor, encode_cursor
from alerts.server.routes.runs import run_out
from alerts.server.runmodels import RUN_STATES
from alerts.server.sessions import WebSession
from alerts.store import runqueries
from alerts.web.pageauth import page_session
from alerts.web.render import render

router = APIRouter(include_in_schema=False)

RUNS_PER_PAGE = 50


def _filter(value: Optional[str]) -> Optional[str]:
    value = (value or "").strip()
    return value or None


def _after(cursor: Optional[str]) -> Optional[tuple[float, str]]:
    """The keyset of the previous page's last run, or None (no cursor, or one this page did not make)."""
    if not cursor:
        return None
    try:
        key = decode_cursor(cursor)
    except HTTPException:
        return None
    if (isinstance(key, list) and len(key) == 2 and isinstance(key[0], (int, float))
            and not isinstance(key[0], bool) and isinstance(key[1], str)):
        return float(key[0]), key[1]
    return None


@router.get("/runs")
def runs_list(request: Request, project: Optional[str] = Query(None, max_length=1024),
              group: Optional[str] = Query(None, max_length=4096), state: Optional[str] = Query(None, max_length=32),
              owner: Optional[str] = Query(None, max_length=64), cursor: Optional[str] = Query(None, max_length=512),
              session: WebSession = Depends(page_session)):
    user = session.principal
    filters = {"project": _filter(project), "group": _filter(group),
               "state": _filter(state) if _filter(state) in RUN_STATES else None,
               "owner": _filter(owner) if user.is_admin else None}
    store = request.app.state.store
    records = runqueries.runs_page(store, limit=RUNS_PER_PAGE + 1, after=_after(cursor),
                                   owner=filters["owner"] if user.is_admin else user.name, project=filters["project"],
                                   group=filters["group"], state=filters["state"])
    page = records[:RUNS_PER_PAGE]
    next_query = None
    if len(records) > RUNS_PER_PAGE:
        next_query = {**{k: v for k, v in filters.items() if v is not None},
                      "cursor": encode_cursor([page[-1].created_at, page[-1].id])}
    counts = runview.alert_counts(store, [r.id for r in page])
    return render(request, "runs.html", session, runs=page, counts=counts, filters=filters, states=RUN_STATES,
                  next_query=next_query, paged=bool(cursor))


def _visible(request: Request, session: WebSession, run_id: str):
    record = request.app.state.store.get_run(run_id)
    if record is None or not session.principal.can_see(record.owner):
        return None
    return record


@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: str, keys: Optional[str] = Query(None, max_length=8192),
             session: WebSession = Depends(page_session)):
    record = _visible(request, session, run_id)
    if record is None:  # another user's run looks exactly like one that does not exist
        return render(request, "run_notfound.html", session, status_code=404, run_id=run_id)
    state = request.app.state
    run = run_out(record)
    alerts = runview.run_alerts(state.store, run_id)
    keys_offered = runview.metric_keys(run["summary"], alerts)
    watched = runview.thresholds(state.rules.ruleset, record, keys_offered)
    asked = [k for k in (keys or "").split(",") if k in keys_offered]
    selected = asked or runview.default_keys(keys_offered, watched, alerts)
    media_root = state.settings.media_dir()
    media = mediaquery.media_list(state.store, run_id)
    tables = [{**m, "table": mediaquery.read_table(media_root, run_id, m["path"])}
              for m in media if m["kind"] == "table"]
    images = [m for m in media if m["kind"] == "image" and m["path"].lower().endswith(mediaquery.IMAGE_SUFFIXES)]
    others = [m for m in media if m["kind"] not in ("table", "image")]
    return render(request, "run.html", session, run=run, alerts=alerts, keys=keys_offered, selected=selected,
                  thresholds=watched, chart_alerts=runview.chart_alerts(alerts), tables=tables, images=images,
                  other_media=others, is_image_cell=mediaquery.is_image_cell)
