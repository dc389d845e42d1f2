"""The web page served by ``alerts serve`` at ``/``: sign-in, the alert inbox, runs with their charts,
silences, the user's channels and deliveries.

It sits above the server (it reads through the same queries and visibility rules as ``/api/v1``, and
its scripts call ``/api/v1`` with the session cookie) and nothing below imports it. Pages are rendered
on the server with Jinja2 (autoescaped: an alert's title is text, whatever it holds); the few scripts
and the stylesheet ship in ``static/`` (no CDN, no build step) under a Content-Security-Policy that
allows no inline script.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from alerts.web import pageauth, signin


def install(app: FastAPI) -> None:
    """Add the page's routes and its static files to ``app``."""
    pageauth.install(app)
    app.mount("/static", StaticFiles(packages=[("alerts.web", "static")]), name="static")
    app.include_router(signin.router)
    from alerts.web import pages  # the pages, each a router of its own

    for router in pages.routers():
        app.include_router(router)
