"""Security headers on every answer, and no cross-site state changes on the control plane.

``SecurityMiddleware`` is the app's outermost layer, so it covers the model endpoints (answered
by ``ModelEndpointsMiddleware`` ahead of the router) and error answers too:

* every answer carries ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY`` and
  ``Referrer-Policy: no-referrer``, and a ``Content-Security-Policy``: the dashboard's pages set
  their own (``modeldeck.ui.routes.CSP``); every other answer gets
  ``default-src 'none'; frame-ancestors 'none'``, since none of them is meant to be rendered;
* a request that changes state on ``/api/`` (any method but GET, HEAD, OPTIONS) and that a
  browser marks as coming from another site (an ``Origin`` other than the platform's own, or
  ``Sec-Fetch-Site: cross-site``) is refused with a 403. The API takes its key from a header,
  never from a cookie, so a cross-site page cannot borrow it; this check also covers a
  platform run with ``MODELDECK_AUTH_ENABLED=false``, where there is no key to borrow.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modeldeck.errors import Forbidden

from .errors import error_response

API_CSP = b"default-src 'none'; frame-ancestors 'none'"
HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class SecurityMiddleware:
    def __init__(self, app: ASGIApp, public_url: str = "") -> None:
        self.app = app
        self.public_origin = public_url.rstrip("/").lower()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] not in SAFE_METHODS and scope["path"].startswith("/api/"):
            refusal = self._cross_site(scope)
            if refusal is not None:
                await error_response(Forbidden(refusal))(scope, receive, _secured(send))
                return
        await self.app(scope, receive, _secured(send))

    def _cross_site(self, scope: Scope) -> str | None:
        headers = Headers(scope=scope)
        if headers.get("sec-fetch-site", "").lower() == "cross-site":
            return "cross-site requests may not change state on the control plane"
        origin = headers.get("origin")
        if origin is None:
            return None  # not sent by a browser (CLI, client, curl)
        origin = origin.rstrip("/").lower()
        own = f"{scope.get('scheme', 'http')}://{headers.get('host', '')}".lower()
        if origin in (own, self.public_origin):
            return None
        return f"requests from origin {origin!r} may not change state on the control plane"


def _secured(send: Send) -> Send:
    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers: list[tuple[bytes, bytes]] = list(message.get("headers", ()))
            present = {name.lower() for name, _ in headers}
            headers.extend(h for h in HEADERS if h[0] not in present)
            if b"content-security-policy" not in present:
                headers.append((b"content-security-policy", API_CSP))
            message = {**message, "headers": headers}
        await send(message)

    return send_with_headers
