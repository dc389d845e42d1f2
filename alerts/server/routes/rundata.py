"""What a run logged, read for charts and pages: ``/api/v1/runs/{id}/series`` (its metrics, downsampled)
and ``/api/v1/runs/{id}/media`` (its tables and images, and their files).

Another user's run is a 404 on every route (admins see all), as for the rest of ``/runs``.
"""

from __future__ import annotations

from typing import Literal, Optional

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from alerts.server.accounts import Principal
from alerts.server.auth import current_user, require_visible
from alerts.server.encoding import SafeJSONResponse
from alerts.server.mediaquery import media_list, run_file
from alerts.server.runmodels import MAX_STEP
from alerts.server.seriesquery import DEFAULT_POINTS, MAX_KEYS, MAX_POINTS, run_series

router = APIRouter(tags=["runs"])

_NOT_FOUND = {404: {"description": "no such run, or another user's"}}


def visible_run(request: Request, user: Principal, run_id: str):
    """The run ``run_id`` if ``user`` may see it; 404 otherwise."""
    record = request.app.state.store.get_run(run_id)
    require_visible(user, record.owner if record is not None else None, "run", run_id)
    return record


class StepValue(BaseModel):
    step: int
    value: float


class SeriesMark(BaseModel):
    """Non-finite values of one kind in one bucket: the first step holding one, and how many."""

    step: int
    value: Literal["NaN", "Infinity", "-Infinity"]
    count: int


class SeriesOut(BaseModel):
    """One key's series: finite points as ``[step, value]`` pairs (M4 per bucket: each bucket's first,
    lowest, highest and last point) and its non-finite values as marks."""

    key: str
    count: int = Field(description="numeric points of the key in the range")
    downsampled: bool = Field(description="false: every point in the range is here")
    bucket_width: int = Field(description="steps per bucket")
    points: list[tuple[int, float]]
    marks: list[SeriesMark]
    min: Optional[StepValue] = None
    max: Optional[StepValue] = None


class SeriesPage(BaseModel):
    run_id: str
    start: Optional[int] = Field(None, description="the first step of the range (the data's, when not asked)")
    end: Optional[int] = None
    points: int
    series: dict[str, SeriesOut]


@router.get("/runs/{run_id}/series", response_model=SeriesPage, responses={
    **_NOT_FOUND, 422: {"description": "no keys, too many, or start after end"}},
    summary="Metrics over steps, downsampled for a chart (NaN and infinities kept as marks)")
def series(run_id: str, request: Request,
           keys: str = Query(..., min_length=1, max_length=8192,
                             description=f"comma-separated metric keys, at most {MAX_KEYS}"),
           start: Optional[int] = Query(None, ge=0, le=MAX_STEP, description="first step (inclusive)"),
           end: Optional[int] = Query(None, ge=0, le=MAX_STEP, description="last step (inclusive)"),
           points: int = Query(DEFAULT_POINTS, ge=4, le=MAX_POINTS,
                               description="at most this many points per key (points // 4 buckets of M4)"),
           user: Principal = Depends(current_user)):
    """Each key's numeric values in the steps ``start..end``, reduced to at most ``points`` points:
    the range is cut into ``points // 4`` buckets of equal width in steps (shared by all the keys);
    each keeps its first, lowest, highest and last finite point, and NaN, Infinity and -Infinity
    as marks (the first step of each kind in the bucket, with its count), so no extreme and no
    non-finite value is lost however long the run. A range holding no more than ``points`` points
    comes back whole (``downsampled`` false)."""
    visible_run(request, user, run_id)
    wanted = [key for key in keys.split(",") if key and key != "_step"]
    if not wanted or len(set(wanted)) > MAX_KEYS:
        raise HTTPException(422, [{"loc": ["query", "keys"], "type": "value_error",
                                   "msg": f"between 1 and {MAX_KEYS} keys, separated by commas"}])
    if start is not None and end is not None and start > end:
        raise HTTPException(422, [{"loc": ["query", "start"], "type": "value_error", "msg": "start is after end"}])
    return SafeJSONResponse(run_series(request.app.state.store, run_id, wanted, start, end, points))


class MediaOut(BaseModel):
    id: int
    step: int
    key: str
    kind: str = Field(description="table | image | audio | video | html | file")
    path: str = Field(description="relative to the store's media folder; GET .../media/file?path= serves it")
    meta: dict


@router.get("/runs/{run_id}/media", response_model=list[MediaOut], responses=_NOT_FOUND,
            summary="The tables, images and other files the run logged")
def media(run_id: str, request: Request, user: Principal = Depends(current_user)):
    visible_run(request, user, run_id)
    return SafeJSONResponse(media_list(request.app.state.store, run_id))


@router.get("/runs/{run_id}/media/file", response_class=FileResponse, responses={
    200: {"description": "the file, with its content type",
          "content": {t: {} for t in ("image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp",
                                      "audio/wav", "application/json")}},
    404: {"description": "no such run (or another user's), no such file in the run's media folder, or a "
                         "file of a type that is not served (HTML, SVG: they would run script here)"}},
    summary="A file the run logged (an image, a table's JSON, a table's image cell)")
def media_file(run_id: str, request: Request,
               path: str = Query(..., min_length=1, max_length=1024, description="a media record's path"),
               user: Principal = Depends(current_user)):
    visible_run(request, user, run_id)
    found = run_file(request.app.state.settings.media_dir(), run_id, path)
    if found is None:
        raise HTTPException(404, f"no file {path!r} of run {run_id!r} that can be served")
    file_path, content_type = found
    # Its own document if opened directly: nothing in it may run or load (a crafted PNG sniffed as HTML).
    return FileResponse(file_path, media_type=content_type, headers={
        "X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, max-age=300"})
