"""Request-scoped helpers shared by the routes."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from modeldeck.errors import PayloadTooLarge, Unauthorized
from modeldeck.platform import Platform

_bearer = HTTPBearer(auto_error=False, description="Control-plane API key")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="Control-plane API key")


def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def require_api_key(
    request: Request,
    bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
    header: str | None = Depends(_header),
) -> None:
    platform = get_platform(request)
    if not platform.settings.auth_enabled:
        return
    key = bearer.credentials if bearer else header
    if not key:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <API key>'")
    if not platform.api_keys.verify(key):
        raise Unauthorized("invalid API key")


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
