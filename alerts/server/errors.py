"""Client mistakes are 4xx that say what is wrong; the server's own failures are 500s that say nothing
about its insides (the detail goes to the log, redacted).

* a body that does not match the schema: 422, one entry per field (FastAPI's ``detail`` list);
* a body that is not JSON at all, or too large: 400 / 413 before any route runs;
* a NUL character in the path or a query parameter: 422 before any route runs (PostgreSQL's text
  cannot hold one, and a lookup or filter with it failed in the database: a 500);
* a request a route rejects: the route's own ``HTTPException`` (404, 409, ...).
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alerts.server.encoding import SafeJSONResponse

logger = logging.getLogger("alerts.server")

# The largest request body accepted (bytes): a batch of a few thousand rows fits many times over.
MAX_REQUEST_BYTES = 8 * 1024 * 1024


class BodyLimit:
    """ASGI middleware: a body over ``limit`` bytes is answered 413 before a route reads it (checked on
    Content-Length and again while streaming, for chunked bodies)."""

    def __init__(self, app: ASGIApp, limit: int = MAX_REQUEST_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = False
                if too_big:
                    await self._reject(scope, receive, send)
                    return
        seen = 0
        limit = self.limit

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = SafeJSONResponse({"detail": f"request body larger than {self.limit} bytes"}, status_code=413)
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


NUL_MESSAGE = "contains a NUL character, which the store cannot keep"


class NoNul:
    """ASGI middleware: a path or query parameter with a NUL character (``%00``) is answered 422, one
    entry per parameter, before a route reads it. No id, name or filter value can hold one (SQLite
    keeps it, PostgreSQL refuses it), so the answer is the same on both backends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            errors = []
            if "\x00" in scope.get("path", ""):
                errors.append({"loc": ["path"], "msg": f"the path {NUL_MESSAGE}", "type": "value_error"})
            query = scope.get("query_string", b"")
            if b"%00" in query or b"\x00" in query:
                for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
                    if "\x00" in name or "\x00" in value:
                        shown = name.replace("\x00", "\\x00")
                        errors.append({"loc": ["query", shown], "msg": f"{shown} {NUL_MESSAGE}",
                                       "type": "value_error"})
            if errors:
                await SafeJSONResponse({"detail": errors}, status_code=422)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install(app: FastAPI) -> None:
    """Register the error handlers and the body limit on ``app``."""
    app.add_middleware(BodyLimit)
    app.add_middleware(NoNul)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> SafeJSONResponse:
        errors = []
        for error in exc.errors():
            entry = {"loc": list(error.get("loc", ())), "msg": str(error.get("msg", "")), "type": error.get("type")}
            errors.append(entry)  # "input" is left out: it may be a secret the caller sent
        return SafeJSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> SafeJSONResponse:
        logger.exception("alerts: %s %s failed", request.method, request.url.path)
        return SafeJSONResponse({"detail": "internal error (see the server's log)"}, status_code=500)
