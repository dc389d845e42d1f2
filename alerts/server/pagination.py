"""Pages of a list: ``?limit=`` (default 100, at most 1000) and an opaque ``?cursor=`` taken from the
previous page's ``next_cursor`` (None on the last page). Lists are ordered newest first by an integer or
text key; the cursor is that key of the page's last item, so a page costs an index range scan however
deep it is (no OFFSET), and rows added meanwhile never shift a page.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Generic, Optional, TypeVar

from fastapi import HTTPException, Query
from pydantic import BaseModel

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

Item = TypeVar("Item")


class Page(BaseModel, Generic[Item]):
    """One page of a list."""

    items: list[Item]
    next_cursor: Optional[str] = None


class PageParams(BaseModel):
    limit: int
    after: Any = None  # the decoded cursor: the ordering key of the previous page's last item


def page_params(limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="items per page"),
                cursor: Optional[str] = Query(None, max_length=512,
                                              description="the `next_cursor` of the previous page")) -> PageParams:
    """The dependency routes take: the limit and the decoded cursor (400 if it is not one of ours)."""
    return PageParams(limit=limit, after=decode_cursor(cursor) if cursor else None)


def encode_cursor(key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Any:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(400, "cursor: not a cursor this API returned (use next_cursor as given)") from None


def page_of(rows: list, limit: int, key_of) -> tuple[list, Optional[str]]:
    """Given up to ``limit + 1`` rows (fetch one more than asked), the page and its ``next_cursor``."""
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode_cursor(key_of(rows[-1]))
    return rows, None
