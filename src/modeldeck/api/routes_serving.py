"""Model endpoints: ``/deployments/{name}/predict`` and Cloudera ML's ``/model``."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from modeldeck.errors import BadRequest, ModeldeckError
from modeldeck.gateway.forward import Answer
from modeldeck.gateway.routes import RouteEntry
from modeldeck.platform import Platform
from modeldeck.replica.codecs import FORMS, dumps, loads

from .deps import (
    authorize_predict,
    bearer_token,
    get_platform,
    read_body,
    route_for_access_key,
)
from .errors import cml_error_response, error_response
from .routes_control import ERROR_SCHEMA, errors

router = APIRouter(tags=["model endpoints"])
log = logging.getLogger("modeldeck.api")

PREDICT_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "description": "One of inputs, instances, dataframe_split, dataframe_records.",
                "properties": {form: {} for form in FORMS},
            },
            "example": {"inputs": [[5.1, 3.5, 1.4, 0.2]]},
        }
    },
}
PREDICTION = {
    "type": "object",
    "properties": {"prediction": {}, "uuid": {"type": "string", "format": "uuid"}},
    "required": ["prediction", "uuid"],
}


@router.post(
    "/deployments/{name}/predict",
    summary="Predict with a deployed model",
    openapi_extra={"requestBody": PREDICT_BODY},
    responses={
        200: {"description": "Prediction", "content": {"application/json": {"schema": PREDICTION}}},
        **errors(400, 401, 403, 404, 413, 422, 429, 500, 503, 504),
    },
)
async def predict(name: str, request: Request) -> Response:
    return await predict_response(request.app.state.platform, request, name)


async def predict_response(platform: Platform, request: Request, name: str) -> Response:
    """Answer one prediction request, counted in technical monitoring whatever its outcome."""
    route = platform.gateway.route(name)  # unknown names are not counted: no deployment
    return await serve_prediction(platform, request, route)


class Dialect(Protocol):
    """How a protocol other than modeldeck's own (the Open Inference Protocol) speaks to the
    model endpoint: its body translated to the replicas' form, their answer and errors back."""

    def request(self, body: bytes) -> bytes: ...

    def answer(self, answer: Answer) -> Response: ...

    def error(self, exc: ModeldeckError) -> JSONResponse: ...


async def serve_prediction(
    platform: Platform, request: Request, route: RouteEntry, dialect: Dialect | None = None
) -> Response:
    """Authorize, read, forward and count one prediction of ``route``'s deployment: the one
    path of every model endpoint (the replica records the prediction before it answers)."""
    started = time.perf_counter()
    body = b""
    try:
        await authorize_predict(platform, route, bearer_token(request))
        body = await read_body(request, platform.settings.max_request_bytes)
        forwarded = body if dialect is None else dialect.request(body)
        answer = await platform.gateway.forward(route, forwarded)
    except ModeldeckError as exc:
        failed = error_response(exc) if dialect is None else dialect.error(exc)
        platform.observe_request(
            route, None, exc.status_code, time.perf_counter() - started,
            _request_size(request, body), len(failed.body),
        )  # fmt: skip
        return failed
    response: Response
    if dialect is None:
        response = Response(answer.body, answer.status, answer.headers)
    else:
        response = dialect.answer(answer)
    platform.observe_request(
        route, answer.replica, answer.status, time.perf_counter() - started,
        len(body), len(response.body), version=answer.version,
    )  # fmt: skip
    return response


def _request_size(request: Request, body: bytes) -> int:
    length = request.headers.get("content-length", "")
    return int(length) if length.isdigit() else len(body)


CML_ERROR = {
    "description": "Error, in Cloudera ML's form",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "success": {"type": "boolean", "enum": [False]},
                    "error": ERROR_SCHEMA["properties"]["error"],  # type: ignore[index]
                },
                "required": ["success", "error"],
            }
        }
    },
}


@router.post(
    "/model",
    summary="Cloudera ML compatible model call",
    responses={code: CML_ERROR for code in (400, 401, 403, 404, 413, 422, 429, 500, 503, 504)},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {"accessKey": {"type": "string"}, "request": {}},
                        "required": ["request"],
                    }
                }
            },
        }
    },
)
async def cml_model(
    request: Request,
    access_key: str | None = Query(default=None, alias="accessKey"),
    platform: Platform = Depends(get_platform),
) -> Response:
    return await cml_response(platform, request)


async def cml_response(platform: Platform, request: Request) -> Response:
    started = time.perf_counter()
    route = None
    body = b""
    try:
        body = await read_body(request, platform.settings.max_request_bytes)
        payload = loads(body)
        if not isinstance(payload, dict):
            raise BadRequest("the body must be a JSON object with 'accessKey' and 'request'")
        key = payload.get("accessKey") or request.query_params.get("accessKey")
        route = await route_for_access_key(platform, key if isinstance(key, str) else None)
        inner = payload.get("request")
        if not isinstance(inner, dict):
            raise BadRequest("'request' must be a JSON object", details={"field": "request"})
        if route.source == "registry" and not any(form in inner for form in FORMS):
            inner = {"inputs": inner}  # a plain record of feature values, as in Cloudera ML
        answer = await platform.gateway.forward(route, dumps(inner))
        result: dict[str, Any] = orjson.loads(answer.body)
        if answer.status != 200:
            response = JSONResponse({"success": False, **result}, status_code=answer.status)
        else:
            result["model_deployment_crn"] = platform.cml.answer_crn(route, answer.version)
            response = JSONResponse(
                {"success": True, "response": result},
                headers={"X-Prediction-Id": result.get("uuid", "")},
            )
        replica, version = answer.replica, answer.version
    except ModeldeckError as exc:
        response = cml_error_response(exc)
        replica, version = None, None
    if route is not None:  # requests with no valid key belong to no deployment
        platform.observe_request(
            route, replica, response.status_code, time.perf_counter() - started,
            _request_size(request, body), len(response.body), version=version,
        )  # fmt: skip
    return response


# The Open Inference Protocol's infer: platform, request, deployment name, version or None.
InferHandler = Callable[[Platform, Request, str, str | None], Awaitable[Response]]


class ModelEndpointsMiddleware:
    """Answers the model endpoints ahead of FastAPI's router.

    The hot path needs no dependency injection or schema validation, and skipping them halves
    the platform's CPU per prediction. The FastAPI routes above stay for the OpenAPI document
    and call the same functions. ``infer``: the Open Inference Protocol's
    ``POST /v2/models/{name}[/versions/{v}]/infer`` (``routes_oip.infer_response``), answered
    here likewise.
    """

    PREFIX = "/deployments/"
    SUFFIX = "/predict"
    OIP_PREFIX = "/v2/models/"
    OIP_SUFFIX = "/infer"

    def __init__(self, app: ASGIApp, infer: InferHandler | None = None) -> None:
        self.app = app
        self.infer = infer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            response: Response | None = None
            if path.startswith(self.PREFIX) and path.endswith(self.SUFFIX):
                name = path[len(self.PREFIX) : -len(self.SUFFIX)]
                if name and "/" not in name:
                    request = Request(scope, receive)
                    try:
                        response = await predict_response(
                            scope["app"].state.platform, request, name
                        )
                    except ModeldeckError as exc:
                        response = error_response(exc)
                    except ClientDisconnect:
                        log.debug("client went away while sending a request to %s", name)
                        return
            elif (
                self.infer is not None
                and path.startswith(self.OIP_PREFIX)
                and path.endswith(self.OIP_SUFFIX)
            ):
                parts = path[len(self.OIP_PREFIX) : -len(self.OIP_SUFFIX)].split("/")
                if len(parts) == 1 or (len(parts) == 3 and parts[1] == "versions"):
                    version = parts[2] if len(parts) == 3 else None
                    try:
                        response = await self.infer(
                            scope["app"].state.platform, Request(scope, receive), parts[0], version
                        )
                    except ClientDisconnect:
                        log.debug("client went away while sending a request to %s", path)
                        return
            elif path == "/model":
                try:
                    response = await cml_response(
                        scope["app"].state.platform, Request(scope, receive)
                    )
                except ClientDisconnect:
                    log.debug("client went away while sending a request to /model")
                    return
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
