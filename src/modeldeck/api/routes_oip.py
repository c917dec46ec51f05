"""The Open Inference Protocol (KServe V2) on the model endpoints: ``/v2/...``.

The routes only translate (``gateway/oip.py``): an ``infer`` goes through
:func:`routes_serving.serve_prediction`, the path of ``/deployments/{name}/predict``, so it is
authorized by the same access key, forwarded, recorded and counted alike. Errors on these routes
have OIP's shape, ``{"error": "<message>"}``, with modeldeck's ``code`` and ``details`` beside it
(as ``/model`` answers in Cloudera ML's shape).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from modeldeck import __version__
from modeldeck.errors import ModeldeckError, ModelError, NotFound
from modeldeck.gateway import oip
from modeldeck.gateway.forward import Answer
from modeldeck.gateway.routes import RouteEntry
from modeldeck.platform import Platform

from .deps import authorize_predict, bearer_token
from .routes_serving import serve_prediction

router = APIRouter(prefix="/v2", tags=["open inference protocol"])

OIP_ERROR = {
    "description": "Error, in the Open Inference Protocol's shape",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "error": {"type": "string"},
                    "code": {"type": "string"},
                    "details": {"type": "object"},
                },
                "required": ["error"],
            }
        }
    },
}
MODEL_ERRORS: dict[int | str, dict[str, Any]] = {code: OIP_ERROR for code in (401, 403, 404)}
READY_ANSWERS: dict[int | str, dict[str, Any]] = {
    **MODEL_ERRORS,
    503: {
        "description": "The deployment has no ready replica",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
                }
            }
        },
    },
}
INFER_ERRORS: dict[int | str, dict[str, Any]] = {
    code: OIP_ERROR for code in (400, 401, 403, 404, 413, 422, 429, 500, 502, 503, 504)
}
INFER_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "parameters": {"type": "object"},
                    "inputs": {"type": "array", "items": {"type": "object"}},
                    "outputs": {"type": "array", "items": {"type": "object"}},
                },
                "required": ["inputs"],
            },
            "example": {
                "inputs": [
                    {"name": "sepal_length", "datatype": "FP64", "shape": [1], "data": [5.1]},
                    {"name": "sepal_width", "datatype": "FP64", "shape": [1], "data": [3.5]},
                    {"name": "petal_length", "datatype": "FP64", "shape": [1], "data": [1.4]},
                    {"name": "petal_width", "datatype": "FP64", "shape": [1], "data": [0.2]},
                ]
            },
        }
    },
}


class OipDialect:
    """One ``infer`` call: its tensors to the replicas' body, their answer to output tensors."""

    def __init__(self, route: RouteEntry, request: Request) -> None:
        self.route = route
        self.header_length = request.headers.get(oip.PROTOCOL_HEADER)
        self.parsed: oip.InferRequest | None = None

    def request(self, body: bytes) -> bytes:
        self.parsed = oip.parse_infer(body, self.header_length)
        return oip.predict_body(self.parsed, self.route.signature)

    def answer(self, answer: Answer) -> Response:
        if answer.status != 200:
            failure = oip.replica_error(answer.status, answer.body)
            return JSONResponse(oip.error_body(failure), answer.status, answer.headers)
        assert self.parsed is not None
        try:
            payload = orjson.loads(answer.body)
        except orjson.JSONDecodeError:
            payload = None
        if not isinstance(payload, dict):  # a replica answers an object: never seen
            return self.error(ModelError("the replica's answer is not a JSON object"))
        version = answer.version or self.route.version
        body = oip.infer_response(
            payload, self.parsed, self.route.name, version, self.route.signature
        )
        content, header_length = oip.render(body, self.parsed)
        headers = dict(answer.headers)
        headers.pop("content-type", None)
        if header_length is None:
            return Response(content, 200, headers, media_type="application/json")
        headers["Inference-Header-Content-Length"] = str(header_length)
        return Response(content, 200, headers, media_type="application/octet-stream")

    def error(self, exc: ModeldeckError) -> JSONResponse:
        return _error(exc)


def _error(exc: ModeldeckError) -> JSONResponse:
    return JSONResponse(oip.error_body(exc), exc.status_code, headers=exc.headers or None)


def _route(platform: Platform, name: str, version: str | None) -> RouteEntry:
    route = platform.gateway.route(name)
    if version is not None and version != route.version:
        raise NotFound(
            f"deployment {name!r} serves version {route.version}, not {version}",
            details={"deployment": name, "version": version, "serving": route.version},
        )
    return route


@router.get("", summary="Server metadata")
async def server_metadata() -> dict[str, Any]:
    return {"name": "modeldeck", "version": __version__, "extensions": []}


@router.get("/health/live", summary="Server liveness")
async def live() -> dict[str, bool]:
    return {"live": True}


@router.get("/health/ready", summary="Server readiness")
async def ready() -> dict[str, bool]:
    """The platform answers: it is ready (a model's own readiness is ``/v2/models/.../ready``)."""
    return {"ready": True}


async def _authorized(request: Request, name: str, version: str | None) -> RouteEntry:
    """The route, once the request's key opens it (the predict route's rule)."""
    platform: Platform = request.app.state.platform
    route = _route(platform, name, version)
    await authorize_predict(platform, route, bearer_token(request))
    return route


async def _metadata(request: Request, name: str, version: str | None) -> Response:
    try:
        route = await _authorized(request, name, version)
    except ModeldeckError as exc:
        return _error(exc)
    return JSONResponse(oip.model_metadata(route.name, route.version, route.signature))


async def _model_ready(request: Request, name: str, version: str | None) -> Response:
    try:
        route = await _authorized(request, name, version)
    except ModeldeckError as exc:
        return _error(exc)
    serving = request.app.state.platform.runtime.serving(route.name)
    # OIP: 200 means ready; not ready is answered 503, as KServe does.
    return JSONResponse({"name": route.name, "ready": serving}, 200 if serving else 503)


async def infer_response(
    platform: Platform, request: Request, name: str, version: str | None
) -> Response:
    """Answer one ``infer`` call (``ModelEndpointsMiddleware`` calls it ahead of the router)."""
    try:
        route = _route(platform, name, version)  # unknown names are not counted
    except ModeldeckError as exc:
        return _error(exc)
    return await serve_prediction(platform, request, route, OipDialect(route, request))


@router.get("/models/{name}", summary="Model metadata", responses=MODEL_ERRORS)
async def model_metadata(name: str, request: Request) -> Response:
    return await _metadata(request, name, None)


@router.get(
    "/models/{name}/versions/{version}", summary="Model version metadata", responses=MODEL_ERRORS
)
async def version_metadata(name: str, version: str, request: Request) -> Response:
    return await _metadata(request, name, version)


@router.get("/models/{name}/ready", summary="Model readiness", responses=READY_ANSWERS)
async def model_ready(name: str, request: Request) -> Response:
    return await _model_ready(request, name, None)


@router.get(
    "/models/{name}/versions/{version}/ready",
    summary="Model version readiness",
    responses=READY_ANSWERS,
)
async def version_ready(name: str, version: str, request: Request) -> Response:
    return await _model_ready(request, name, version)


@router.post(
    "/models/{name}/infer",
    summary="Inference with typed tensors",
    responses=INFER_ERRORS,
    openapi_extra={"requestBody": INFER_BODY},
)
async def infer(name: str, request: Request) -> Response:
    return await infer_response(request.app.state.platform, request, name, None)


@router.post(
    "/models/{name}/versions/{version}/infer",
    summary="Inference with typed tensors, on a version",
    responses=INFER_ERRORS,
    openapi_extra={"requestBody": INFER_BODY},
)
async def version_infer(name: str, version: str, request: Request) -> Response:
    return await infer_response(request.app.state.platform, request, name, version)
