"""The functions of Cloudera ML's ``cml.metrics_v1``, ``cml.models_v1`` and ``cdsw`` on modeldeck.

Signatures follow Cloudera's documentation; behaviour follows :mod:`modeldeck.metrics` (records
are kept by the modeldeck platform, or in the local dev store with ``dev=True``). Records read
back as Cloudera ML shows them, with the CRNs of the ``cmlapi`` model, build and deployment that
made them (:mod:`modeldeck.compat.cml_records`). Calls to the platform go through the process's
one HTTP client (:mod:`modeldeck.httpclient`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from modeldeck import httpclient
from modeldeck import metrics as _metrics
from modeldeck.compat.cml_records import CmlRecords, RestCmlRecords
from modeldeck.errors import BadRequest

F = TypeVar("F", bound=Callable[..., Any])

track_metric = _metrics.track_metric


def cml_model(metrics: bool = True) -> Callable[[F], F]:
    """``@cml_model(metrics=True)``: the predict function returns prediction, uuid and CRN."""
    return _metrics.model(metrics=metrics)


model_metrics = _metrics.model(metrics=True)
"""``@cdsw.model_metrics``: the decorator without arguments."""


def track_delayed_metrics(metrics: dict[str, Any], prediction_uuid: str, dev: bool = False) -> None:
    _metrics.track_delayed_metrics(metrics, prediction_uuid, dev=dev)


def track_aggregate_metrics(
    metrics: dict[str, Any],
    start_timestamp_ms: int,
    end_timestamp_ms: int,
    model_deployment_crn: str | None = None,
    dev: bool = False,
) -> None:
    """Window-level metrics of the deployment ``model_deployment_crn`` names (a ``cmlapi``
    deployment's CRN, or a modeldeck deployment's)."""
    if dev or model_deployment_crn is None:
        _metrics.track_aggregate_metrics(
            metrics,
            start_timestamp_ms,
            end_timestamp_ms,
            model_deployment_crn=model_deployment_crn,
            dev=dev,
        )
        return
    _records().track_aggregate(metrics, start_timestamp_ms, end_timestamp_ms, model_deployment_crn)


def read_metrics(
    model_deployment_crn: str | None = None,
    start_timestamp_ms: int | None = None,
    end_timestamp_ms: int | None = None,
    model_crn: str | None = None,
    model_build_crn: str | None = None,
    dev: bool = False,
) -> dict[str, list[dict[str, Any]]]:
    """``{"metrics": [...]}``: the records in the window (default: from 0 until now) that carry
    every CRN given, as on Cloudera ML: ``model_crn`` alone reads every deployment of the
    model, ``model_build_crn`` the predictions of that build, ``model_deployment_crn`` those of
    that deployment. Registry deployments' records hold the model's output under
    ``prediction`` and the input under ``input``. With ``dev=True``, the dev store's records."""
    if dev:
        result = _metrics.read_metrics(None, start_timestamp_ms or 0, end_timestamp_ms, dev=True)
        wanted = {"modelCrn": model_crn, "modelBuildCrn": model_build_crn,
                  "modelDeploymentCrn": model_deployment_crn}  # fmt: skip
        return {
            "metrics": [
                r
                for r in result["metrics"]
                if all(value is None or r[key] == value for key, value in wanted.items())
            ]
        }
    if not (model_crn or model_build_crn or model_deployment_crn):
        raise BadRequest(
            "name what to read: model_crn, model_build_crn or model_deployment_crn (or dev=True)",
            details={"field": "model_deployment_crn"},
        )
    records = _records().iter(
        model_crn=model_crn,
        model_build_crn=model_build_crn,
        model_deployment_crn=model_deployment_crn,
        start_ms=start_timestamp_ms or 0,
        end_ms=end_timestamp_ms,
    )
    return {"metrics": list(records)}


def _records() -> CmlRecords | RestCmlRecords:
    """The platform's records: through its REST API when ``MODELDECK_URL`` is set (or after
    ``modeldeck.metrics.configure``), else in the store of ``MODELDECK_DATA_DIR`` /
    ``MODELDECK_STORE_URL``, as :mod:`modeldeck.metrics` decides."""
    from modeldeck.records.sdk_backends import LocalBackend

    backend = _metrics._backend(dev=False)
    if isinstance(backend, LocalBackend):
        return CmlRecords(backend.store, backend.metrics)
    return RestCmlRecords(backend.client)


def platform_url() -> str:
    """``MODELDECK_URL``, else ``https://$CDSW_DOMAIN`` as Cloudera scripts build it."""
    url = os.environ.get("MODELDECK_URL")
    if url:
        return url.rstrip("/")
    domain = os.environ.get("CDSW_DOMAIN")
    if domain:
        return f"https://{domain}"
    return "http://127.0.0.1:8000"


def call_model(model_access_key: str, ipt: Any, timeout: float = 30.0) -> dict[str, Any]:
    """Call a deployed model through the Cloudera-compatible ``/model`` endpoint.

    Returns the endpoint's answer, ``{"success": true, "response": {...}}`` (or
    ``{"success": false, ...}`` with the error). Every call reuses the process's one HTTP
    client and its open connection.
    """
    response = httpclient.shared().post(
        f"{platform_url()}/model",
        json={"accessKey": model_access_key, "request": ipt},
        timeout=timeout,
    )
    body: dict[str, Any] = response.json()
    return body
