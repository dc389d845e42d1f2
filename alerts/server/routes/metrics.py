"""``/metrics``: Prometheus's text format (:mod:`alerts.server.metrics` lists what it holds).

Unauthenticated, as Prometheus and Alertmanager serve theirs: it carries counts, never a name, a title
or a secret. Keep it off the public network (bind the server to a private interface, or let the
reverse proxy refuse ``/metrics``) if the counts themselves are sensitive to you.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

router = APIRouter(tags=["health"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    # A sync route: FastAPI runs it on its thread pool, so the store's gauges never block the loop.
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
