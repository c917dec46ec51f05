"""A replica: one process, one loaded model, a small HTTP app the platform's gateway calls.

Started by the supervisor as ``python -m modeldeck.serving.replica --config JSON --fd N``: the
supervisor binds the listening socket and hands it over, so a replica never races for a port.
The model loads before the socket is served; ``GET /health`` answers once it can predict.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modeldeck.errors import ModeldeckError, ModelError
from modeldeck.serving import codecs
from modeldeck.serving.batcher import Batcher
from modeldeck.serving.model import MlflowModel, ModelRuntime

log = logging.getLogger("modeldeck.replica")


@dataclass
class ReplicaConfig:
    deployment: str
    replica: int
    model_uri: str
    model_version: str
    tracking_uri: str | None = None
    deployment_crn: str = ""
    max_batch_rows: int = 1024
    log_level: str = "info"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return orjson.dumps(asdict(self)).decode()

    @classmethod
    def from_json(cls, text: str) -> ReplicaConfig:
        return cls(**orjson.loads(text))


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(codecs.dumps(body), status, headers, media_type="application/json")


def _error(exc: ModeldeckError) -> Response:
    return _json(exc.to_dict(), exc.status_code)


def to_jsonable(output: Any) -> Any:
    """A model's output as plain JSON values."""
    if hasattr(output, "to_dict") and hasattr(output, "columns"):
        if len(output.columns) == 1:
            return output.iloc[:, 0].tolist()
        return output.to_dict(orient="records")
    if hasattr(output, "tolist"):
        return output.tolist()
    return output


def create_replica_app(config: ReplicaConfig, model: ModelRuntime) -> Starlette:
    """The replica's ASGI app around an already loaded model."""
    batcher = Batcher(model.predict, model.make_input, max_rows=config.max_batch_rows)
    started = time.time()
    replica_id = str(config.replica)

    async def health(request: Request) -> Response:
        if not model.ready:
            return _json({"status": "loading"}, 503)
        return _json(
            {
                "status": "ready",
                "deployment": config.deployment,
                "replica": config.replica,
                "model_version": config.model_version,
                "uptime_seconds": round(time.time() - started, 3),
            }
        )

    async def predict(request: Request) -> Response:
        try:
            frame = codecs.conform(
                codecs.parse(codecs.loads(await request.body())), model.input_columns
            )
        except ModeldeckError as exc:
            return _error(exc)
        try:
            output = await batcher.submit(frame)
        except Exception as exc:
            log.exception("predict failed")
            return _error(ModelError(f"the model raised {type(exc).__name__}: {exc}"))
        prediction_id = str(uuid.uuid4())
        return _json(
            {"prediction": to_jsonable(output), "uuid": prediction_id},
            headers={"X-Prediction-Id": prediction_id, "X-Modeldeck-Replica": replica_id},
        )

    async def lifespan(app: Starlette):  # type: ignore[no-untyped-def]
        batcher.start()
        yield
        await batcher.stop()
        model.unload()

    return Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/predict", predict, methods=["POST"]),
        ],
        lifespan=lifespan,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="modeldeck-replica")
    parser.add_argument("--config", required=True, help="replica configuration as JSON")
    parser.add_argument("--fd", type=int, required=True, help="listening socket's descriptor")
    parser.add_argument("--parent-pid", type=int, default=None, help="exit when it exits")
    args = parser.parse_args(argv)
    if args.parent_pid:
        _die_with_parent(args.parent_pid)
    config = ReplicaConfig.from_json(args.config)
    logging.basicConfig(
        level=config.log_level.upper(),
        format=f"%(asctime)s replica-{config.replica} %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
    )
    log.info("loading %s", config.model_uri)
    t0 = time.perf_counter()
    model = MlflowModel(config.model_uri, config.tracking_uri)
    try:
        model.load()
    except Exception:
        log.exception("could not load %s", config.model_uri)
        sys.exit(3)
    log.info("loaded %s in %.1f s", config.model_uri, time.perf_counter() - t0)

    import socket

    import uvicorn

    # socket.socket(fileno=...) detects the family (AF_INET), so asyncio sets TCP_NODELAY on
    # accepted connections; uvicorn's fd= path assumes AF_UNIX and answers 40 ms late.
    sock = socket.socket(fileno=args.fd)
    server = uvicorn.Server(
        uvicorn.Config(
            create_replica_app(config, model),
            log_level=config.log_level,
            access_log=False,
            timeout_keep_alive=120,
            timeout_graceful_shutdown=10,
        )
    )
    server.run(sockets=[sock])


def _die_with_parent(parent_pid: int) -> None:
    """A replica must not outlive a platform killed with SIGKILL (it would hold memory)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:
        sys.exit(0)


if __name__ == "__main__":
    main()
