"""The API's documentation pages: Swagger UI at ``/docs`` and ReDoc at ``/redoc``.

Both read the platform's own ``/openapi.json``. Their scripts and styles are the files the
``fastapi-offline`` package ships (Swagger UI's bundle and CSS, ReDoc's standalone bundle),
served from ``/docs/assets/``: nothing is fetched from another host, as for the dashboard. The
pages carry no inline script, so their Content-Security-Policy allows scripts from the platform
only; styles may be inline (both tools inject ``<style>`` elements) and ReDoc runs a worker
from a ``blob:`` URL.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from modeldeck.errors import NotFound

from .routes import STATIC

PAGES = STATIC / "apidocs"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self' data:; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "no-cache"}
MEDIA_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
VENDORED = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js")
OURS = ("swagger-init.js",)
LOGO = b"/dashboard/static/favicon.svg"

router = APIRouter(include_in_schema=False)


@functools.cache
def vendor_dir() -> Path:
    """Where ``fastapi-offline`` keeps its copies of Swagger UI and ReDoc (located, not
    imported)."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        raise NotFound("fastapi-offline is not installed: /docs and /redoc need its files")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    return HTMLResponse((PAGES / "docs.html").read_text(encoding="utf-8"), headers=HEADERS)


@router.get("/redoc")
async def redoc() -> HTMLResponse:
    return HTMLResponse((PAGES / "redoc.html").read_text(encoding="utf-8"), headers=HEADERS)


# ReDoc draws its maker's logo from their CDN in the side menu: the platform's own instead.
FOREIGN = {"redoc.standalone.js": (b"https://cdn.redoc.ly/redoc/logo-mini.svg", LOGO)}


@functools.cache
def _vendored(name: str) -> bytes:
    path = vendor_dir() / name
    if not path.is_file():
        raise NotFound(f"the installed fastapi-offline ships no {name}")
    data = path.read_bytes()
    if name in FOREIGN:
        url, ours = FOREIGN[name]
        data = data.replace(url, ours)
    return data


@router.get("/docs/assets/{name}")
async def asset(name: str) -> Response:
    if name in OURS:
        data = (PAGES / name).read_bytes()
    elif name in VENDORED:
        data = _vendored(name)
    else:
        raise NotFound(f"no API documentation file {name!r}")
    return Response(
        data,
        media_type=MEDIA_TYPES[Path(name).suffix],
        headers={**HEADERS, "Cache-Control": "public, max-age=86400"},
    )
