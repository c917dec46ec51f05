"""The one error handler: every failure on every route renders ``errors.error_body``.

An exception no handler expects (a bug) is answered by :class:`UnhandledErrorMiddleware` with a
500 ``internal_error`` in the same shape, and the connection stays open for the client's next
request.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modeldeck.errors import ModeldeckError, error_body
from modeldeck.store.db import describe_error

log = logging.getLogger("modeldeck.api")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "too_many_requests",
}


def error_response(exc: ModeldeckError) -> JSONResponse:
    return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=exc.headers or None)


def cml_error_response(exc: ModeldeckError) -> JSONResponse:
    """Cloudera ML's form: the same error object, beside ``"success": false``."""
    return JSONResponse(
        {"success": False, **exc.to_dict()},
        status_code=exc.status_code,
        headers=exc.headers or None,
    )


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


async def _modeldeck_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ModeldeckError)
    return error_response(exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return JSONResponse(
            error_body("invalid_json", "the request body is not valid JSON"), status_code=400
        )
    content_type = request.headers.get("content-type", "")
    if (
        "json" not in content_type
        and errors
        and all(tuple(e.get("loc", ())) == ("body",) for e in errors)
    ):
        return JSONResponse(
            error_body(
                "unsupported_media_type",
                "send the body as JSON with 'Content-Type: application/json'"
                + (f" (got {content_type!r})" if content_type else ""),
            ),
            status_code=415,
        )
    problems = [
        {
            "field": _field(e.get("loc", ())),
            "message": str(e.get("msg")).removeprefix("Value error, "),
        }
        for e in errors
    ]
    first = problems[0] if problems else {"field": "body", "message": "invalid request"}
    return JSONResponse(
        error_body(
            "validation_failed",
            f"{first['field']}: {first['message']}",
            {"field": first["field"], "errors": problems},
        ),
        status_code=422,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error" if exc.status_code < 500 else "internal_error")
    message = str(exc.detail)
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route for {request.method} {request.url.path}"
    return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=exc.headers)


async def _client_gone(request: Request, exc: Exception) -> Response:
    """The client disconnected before its request was read: nobody is left to answer."""
    log.debug("client went away during %s %s", request.method, request.url.path)
    return Response(status_code=400)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, DBAPIError):
        # Its message quotes the statement and, on PostgreSQL, the row's values: log the
        # stack and what failed, not what was in it.
        log.error(
            "unhandled database error on %s %s: %s\n%s",
            request.method,
            request.url.path,
            describe_error(exc),
            "".join(traceback.format_tb(exc.__traceback__)),
        )
    else:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(
        error_body("internal_error", f"internal error: {type(exc).__name__}"), status_code=500
    )


class UnhandledErrorMiddleware:
    """Answers an exception that no handler took with the JSON 500, and ends there.

    Starlette's ``ServerErrorMiddleware`` answers the same 500 but then re-raises the exception
    for the server to log, and uvicorn closes the connection of an application that raised:
    a client keeping its connection alive found its next request failing with "connection
    reset". Caught here first, the error is logged once (by the handler), answered, and the
    connection is kept. An exception after the answer began (a stream cut short) cannot be
    answered any more: it is re-raised, and closing the connection is what tells the client
    that the answer is incomplete.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            if started:
                raise
            response = await _unexpected(Request(scope), exc)
            await response(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ModeldeckError, _modeldeck_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _unexpected)
