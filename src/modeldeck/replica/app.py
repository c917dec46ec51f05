"""A replica: one process, one loaded model, a small HTTP app the platform's gateway calls.

Started by the supervisor as ``python -m modeldeck.replica.app --config JSON --fd N``: the
supervisor binds the listening socket and hands it over, so a replica never races for a port.
The model loads before the socket is served; ``GET /health`` answers once it can predict.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modeldeck.errors import ModeldeckError, ModelError, ServiceUnavailable, ValidationFailed
from modeldeck.process import tune_gc
from modeldeck.records.journal import journal_dir
from modeldeck.records.model_metrics import (
    ModelMetrics,
    PredictionRecord,
    new_prediction_id,
    now_ms,
)
from modeldeck.records.writer import GroupWriter
from modeldeck.replica import codecs
from modeldeck.replica.batcher import Batcher
from modeldeck.replica.function import PythonFunction
from modeldeck.replica.model import MlflowModel, ModelRuntime, Scored

log = logging.getLogger("modeldeck.replica")


@dataclass
class ReplicaConfig:
    deployment: str
    replica: int
    model_uri: str
    model_version: str
    tracking_uri: str | None = None
    deployment_crn: str = ""
    deployment_id: str = ""
    model_name: str = ""
    store_url: str | None = None
    track_metrics: bool = False
    source: str = "registry"  # registry | file
    file_path: str | None = None
    function_name: str | None = None
    max_batch_rows: int = 1024
    max_response_bytes: int = 16 * 1024 * 1024
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    log_level: str = "info"
    env_packages: list[str] = field(default_factory=list)
    """Packages whose installed versions ``/health`` reports (a build's model requirements)."""
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
    """A model's output as plain JSON values: one value per row (a DataFrame of one column, or
    an array of one column as CatBoost's classifiers answer, become a list of values), a record
    per row for a DataFrame of several columns."""
    if hasattr(output, "to_dict") and hasattr(output, "columns"):
        if len(output.columns) == 1:
            return output.iloc[:, 0].tolist()
        return output.to_dict(orient="records")
    shape = getattr(output, "shape", None)
    if isinstance(shape, tuple) and len(shape) == 2 and shape[1] == 1:
        return output[:, 0].tolist()
    if hasattr(output, "tolist"):
        return output.tolist()
    return output


class ReplicaSink:
    """Records of decorated predict functions go through the replica's group writer."""

    def __init__(self, writer: GroupWriter, config: ReplicaConfig) -> None:
        self.writer = writer
        self.config = config
        self.crn = config.deployment_crn

    def record(self, record: PredictionRecord) -> None:
        record.deployment_id = self.config.deployment_id
        record.model_version = self.config.model_version
        record.replica = self.config.replica
        self.writer.write_blocking(record)


def _record_input(frame: codecs.Frame) -> Any:
    """What a prediction's ``input`` metric holds: a record for one row, records for many."""
    if frame.columns is None:
        return frame.rows[0] if len(frame.rows) == 1 else frame.rows
    records = [dict(zip(frame.columns, row, strict=True)) for row in frame.rows]
    return records[0] if len(records) == 1 else records


def create_replica_app(
    config: ReplicaConfig,
    model: ModelRuntime | PythonFunction,
    writer: GroupWriter | None = None,
) -> Starlette:
    """The replica's ASGI app around an already loaded model.

    With a ``writer``, every prediction's input and output (or what a decorated function
    tracked) is recorded (committed, or journaled) before the 200 goes out.
    """
    started = time.time()
    replica_id = str(config.replica)
    environment = _environment(config.env_packages)
    batcher = (
        None
        if isinstance(model, PythonFunction)
        else Batcher(
            # Tracked classifiers record their class probabilities too: estimated performance
            # and ROC AUC / log loss need them.
            model.predict_scored
            if writer is not None and isinstance(model, MlflowModel) and model.classes
            else model.predict,
            model.make_input,
            max_rows=config.max_batch_rows,
        )
    )

    clean_classes = isinstance(model, MlflowModel) and not any(
        "\x00" in c for c in model.classes or ()
    )

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
                "environment": environment,
            }
        )

    async def commit(prediction_id: str, start_ms: int, metrics: dict[str, Any]) -> None:
        assert writer is not None
        await writer.write(
            PredictionRecord(
                uuid=prediction_id,
                deployment_id=config.deployment_id,
                start_ms=start_ms,
                end_ms=now_ms(),
                metrics=metrics,
                model_version=config.model_version,
                replica=config.replica,
            ),
        )

    limit = config.max_response_bytes

    def answer(prediction: bytes, prediction_id: str) -> Response:
        """``{"prediction": ..., "uuid": ...}`` around the already encoded prediction."""
        return Response(
            b'{"prediction":' + prediction + b',"uuid":"' + prediction_id.encode() + b'"}',
            headers={"X-Prediction-Id": prediction_id, "X-Modeldeck-Replica": replica_id},
            media_type="application/json",
        )

    async def predict_model(request: Request) -> Response:
        assert batcher is not None and not isinstance(model, PythonFunction)
        start_ms = now_ms()
        body = await request.body()
        try:
            frame = codecs.conform(codecs.parse(codecs.loads(body)), model.input_columns)
            if model.input_tensor is not None:
                frame = codecs.conform_tensor(frame, model.input_tensor)
        except ModeldeckError as exc:
            return _error(exc)
        try:
            output = await batcher.submit(frame)
        except Exception as exc:
            log.exception("predict failed")
            return _error(ModelError(f"the model raised {type(exc).__name__}: {exc}"))
        probabilities = None
        if isinstance(output, Scored):
            probabilities = output.records
            output = output.labels
        prediction = to_jsonable(output)
        try:
            encoded = codecs.encode_output(prediction, limit)
        except ModelError as exc:
            log.error("predict answered no JSON: %s", exc.message)
            return _error(exc)
        prediction_id = new_prediction_id()
        if writer is not None:
            single = isinstance(prediction, list) and len(frame.rows) == 1 and len(prediction) == 1
            metrics = {
                "input": _record_input(frame),
                "output": prediction[0] if single else prediction,
            }
            if probabilities is not None:
                metrics["probabilities"] = probabilities[0] if single else probabilities
            try:
                # A classifier's labels and probabilities' keys are its classes, NUL-free.
                _refuse_nul(metrics, body, only_input=probabilities is not None and clean_classes)
                await commit(prediction_id, start_ms, metrics)
            except ModeldeckError as exc:
                return _error(exc)
            except Exception as exc:
                return _error(_unrecorded(exc))
        return answer(encoded, prediction_id)

    async def predict_function(request: Request) -> Response:
        assert isinstance(model, PythonFunction)
        start_ms = now_ms()
        body = await request.body()
        try:
            args = codecs.loads(body)
        except ModeldeckError as exc:
            return _error(exc)
        try:
            result = await asyncio.to_thread(model, args)
        except ModeldeckError as exc:
            return _error(exc)
        except Exception as exc:
            log.exception("predict failed")
            return _error(ModelError(f"the model raised {type(exc).__name__}: {exc}"))
        if model.tracks_itself and isinstance(result, dict) and "uuid" in result:
            # The decorator tracked and committed it; its answer goes out as it made it.
            try:
                whole = codecs.encode_output(result, limit)
            except ModelError as exc:
                return _error(exc)
            uuid = str(result["uuid"])
            return Response(
                whole,
                headers={"X-Prediction-Id": uuid, "X-Modeldeck-Replica": replica_id},
                media_type="application/json",
            )
        try:
            encoded = codecs.encode_output(result, limit)
        except ModelError as exc:
            log.error("predict answered no JSON: %s", exc.message)
            return _error(exc)
        prediction_id = new_prediction_id()
        if writer is not None:
            metrics = {"input": args, "output": result}
            try:
                _refuse_nul(metrics, body)
                await commit(prediction_id, start_ms, metrics)
            except ModeldeckError as exc:
                return _error(exc)
            except Exception as exc:
                return _error(_unrecorded(exc))
        return answer(encoded, prediction_id)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if batcher is not None:
            batcher.start()
        yield
        if batcher is not None:
            await batcher.stop()
        model.unload()

    return Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route(
                "/predict",
                predict_function if isinstance(model, PythonFunction) else predict_model,
                methods=["POST"],
            ),
        ],
        lifespan=lifespan,
    )


def _environment(packages: list[str]) -> dict[str, Any]:
    """Which interpreter this replica runs and the versions of ``packages`` it imports."""
    import platform
    from importlib import metadata

    versions = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "python": platform.python_version(),
        "executable": sys.executable,
        "packages": versions,
    }


def _unrecorded(exc: BaseException) -> ServiceUnavailable:
    log.error("prediction not answered: its metrics could not be committed: %s", exc)
    return ServiceUnavailable(
        "the prediction's metrics could not be recorded, so it was not answered; retry"
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
    what = config.file_path if config.source == "file" else config.model_uri
    try:
        model, writer = load_replica(config)
    except Exception:
        log.exception("could not load %s", what)
        sys.exit(3)
    tune_gc()

    import socket

    import uvicorn

    # socket.socket(fileno=...) detects the family (AF_INET), so asyncio sets TCP_NODELAY on
    # accepted connections; uvicorn's fd= path assumes AF_UNIX and answers 40 ms late.
    sock = socket.socket(fileno=args.fd)
    from modeldeck import httpserver

    server = uvicorn.Server(
        httpserver.config(
            create_replica_app(config, model, writer if config.track_metrics else None),
            header_timeout=config.header_timeout_seconds,
            body_timeout=config.body_timeout_seconds,
            log_level=config.log_level,
            access_log=False,
            timeout_keep_alive=120,
            timeout_graceful_shutdown=10,
        )
    )
    try:
        server.run(sockets=[sock])
    finally:
        if writer is not None:
            writer.stop()


def load_replica(config: ReplicaConfig) -> tuple[ModelRuntime | PythonFunction, GroupWriter | None]:
    """Load ``config``'s model (or Python function) and start the group writer into the store
    when it records predictions; ``create_replica_app`` serves the pair. Raises if either fails.

    Every runtime's replicas start this way: ``main`` below and the Ray Serve replicas.
    """
    what = config.file_path if config.source == "file" else config.model_uri
    log.info("loading %s", what)
    t0 = time.perf_counter()
    model: ModelRuntime | PythonFunction
    if config.source == "file":
        model = PythonFunction(config.file_path or "", config.function_name or "predict")
    else:
        model = MlflowModel(config.model_uri, config.tracking_uri)
    writer = None
    if config.track_metrics or config.source == "file":
        writer = _start_writer(config)
    try:
        model.load()
    except BaseException:
        if writer is not None:
            writer.stop()
        raise
    log.info("loaded %s in %.1f s", what, time.perf_counter() - t0)
    return model, writer


def _start_writer(config: ReplicaConfig) -> GroupWriter:
    """The group writer into the platform's store; decorated functions record through it."""
    from modeldeck import metrics as sdk
    from modeldeck.store import Store

    if not config.store_url:
        raise RuntimeError("metrics are on but the replica was given no store")
    store = Store(config.store_url)
    # On a SQLite file the replica acknowledges predictions by journaling them: see
    # modeldeck.records.journal. (PostgreSQL commits on the event loop, without waiting.)
    writer = GroupWriter(
        ModelMetrics(store),
        journal=journal_dir(store),
        owner=f"{config.deployment_id}-{config.replica}",
    )
    writer.start()
    sdk.set_replica_sink(ReplicaSink(writer, config))
    return writer


def _refuse_nul(metrics: dict[str, Any], body: bytes, *, only_input: bool = False) -> None:
    """422 for a record PostgreSQL's JSONB could not store (a U+0000 anywhere in it), before
    it joins a group commit whose other records it would make fail. The input can hold one
    only if the body spells it (``\\u0000``); the rest is looked through unless the caller
    knows it clean (``only_input``)."""
    for key, value in metrics.items():
        if key != "input" and only_input:
            continue
        if (key != "input" or b"\\u0000" in body) and _holds_nul(value):
            raise ValidationFailed(
                f"the prediction's {key} holds a NUL character (U+0000), which the store "
                "cannot keep",
                details={"field": key},
            )


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_holds_nul(v) for v in value)
    return False


def _die_with_parent(parent_pid: int) -> None:
    """A replica must not outlive a platform killed with SIGKILL (it would hold memory).

    A replica the platform started is its child: the kernel sends it SIGTERM when the platform
    dies. One forked by the platform's fork server is that server's child, and the server
    lives as long as its children: a thread then waits for the platform itself to exit.
    """
    import signal

    if os.getppid() != parent_pid:
        _watch(parent_pid, lambda: os.kill(os.getpid(), signal.SIGTERM))
        return
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:
        sys.exit(0)


def _watch(pid: int, then: Any) -> None:
    """Call ``then()`` from a daemon thread once process ``pid`` has exited."""
    import select
    import threading

    try:
        fd = os.pidfd_open(pid)  # Linux: readable once the process has exited
    except ProcessLookupError:
        sys.exit(0)
    except (AttributeError, OSError):
        fd = None

    def wait() -> None:
        if fd is not None:
            select.select([fd], [], [])
        else:
            while True:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(1.0)
        then()

    threading.Thread(target=wait, name="platform-watch", daemon=True).start()


if __name__ == "__main__":
    main()
