"""The dashboard's pages: ``/`` and its static assets, Plotly.js from the installed package.

Everything the browser shows comes from ``/api/v1`` with the same API key as the CLI; these
routes only serve files, so they need no key. Nothing is fetched from another host.
"""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from modeldeck.errors import NotFound

STATIC = Path(__file__).resolve().parent / "static"
PLOTLY_JS = STATIC / "vendor" / "plotly-basic.min.js"
MEDIA_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
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


@functools.cache
def plotly_js() -> tuple[bytes, bytes]:
    """The vendored Plotly.js basic bundle (``static/vendor``), plain and gzipped (read once)."""
    data = PLOTLY_JS.read_bytes()
    return data, gzip.compress(data, compresslevel=6)


@functools.cache
def _index(auth_required: bool) -> str:
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    return page.replace("{{auth_required}}", "true" if auth_required else "false")


@router.get("/")
async def index(request: Request) -> HTMLResponse:
    auth = request.app.state.platform.settings.auth_enabled
    return HTMLResponse(
        _index(bool(auth)), headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"}
    )


@router.get("/dashboard/vendor/plotly.min.js")
async def plotly(request: Request) -> Response:
    plain, packed = plotly_js()
    headers = {
        **SECURITY_HEADERS,
        "Cache-Control": "public, max-age=86400",
        "Vary": "Accept-Encoding",
    }
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(packed, media_type=MEDIA_TYPES[".js"], headers=headers)
    return Response(plain, media_type=MEDIA_TYPES[".js"], headers=headers)


@router.get("/dashboard/static/{path:path}")
async def static(path: str) -> FileResponse:
    root = STATIC.resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root) or not target.is_file() or target.name == "index.html":
        raise NotFound(f"no dashboard file {path!r}")
    return FileResponse(
        target,
        media_type=MEDIA_TYPES.get(target.suffix, "application/octet-stream"),
        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
    )
