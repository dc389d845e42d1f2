"""``/healthz`` (the process answers) and ``/readyz`` (it can do its work: the database answers and its
schema is at this version's head revision)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from sqlalchemy import text

from alerts.server.encoding import SafeJSONResponse
from alerts.store import migrate

logger = logging.getLogger("alerts.server")

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: the database answers, its schema at the head revision")
def readyz(request: Request):
    checks = {}
    try:
        with request.app.state.store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
            revision = migrate.current_revision(conn)
        checks["migrations"] = ("ok" if revision == migrate.HEAD_REVISION
                                else f"at {revision or 'none'}, this version needs {migrate.HEAD_REVISION} "
                                "(alerts db upgrade)")
    except Exception as exc:  # the reason, without the URL (it may hold a password)
        logger.warning("alerts: readiness: the database does not answer: %s", type(exc).__name__)
        checks["database"] = f"unreachable ({type(exc).__name__})"
    ready = all(value == "ok" for value in checks.values())
    return SafeJSONResponse({"status": "ok" if ready else "unavailable", "checks": checks},
                            status_code=200 if ready else 503)
