"""The metrics SDK: track per-prediction metrics, join delayed ground truth, read them back.

Inside a predict function::

    import modeldeck
    from modeldeck import metrics

    @modeldeck.model(metrics=True)
    def predict(args):
        metrics.track_metric("input", args)
        result = ...
        metrics.track_metric("output", result)
        return result

Each call returns ``{"prediction", "uuid", "model_deployment_crn"}``. In a replica the record is
committed before the endpoint answers. Outside a replica the decorator runs in **dev mode**, as
Cloudera ML's does: records go to a local dev store under fixed dev identifiers, and
``dev=True`` on the functions below reads and tracks there. ``@modeldeck.model(deployment=...)``
records into a batch deployment instead (inference jobs without an endpoint).

Later, from anywhere::

    metrics.track_delayed_metrics({"actual_result": "1"}, uuid)
    metrics.track_aggregate_metrics({"accuracy": 0.93}, start_ms, end_ms, deployment="iris")
    metrics.read_metrics(deployment="iris", start_timestamp_ms=..., end_timestamp_ms=...)

These talk to the platform's REST API when ``MODELDECK_URL`` is set (or after
:func:`configure`), and to the store in ``MODELDECK_DATA_DIR`` / ``MODELDECK_STORE_URL``
otherwise.
"""

from __future__ import annotations

import contextvars
import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from modeldeck.errors import BadRequest
from modeldeck.records.model_metrics import (
    PredictionRecord,
    clean_metric,
    new_prediction_id,
    now_ms,
    records_frame,
)

F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "configure",
    "iter_metrics",
    "model",
    "read_metrics",
    "read_metrics_df",
    "track_aggregate_metrics",
    "track_delayed_metrics",
    "track_metric",
]


@dataclass
class _Prediction:
    uuid: str
    start_ms: int
    metrics: dict[str, Any] = field(default_factory=dict)


_current: contextvars.ContextVar[_Prediction | None] = contextvars.ContextVar(
    "modeldeck_prediction", default=None
)


class Sink(Protocol):
    """Where the decorator's records go: a replica's writer, a batch deployment, the dev store."""

    crn: str

    def record(self, record: PredictionRecord) -> None: ...


_replica_sink: Sink | None = None
_lock = threading.Lock()
_backends: dict[tuple[str, bool], Any] = {}
_configured: dict[str, str | None] = {}


def set_replica_sink(sink: Sink | None) -> None:
    """Called once by a replica: decorated functions record through its group writer."""
    global _replica_sink
    _replica_sink = sink


def configure(url: str | None = None, api_key: str | None = None) -> None:
    """Send SDK calls to a platform's REST API (default: ``MODELDECK_URL``, if set)."""
    with _lock:
        _configured.clear()
        _configured.update(url=url, api_key=api_key)
        _backends.clear()


def track_metric(key: str, value: Any) -> None:
    """Track a metric for the prediction being computed (inside a decorated function)."""
    prediction = _current.get()
    if prediction is None:
        raise BadRequest(
            "track_metric() must be called inside a function decorated with "
            "@modeldeck.model(metrics=True)"
        )
    clean_key, clean_value = clean_metric(key, value)
    prediction.metrics[clean_key] = clean_value


def model(metrics: bool = True, *, deployment: str | None = None) -> Callable[[F], F]:
    """Wrap a predict function so that each call is a tracked prediction with a UUID.

    The wrapped function returns ``{"prediction": ..., "uuid": ...,
    "model_deployment_crn": ...}``. In a replica records go to that deployment; with
    ``deployment=`` to that batch deployment; otherwise to the dev store (dev mode).
    """

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> dict[str, Any]:
            sink = _sink_for(deployment) if metrics else None
            prediction = _Prediction(uuid=new_prediction_id(), start_ms=now_ms())
            token = _current.set(prediction)
            try:
                result = fn(*args, **kwargs)
            finally:
                _current.reset(token)
            if sink is None:
                return {"prediction": result, "uuid": prediction.uuid}
            sink.record(
                PredictionRecord(
                    uuid=prediction.uuid,
                    deployment_id="",
                    start_ms=prediction.start_ms,
                    end_ms=now_ms(),
                    metrics=prediction.metrics,
                )
            )
            return {
                "prediction": result,
                "uuid": prediction.uuid,
                "model_deployment_crn": sink.crn,
            }

        inner.__modeldeck_model__ = True  # type: ignore[attr-defined]
        return inner  # type: ignore[return-value]

    return wrap


def track_delayed_metrics(
    metrics: dict[str, Any],
    prediction_uuid: str,
    deployment: str | None = None,
    *,
    dev: bool = False,
) -> None:
    """Attach metrics that arrived later (e.g. the ground truth) to a prediction by its UUID.

    Raises ``NotFound`` for a UUID that was never recorded (or not in ``deployment``).
    """
    _backend(dev).track_delayed(metrics, prediction_uuid, deployment)


def track_aggregate_metrics(
    metrics: dict[str, Any],
    start_timestamp_ms: int,
    end_timestamp_ms: int,
    deployment: str | None = None,
    *,
    model_deployment_crn: str | None = None,
    model_version: str | None = None,
    dev: bool = False,
) -> None:
    """Track window-level metrics (e.g. accuracy over a day) for a deployment."""
    _backend(dev).track_aggregate(
        metrics,
        start_timestamp_ms,
        end_timestamp_ms,
        _deployment_name(deployment, model_deployment_crn, dev),
        model_version,
    )


def iter_metrics(
    deployment: str | None = None,
    start_timestamp_ms: int = 0,
    end_timestamp_ms: int | None = None,
    *,
    model_deployment_crn: str | None = None,
    prediction_uuids: Sequence[str] | None = None,
    model_version: str | None = None,
    dev: bool = False,
) -> Iterator[dict[str, Any]]:
    """Every record in the range, fetched a page at a time (for large ranges)."""
    backend = _backend(dev)
    records: Iterator[dict[str, Any]] = backend.iter_records(
        _deployment_name(deployment, model_deployment_crn, dev),
        start_ms=start_timestamp_ms,
        end_ms=end_timestamp_ms,
        uuids=list(prediction_uuids) if prediction_uuids is not None else None,
        model_version=model_version,
    )
    return records


def read_metrics(
    deployment: str | None = None,
    start_timestamp_ms: int = 0,
    end_timestamp_ms: int | None = None,
    *,
    model_deployment_crn: str | None = None,
    prediction_uuids: Sequence[str] | None = None,
    model_version: str | None = None,
    dev: bool = False,
) -> dict[str, list[dict[str, Any]]]:
    """``{"metrics": [record, ...]}`` in Cloudera ML's record shape, oldest first."""
    return {
        "metrics": list(
            iter_metrics(
                deployment,
                start_timestamp_ms,
                end_timestamp_ms,
                model_deployment_crn=model_deployment_crn,
                prediction_uuids=prediction_uuids,
                model_version=model_version,
                dev=dev,
            )
        )
    }


def read_metrics_df(*args: Any, **kwargs: Any) -> Any:
    """:func:`read_metrics` as a pandas DataFrame, one column per metric key."""
    return records_frame(read_metrics(*args, **kwargs)["metrics"])


# -- plumbing -----------------------------------------------------------------------------------


def _deployment_name(name: str | None, crn: str | None, dev: bool) -> str:
    if dev:
        return name or "dev"
    if name:
        return name
    if crn:
        return crn
    raise BadRequest("name the deployment: deployment='...' (or model_deployment_crn='...')")


def _sink_for(deployment: str | None) -> Sink:
    if deployment is None and _replica_sink is not None:
        return _replica_sink
    backend = _backend(dev=deployment is None)
    return backend.sink(deployment or "dev")  # type: ignore[no-any-return]


def _backend(dev: bool) -> Any:
    from modeldeck.config import ClientSettings, Settings
    from modeldeck.records.sdk_backends import LocalBackend, RestBackend

    key = ("dev" if dev else "default", dev)
    with _lock:
        backend = _backends.get(key)
        if backend is not None:
            return backend
        url = _configured.get("url")
        client = ClientSettings()
        if not dev and (url or "url" in client.model_fields_set):
            api_key = _configured.get("api_key") or (
                client.api_key.get_secret_value() if client.api_key else None
            )
            backend = RestBackend(url or client.url, api_key)
        else:
            backend = LocalBackend(Settings(), dev=dev)
        _backends[key] = backend
        return backend
