"""Rendering a page: Jinja2 templates from ``templates/``, autoescaped, with the security headers every
page carries."""

from __future__ import annotations

import datetime as _dt
import json
import math
from typing import Any, Optional

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from alerts import __version__
from alerts.server.sessions import WebSession

# No inline script or style, nothing from another origin: an injected tag can neither run nor load.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def _when(ts: Optional[float]) -> str:
    """Seconds since the epoch as ``2026-12-01 07:24:32`` (UTC), or '' for none."""
    if ts is None or not math.isfinite(ts):
        return ""
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _number(value: Any) -> str:
    """A metric value as people read it: NaN and infinities by name, floats to 6 significant digits."""
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return f"{value:.6g}"
    return str(value)


def _as_json(value: Any) -> str:
    """JSON for a ``data-`` attribute or a ``<pre>`` (autoescaping still applies)."""
    return json.dumps(value, default=str, allow_nan=True, indent=None)


environment = Environment(loader=PackageLoader("alerts.web", "templates"), autoescape=select_autoescape(default=True),
                          trim_blocks=True, lstrip_blocks=True)
environment.filters["when"] = _when
environment.filters["number"] = _number
environment.filters["as_json"] = _as_json
environment.globals["version"] = __version__


def render(request: Request, template: str, session: Optional[WebSession], *, status_code: int = 200,
           **context: Any) -> HTMLResponse:
    """The page ``template`` for the signed-in ``session`` (None on the sign-in page)."""
    html = environment.get_template(template).render(
        request=request, session=session, user=session.principal if session else None,
        csrf=session.csrf if session else "", path=request.url.path, **context)
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)
