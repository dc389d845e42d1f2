"""``create_app``: the FastAPI application over one store.

The app keeps what routes need on ``app.state`` (the seams between the server's modules):

* ``settings``, ``store``, ``clock`` (the one source of ``now``: tests pass a
  :class:`~alerts.clock.FakeClock`);
* ``key_cache``: the :class:`~alerts.server.keycache.KeyCache` API keys are checked through
  (``ALERTS_KEY_CACHE_SECONDS``);
* ``rules``: the :class:`~alerts.rules.active.ActiveRules` of ``ALERTS_RULES`` (``.ruleset``; ``.load()``
  reloads); ``rule_sync``: the :class:`~alerts.server.rulesync.RuleSync` that takes a reload asked of this
  replica to the others (``.published(now)`` after a reload on request);
* ``channels``: the :class:`~alerts.channels.config.ChannelSet` deliveries are routed with: the channel
  files' and those made through the API, one object refreshed in place when they change
  (``server_channels``: :class:`~alerts.server.channelset.ServerChannels`, ``.refresh()``);
* ``wake_relay()``: called after outbox rows are committed (a no-op until a relay runs);
* ``tick_hooks``: callables taking ``now``, run by the scheduled checks (stalled rules of live runs);
* ``metrics``: the :class:`~alerts.server.metrics.ServerMetrics` served at ``/metrics`` (ingest counts
  what it stores with ``metrics.ingested(points=, batches=, alerts=, replayed=)``);
* ``jobs``: the :class:`~alerts.server.jobs.Jobs` (the relay, crashed runs, tick hooks, silence expiry,
  retention); their scheduler runs unless ``jobs=False`` (tests drive ``jobs.run(name, now)``) or
  ``ALERTS_JOBS=0``.

The store is opened in the lifespan, so that importing this module or building the app touches no
database. SIGHUP reloads the rules (when the server runs in the main thread, as ``alerts serve`` does).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable, Optional

from fastapi import FastAPI

from alerts import __version__
from alerts import clock as _clock
from alerts.server import channelset, errors
from alerts.server.encoding import SafeJSONResponse
from alerts.server.jobs import Jobs
from alerts.server.keycache import KeyCache
from alerts.server.metrics import ServerMetrics
from alerts.server.rulesync import RuleSync
from alerts.server.routes import alerts as alerts_routes
from alerts.server.routes import channels, deliveries, health, me, metrics, rundata, rules, runs, silences
from alerts.settings import Settings, load_settings
from alerts.rules.active import active_rules
from alerts.store.db import Store, open_store

logger = logging.getLogger("alerts.server")

API_PREFIX = "/api/v1"


def _nothing() -> None:
    pass


def create_app(settings: Optional[Settings] = None, *, store: Optional[Store] = None,
               clock: Optional[Callable[[], float]] = None, jobs: Optional[bool] = None,
               web: bool = True) -> FastAPI:
    """The server's app. ``settings`` default to the environment's; ``store`` to the settings' database;
    ``jobs``: start the scheduled jobs (default ``ALERTS_JOBS``, on); ``web``: serve the web page at ``/``."""
    settings = settings if settings is not None else load_settings()
    run_jobs = settings.jobs if jobs is None else jobs

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.store = store if store is not None else open_store(settings.resolved_database_url())
        app.state.rules = active_rules(settings.rules, settings.dir)
        app.state.rule_sync = RuleSync(app.state.store, app.state.rules)  # reloads reach every replica
        channelset.install(app, settings, app.state.store)  # app.state.channels: files' and API's
        runs.install(app)  # the remote runs' ingest, and its tick hook (stalled rules)
        # This lifespan stops the jobs it started, whatever app.state.jobs says by then: a second
        # lifespan of the same app (schemathesis' in-process client runs one beside the test's)
        # replaces it, and stopping that one instead left this one's scheduler running to the exit.
        jobs = app.state.jobs = Jobs(app.state)  # after the installs above: it relays app.state.channels
        logger.info("alerts: serving the store %s", app.state.store.safe_url)
        if run_jobs:
            app.state.wake_relay = jobs.wake_relay
            jobs.start()
        hangup = _on_sighup(jobs.reload_rules)
        try:
            yield
        finally:
            hangup()
            app.state.wake_relay = _nothing
            jobs.stop()

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
    app.state.key_cache = KeyCache(settings.key_cache_seconds)
    app.state.metrics = ServerMetrics(lambda: getattr(app.state, "store", None), app.state.clock)
    if store is not None:  # usable before the lifespan runs (in-process tests without a lifespan)
        app.state.store = store
    errors.install(app)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(me.router, prefix=API_PREFIX)
    app.include_router(runs.router, prefix=API_PREFIX)
    app.include_router(rundata.router, prefix=API_PREFIX)
    app.include_router(alerts_routes.router, prefix=API_PREFIX)
    app.include_router(silences.router, prefix=API_PREFIX)
    app.include_router(rules.router, prefix=API_PREFIX)
    app.include_router(channels.router, prefix=API_PREFIX)
    app.include_router(deliveries.router, prefix=API_PREFIX)
    if web:
        from alerts.web import install as install_web  # the page sits above the API: imported only here

        install_web(app)
    return app


def _on_sighup(reload: Callable[[], None]) -> Callable[[], None]:
    """Reload the rules on SIGHUP; returns what removes the handler. Only the main thread's event loop
    can take signals (``alerts serve``); elsewhere (a test client's thread) nothing is installed."""
    try:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, reload)
    except (NotImplementedError, RuntimeError, ValueError, AttributeError):  # not the main thread; Windows
        return _nothing

    def remove() -> None:
        try:
            loop.remove_signal_handler(signal.SIGHUP)
        except Exception:
            pass

    return remove
