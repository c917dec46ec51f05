"""Request-scoped helpers shared by the routes."""

from __future__ import annotations

import asyncio

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from modeldeck.auth.api_keys import ADMIN, DEPLOY, PREDICT, READ, grants, predict_scope
from modeldeck.errors import Forbidden, PayloadTooLarge, Unauthorized
from modeldeck.gateway.routes import RouteEntry
from modeldeck.platform import Platform

_bearer = HTTPBearer(auto_error=False, description="Control-plane API key")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="Control-plane API key")


def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _check_scope(request: Request, key: str | None, needed: str | None) -> None:
    """401 without a known key; 403 naming the scope needed when the key's does not grant it.

    ``needed=None``: ``read`` for reading (``GET``), ``deploy`` for every other method.
    """
    platform = get_platform(request)
    if not platform.settings.auth_enabled:
        return
    if not key:
        raise Unauthorized(
            "missing API key: set MODELDECK_API_KEY for the CLI and the Python client "
            "(or send 'Authorization: Bearer <API key>')"
        )
    caller = platform.api_keys.authenticate(key)
    if caller is None:
        raise Unauthorized("invalid API key")
    request.state.caller = caller
    needed = needed or (READ if request.method in SAFE_METHODS else DEPLOY)
    if not grants(caller.scope, needed):
        raise Forbidden(
            f"this API key has scope {caller.scope!r}; {request.method} {request.url.path} "
            f"needs scope {needed!r}",
            details={"needed_scope": needed, "scope": caller.scope},
        )


def require_api_key(
    request: Request,
    bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
    header: str | None = Depends(_header),
) -> None:
    """A known API key whose scope allows the call: ``read`` to read, ``deploy`` to change."""
    _check_scope(request, bearer.credentials if bearer else header, None)


def may_read_keys(request: Request) -> bool:
    """Whether the caller may read access keys back (as Cloudera ML shows them to those who
    may deploy): an API key of scope ``deploy`` or ``admin``, or anyone when the control
    plane's authentication is off (anyone may then rotate a key anyway). Goes with
    :func:`require_api_key`, which identifies the caller first."""
    if not get_platform(request).settings.auth_enabled:
        return True
    caller = getattr(request.state, "caller", None)
    return caller is not None and grants(caller.scope, DEPLOY)


def require_admin(
    request: Request,
    bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
    header: str | None = Depends(_header),
) -> None:
    """A known API key with scope ``admin`` (managing API keys)."""
    _check_scope(request, bearer.credentials if bearer else header, ADMIN)


async def authorize_predict(platform: Platform, route: RouteEntry, key: str | None) -> None:
    """The deployment's access key opens its model endpoint, and so does a control-plane API
    key of scope ``predict:<deployment>``; another API key gets a 403 naming that scope."""
    try:
        platform.gateway.authorize(route, key)
    except Unauthorized:
        if not key:
            raise
        caller = await asyncio.to_thread(platform.api_keys.authenticate, key)
        if caller is None:
            raise
        needed = predict_scope(route.name)
        if not caller.opens(route.deployment_id):
            raise Forbidden(
                f"this API key has scope {caller.scope!r}; the model endpoint of "
                f"{route.name!r} needs its access key or an API key of scope {needed!r}",
                details={"needed_scope": needed, "scope": caller.scope, "deployment": route.name},
            ) from None


async def route_for_access_key(platform: Platform, key: str | None) -> RouteEntry:
    """The deployment an access key (or an API key of scope ``predict:<name>``) opens."""
    try:
        return platform.gateway.route_for_key(key)
    except Unauthorized:
        caller = await asyncio.to_thread(platform.api_keys.authenticate, key) if key else None
        if caller is None or not caller.scope.startswith(PREDICT):
            raise
        route = platform.gateway.route(caller.scope.removeprefix(PREDICT))
        if not caller.opens(route.deployment_id):
            raise  # its deployment was deleted (and the key with it) or replaced
        return route


def bearer_token(request: Request) -> str | None:
    value = request.headers.get("authorization")
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def read_body(request: Request, limit: int) -> bytes:
    """The body, or 413 as soon as it is known to exceed ``limit`` bytes."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(
            f"the request body is {int(length)} bytes; the limit is {limit} bytes",
            details={"limit_bytes": limit},
        )
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(
                f"the request body exceeds the limit of {limit} bytes",
                details={"limit_bytes": limit},
            )
        chunks.append(chunk)
    return b"".join(chunks)
