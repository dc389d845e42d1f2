"""``GET /api/v1/me``: who the presented key belongs to (what ``alerts login`` checks)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from alerts.server.accounts import Principal
from alerts.server.auth import current_user

router = APIRouter(tags=["users"])


class Me(BaseModel):
    name: str
    is_admin: bool


@router.get("/me", response_model=Me, summary="The caller's user")
async def me(user: Principal = Depends(current_user)) -> Me:
    return Me(name=user.name, is_admin=user.is_admin)
