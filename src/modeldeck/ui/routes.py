"""The dashboard's page ``/`` and its files under ``/dashboard/static/``.

Everything the browser shows comes from ``/api/v1`` with the same API key as the CLI; these
routes only serve files, so they need no key. Nothing is fetched from another host.

* The dashboard's own files (``static/``) are served by Starlette's ``StaticFiles`` (media types,
  ``ETag`` and ``304``, nothing outside ``static/``) behind ``GZipMiddleware``.
* Plotly.js, the vendored basic bundle (``vendor/``, 1.2 MB), is gzipped once and kept: gzipping
  it on every request, as the middleware would, took about 150 ms of CPU per load (6 instead of
  880 loads/s on this machine, wrk with 4 connections).
* The page is rendered once per authentication setting.
"""

from __future__ import annotations

import functools
import gzip
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
PAGE = HERE / "pages" / "index.html"
PLOTLY_JS = HERE / "vendor" / "plotly-basic.min.js"
JS = "text/javascript; charset=utf-8"
# Plotly injects <style> elements, so styles need 'unsafe-inline'; scripts never do.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(include_in_schema=False)


class DashboardFiles(StaticFiles):
    """``StaticFiles`` with the dashboard's security headers; the browser revalidates each file
    on every load (a ``304`` while unchanged)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update({**SECURITY_HEADERS, "Cache-Control": "no-cache"})
        return response


def mount(app: FastAPI) -> None:
    """Serve ``static/`` at ``/dashboard/static``, gzipped for clients that accept it."""
    files: Any = GZipMiddleware(DashboardFiles(directory=STATIC), minimum_size=1024)
    app.mount("/dashboard/static", files, name="dashboard-static")


@functools.cache
def _index(auth_required: bool) -> str:
    page = PAGE.read_text(encoding="utf-8")
    return page.replace("{{auth_required}}", "true" if auth_required else "false")


@router.get("/")
async def index(request: Request) -> HTMLResponse:
    auth = request.app.state.platform.settings.auth_enabled
    return HTMLResponse(
        _index(bool(auth)), headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"}
    )


@functools.cache
def plotly_js() -> tuple[bytes, bytes]:
    """The vendored Plotly.js bundle, plain and gzipped (read and compressed once)."""
    data = PLOTLY_JS.read_bytes()
    return data, gzip.compress(data, compresslevel=6)


@router.get("/dashboard/vendor/plotly.min.js")
async def plotly(request: Request) -> Response:
    plain, packed = plotly_js()
    headers = {
        **SECURITY_HEADERS,
        "Cache-Control": "public, max-age=86400",
        "Vary": "Accept-Encoding",
    }
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(packed, media_type=JS, headers={**headers, "Content-Encoding": "gzip"})
    return Response(plain, media_type=JS, headers=headers)
