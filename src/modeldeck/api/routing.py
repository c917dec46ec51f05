"""Strict input: no NUL anywhere, and strict JSON for the control plane's bodies.

A NUL (U+0000) is refused with a 422 naming where it is, on every route: in the path or the
query string (``%00``), and in a control-plane JSON body (``\u0000`` in any string or key).
PostgreSQL cannot compare or store text holding one, SQLite can: without this check the same
request would be a 500 on one store and a 404 or a stored row on the other.

FastAPI parses a JSON body with Python's ``json.loads``, which takes ``NaN``, ``Infinity`` and
``1e400`` (as infinity), lone surrogates, and nests until the interpreter's recursion limit.
Such values then pass ``float`` fields and fail later: in the store, or when the answer is
rendered. :class:`StrictJSONMiddleware` checks every JSON body under ``/api/`` with orjson first,
which refuses all of those (and nesting past 1,024 levels), and answers ``invalid_json`` (400)
before any route runs. A body larger than ``limit`` bytes is refused with ``payload_too_large``
(413) as soon as that is known (from ``Content-Length``, or while it streams in), so a client
cannot make the platform hold an unbounded body in memory. An integer outside the signed 64-bit
range (which neither store's JSON columns can hold) is refused with a 422 naming the field.
"""

from __future__ import annotations

import json as _json
import logging
import re
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modeldeck.errors import error_body

from .routes_control import ERROR_SCHEMA

_BODY_METHODS = {"POST", "PUT", "PATCH"}
_LONG_DIGITS = re.compile(rb"\d{19,}")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
log = logging.getLogger("modeldeck.api")


class StrictInputMiddleware:
    def __init__(self, app: ASGIApp, prefix: str = "/api/", limit: int = 64 * 1024 * 1024) -> None:
        self.app = app
        self.prefix = prefix
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            where = _nul_in_url(scope)
            if where is not None:
                await _nul_response(where)(scope, receive, send)
                return
        if (
            scope["type"] != "http"
            or scope["method"] not in _BODY_METHODS
            or not scope["path"].startswith(self.prefix)
            or not _is_json(scope)
        ):
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.limit:
            await self._too_large(scope, receive, send, f"is {length} bytes, more")
            return
        messages: list[Message] = []
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] == "http.disconnect":
                log.debug("client went away while sending %s %s", scope["method"], scope["path"])
                return  # nobody to answer
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._too_large(scope, receive, send, "is larger")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body.strip():
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                response = JSONResponse(
                    error_body("invalid_json", f"the request body is not valid JSON: {exc}"),
                    status_code=400,
                )
                await response(scope, receive, send)
                return
            if b"\\u0000" in body:  # JSON can only spell a NUL escaped
                where = _nul_in_json(parsed, "")
                if where is not None:
                    await _nul_response(where or "body")(scope, receive, send)
                    return
            if _LONG_DIGITS.search(body):  # only a run of 19+ digits can leave 64 bits
                where = _wide_int_in_json(_json.loads(body), "")
                if where is not None:
                    await _wide_int_response(where or "body")(scope, receive, send)
                    return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, what: str) -> None:
        response = JSONResponse(
            error_body(
                "payload_too_large",
                f"the request body {what} than the control plane accepts ({self.limit} bytes, "
                "MODELDECK_MAX_API_BODY_BYTES); send it in smaller parts",
                {"limit_bytes": self.limit},
            ),
            status_code=413,
            headers={"Connection": "close"},  # the rest of the body is not read
        )
        await response(scope, receive, send)


def _nul_in_url(scope: Scope) -> str | None:
    """``"path"`` or ``"query"`` when the URL holds a NUL (decoded, or as ``%00``)."""
    if "\x00" in scope["path"]:
        return "path"
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        return "query"
    return None


def _nul_in_json(value: Any, path: str) -> str | None:
    """Where the first NUL of a parsed JSON value is (``a.b[2]``), or ``None``."""

    def has_nul(item: Any, key: str | None) -> bool:
        return "\x00" in (key if key is not None else item if isinstance(item, str) else "")

    found = _find_in_json(value, path, has_nul)
    return None if found is None else found.replace("\x00", "\\u0000")


def _wide_int_in_json(value: Any, path: str) -> str | None:
    """Where the first integer outside the signed 64-bit range is, or ``None``.

    ``value`` comes from :func:`json.loads`, which keeps integers exact (orjson would have
    turned the widest into floats).
    """

    def wide(item: Any, key: str | None) -> bool:
        return (
            key is None
            and isinstance(item, int)
            and not isinstance(item, bool)
            and not _INT64_MIN <= item <= _INT64_MAX
        )

    return _find_in_json(value, path, wide)


def _find_in_json(value: Any, path: str, bad: Any) -> str | None:
    """The path (``a.b[2]``) of the first value, or object key, of a parsed JSON value for
    which ``bad(value, None)`` (or ``bad(None, key)`` for a key) is true; ``None`` if none."""
    if bad(value, None):
        return path
    if isinstance(value, dict):
        for key, item in value.items():
            field = f"{path}.{key}" if path else str(key)
            if bad(None, key):
                return field
            found = _find_in_json(item, field, bad)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _find_in_json(item, f"{path}[{i}]", bad)
            if found is not None:
                return found
    return None


def _wide_int_response(field: str) -> JSONResponse:
    message = "is an integer outside the signed 64-bit range, which modeldeck cannot store"
    return JSONResponse(
        error_body(
            "validation_failed",
            f"{field}: {message}; send it as a string or a float",
            {"field": field, "errors": [{"field": field, "message": message}]},
        ),
        status_code=422,
    )


def _nul_response(field: str) -> JSONResponse:
    return JSONResponse(
        error_body(
            "validation_failed",
            f"{field}: holds a NUL character (U+0000), which modeldeck does not accept",
            {"field": field, "errors": [{"field": field, "message": "holds a NUL character"}]},
        ),
        status_code=422,
    )


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            media: bytes = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False


def document_errors(app: FastAPI) -> None:
    """Declare, once for every operation, the errors any of them can answer.

    Routes declare what is theirs (404 for an unknown deployment, 409...). Added here: 400 on
    every operation (invalid JSON, a parameter the registry refuses), 415 where a JSON body is
    taken (another content type), 404 where the path names a resource.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = build()
        if fresh:
            for path, item in schema.get("paths", {}).items():
                for operation in item.values():
                    _add_errors(path, operation)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_errors(path: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    codes = ["400"]
    if "json" in str(operation.get("requestBody", {}).get("content", {}).keys()):
        codes.append("415")
    if "{" in path:
        codes.append("404")
    for code in codes:
        responses.setdefault(code, _error(responses))


def _error(responses: dict[str, Any]) -> dict[str, Any]:
    """The error response in the shape the operation's other errors have (CML's on ``/model``)."""
    for code, response in responses.items():
        if code.startswith(("4", "5")):
            return dict(response, description="Error")
    return {"description": "Error", "content": {"application/json": {"schema": ERROR_SCHEMA}}}
