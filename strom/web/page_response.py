"""Rendering the public pages: templates, their filters, security headers, friendly 404s.

Every page says in its Content-Security-Policy that it loads only from strom itself, so a
template change that pulled in a CDN would fail in the browser, not slip through. The one
exception is an operator's map tile server, named explicitly.
"""

from __future__ import annotations

import re
from typing import Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response

from strom.web import page_views
from strom.web.responses import JSONResponse
from strom.web.templating import templates

_SIZE = re.compile(r'^<svg([^>]*?) width="(\d+)" height="(\d+)"')


def qr_markup(svg: str, label: str) -> Markup:
    """An inline QR SVG that scales with CSS (viewBox) and has an accessible name."""
    sized = _SIZE.sub(r'<svg\1 viewBox="0 0 \2 \3" width="\2" height="\3"', svg, count=1)
    return Markup(sized.replace("<svg ", f'<svg role="img" aria-label="{Markup.escape(label)}" ',
                                1))


templates.env.filters.update(sat=page_views.sat, price=page_views.price,
                             clock=page_views.clock)


def csp(tile_origin: str | None = None) -> str:
    images = "'self' data:" + (f" {tile_origin}" if tile_origin else "")
    # Inline style *attributes* position map tiles and pins; style sheets stay same-origin.
    return ("default-src 'self'; script-src 'self'; connect-src 'self'; "
            f"img-src {images}; style-src 'self'; style-src-attr 'unsafe-inline'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def render(request: Request, template: str, context: dict[str, Any], *,
           status_code: int = 200, private: bool = False,
           tile_origin: str | None = None) -> Response:
    """A page with the project's security headers; `private` pages are never cached."""
    headers = {"Content-Security-Policy": csp(tile_origin), "Referrer-Policy": "no-referrer",
               "X-Content-Type-Options": "nosniff",
               "Cache-Control": "no-store" if private else "no-cache"}
    return templates.TemplateResponse(request, template, context, status_code=status_code,
                                      headers=headers)


def not_found(request: Request, what: str, reason: str) -> Response:
    """A 404 page with a way back for browsers; `{"error": reason}` for programs, as the API
    documents it."""
    if "text/html" not in request.headers.get("accept", ""):
        return JSONResponse({"error": reason}, status_code=404)
    return render(request, "not_found.html", {"what": what}, status_code=404)
