"""``create_app``: the FastAPI application over one store.

The app keeps what routes need on ``app.state`` (the seams between the server's modules):

* ``settings``, ``store``, ``clock`` (the one source of ``now``: tests pass a
  :class:`~alerts.clock.FakeClock`);
* ``rules``: the :class:`~alerts.rules.active.ActiveRules` of ``ALERTS_RULES`` (``.ruleset``; ``.load()``
  reloads);
* ``channels``: the :class:`~alerts.channels.config.ChannelSet` deliveries are routed with: the channel
  files' and those made through the API, one object refreshed in place when they change
  (``server_channels``: :class:`~alerts.server.channelset.ServerChannels`, ``.refresh()``);
* ``wake_relay()``: called after outbox rows are committed (a no-op until a relay runs);
* ``tick_hooks``: callables taking ``now``, run by the scheduled checks (stalled rules of live runs).

The store is opened in the lifespan, so that importing this module or building the app touches no
database.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable, Optional

from fastapi import FastAPI

from alerts import __version__
from alerts import clock as _clock
from alerts.server import channelset, errors
from alerts.server.encoding import SafeJSONResponse
from alerts.server.routes import alerts as alerts_routes
from alerts.server.routes import channels, deliveries, health, me, rules, runs, silences
from alerts.settings import Settings, load_settings
from alerts.rules.active import active_rules
from alerts.store.db import Store, open_store

logger = logging.getLogger("alerts.server")

API_PREFIX = "/api/v1"


def _nothing() -> None:
    pass


def create_app(settings: Optional[Settings] = None, *, store: Optional[Store] = None,
               clock: Optional[Callable[[], float]] = None) -> FastAPI:
    """The server's app. ``settings`` default to the environment's; ``store`` to the settings' database."""
    settings = settings if settings is not None else load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.store = store if store is not None else open_store(settings.resolved_database_url())
        app.state.rules = active_rules(settings.rules, settings.dir)
        channelset.install(app, settings, app.state.store)  # app.state.channels: files' and API's
        runs.install(app)  # the remote runs' ingest, and its tick hook (stalled rules)
        logger.info("alerts: serving the store %s", app.state.store.safe_url)
        yield

    app = FastAPI(
        title="alerts",
        version=__version__,
        description="Self-hosted alerting for machine-learning training runs. Authenticate with "
        "`Authorization: Bearer <API key>` (`alerts users add NAME` prints one).",
        default_response_class=SafeJSONResponse,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.clock = clock if clock is not None else _clock.now
    app.state.wake_relay = _nothing
    app.state.tick_hooks = []
    if store is not None:  # usable before the lifespan runs (in-process tests without a lifespan)
        app.state.store = store
    errors.install(app)
    app.include_router(health.router)
    app.include_router(me.router, prefix=API_PREFIX)
    app.include_router(runs.router, prefix=API_PREFIX)
    app.include_router(alerts_routes.router, prefix=API_PREFIX)
    app.include_router(silences.router, prefix=API_PREFIX)
    app.include_router(rules.router, prefix=API_PREFIX)
    app.include_router(channels.router, prefix=API_PREFIX)
    app.include_router(deliveries.router, prefix=API_PREFIX)
    return app
