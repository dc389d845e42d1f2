"""``/api/v1/silences``: make, list, read and end silences (see :mod:`alerts.server.silencing` for whose
deliveries a silence mutes: a user's own only, unless an admin makes it for everyone)."""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from alerts.pipeline import silence
from alerts.pipeline.silence import LABELS
from alerts.rules.durations import parse_duration
from alerts.server import silencing
from alerts.server.accounts import Principal
from alerts.server.auth import current_user, require_visible
from alerts.server.pagination import Page, PageParams, page_of, page_params
from alerts.server.routes.alerts import id_after

router = APIRouter(tags=["silences"])


class MatcherIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Literal[LABELS]  # type: ignore[valid-type]
    op: Literal["=", "!=", "=~", "!~"] = "="
    value: str = Field(max_length=silencing.MAX_REGEX)


MatcherText = Annotated[str, Field(min_length=2, max_length=silencing.MAX_REGEX + 100,
                                   description="name=value, name!=value, name=~regex or name!~regex")]


class SilenceIn(BaseModel):
    """A silence: alerts whose labels match every matcher are not delivered while it is in force."""

    model_config = ConfigDict(extra="forbid")

    matchers: list[Union[MatcherText, MatcherIn]] = Field(min_length=1, max_length=50)
    duration: Optional[Union[Annotated[float, Field(gt=0, allow_inf_nan=False)],
                             Annotated[str, Field(min_length=1, max_length=32)]]] = Field(
        default=None, description="how long: seconds, or 30m, 2h, 1d (or give ends_at)")
    starts_at: Optional[float] = Field(default=None, allow_inf_nan=False, ge=0, le=1e11,
                                       description="seconds since the epoch (default now)")
    ends_at: Optional[float] = Field(default=None, allow_inf_nan=False, ge=0, le=1e11)
    comment: str = Field(min_length=1, max_length=2000, description="why: shown to everyone who looks")
    scope: Literal["mine", "all"] = Field(default="mine", description="mine: only deliveries to your channels; "
                                          "all (admins): everyone's")

    @field_validator("comment")
    @classmethod
    def _no_nul(cls, comment: str) -> str:
        # PostgreSQL's text cannot hold NUL: refused here, it was a 500 from the database.
        if "\x00" in comment:
            raise ValueError("the comment contains a NUL character, which the store cannot keep")
        return comment


class MatcherOut(BaseModel):
    name: str
    op: str
    value: str


class SilenceOut(BaseModel):
    id: int
    matchers: list[MatcherOut]
    starts_at: float
    ends_at: float
    state: Literal["active", "pending", "expired"]
    scope: Literal["mine", "all"]
    user: Optional[str] = Field(default=None, description="whose deliveries it mutes (none: everyone's)")
    created_by: str
    created_at: Optional[float] = None
    comment: str


def _view(s: silence.Silence, now: float) -> SilenceOut:
    return SilenceOut(id=s.id, matchers=[MatcherOut(name=m.name, op=m.op, value=m.value) for m in s.matchers],
                      starts_at=s.starts_at, ends_at=s.ends_at, state=silencing.state_of(s, now),
                      scope="all" if s.user is None else "mine", user=s.user, created_by=s.created_by,
                      created_at=s.created_at, comment=s.comment)


def _invalid(field: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ["body", *field.split(".")], "msg": message, "type": "value_error"}])


@router.post("/silences", response_model=SilenceOut, status_code=status.HTTP_201_CREATED, summary="Make a silence")
def create_silence(request: Request, body: SilenceIn, caller: Principal = Depends(current_user)) -> SilenceOut:
    now = request.app.state.clock()
    try:
        duration = body.duration
        if isinstance(duration, str):
            try:
                duration = parse_duration(duration)
            except ValueError as exc:
                raise silencing.SilenceRefused(str(exc), "duration") from None
        matchers = silencing.matchers_from([m if isinstance(m, str) else m.model_dump() for m in body.matchers])
        when = silencing.window(now, starts_at=body.starts_at, ends_at=body.ends_at, duration=duration)
        made = silencing.create(request.app.state.store, caller, matchers, when, body.comment, body.scope, now)
    except silencing.SilenceRefused as exc:
        raise _invalid(exc.field, str(exc)) from None
    except silencing.Forbidden as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    return _view(made, now)


@router.get("/silences", response_model=Page[SilenceOut], summary="Silences you can see, newest first")
def list_silences(
    request: Request,
    state: Literal["current", "active", "pending", "expired", "all"] = Query(
        "current", description="current: in force or to come"),
    user: Optional[str] = Query(None, min_length=1, max_length=64, description="admins: whose own silences"),
    page: PageParams = Depends(page_params),
    caller: Principal = Depends(current_user),
) -> Page[SilenceOut]:
    now = request.app.state.clock()
    rows = silencing.listing(request.app.state.store, caller, now=now, state=state, user=user, limit=page.limit,
                             after=id_after(page))
    items, cursor = page_of(rows, page.limit, lambda s: s.id)
    return Page[SilenceOut](items=[_view(s, now) for s in items], next_cursor=cursor)


def _visible(request: Request, caller: Principal, silence_id: int) -> silence.Silence:
    found = silence.get(request.app.state.store, silence_id) if 0 < silence_id < 2**63 else None
    owner = None
    if found is not None and silencing.can_see(caller, found):
        owner = caller.name  # visible: let require_visible pass
    require_visible(caller, owner, "silence", silence_id)
    return found


@router.get("/silences/{silence_id}", response_model=SilenceOut, summary="One silence")
def get_silence(request: Request, silence_id: int, caller: Principal = Depends(current_user)) -> SilenceOut:
    return _view(_visible(request, caller, silence_id), request.app.state.clock())


@router.post("/silences/{silence_id}/expire", response_model=SilenceOut, summary="End a silence now")
def expire_silence(request: Request, silence_id: int, caller: Principal = Depends(current_user)) -> SilenceOut:
    found = _visible(request, caller, silence_id)
    now = request.app.state.clock()
    try:
        ended = silencing.expire(request.app.state.store, caller, found, now)
    except silencing.Forbidden as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    if not ended:
        raise HTTPException(status.HTTP_409_CONFLICT, f"silence {silence_id} is over already")
    return _view(silence.get(request.app.state.store, silence_id), now)
