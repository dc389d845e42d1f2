"""The pages, one module (and router) each: :func:`routers` lists them for :func:`alerts.web.install`."""

from __future__ import annotations

from fastapi import APIRouter


def routers() -> list[APIRouter]:
    """Every page's router."""
    from alerts.web.pages import channels, deliveries, inbox, runs, silences

    return [inbox.router, silences.router, runs.router, channels.router, deliveries.router]
