"""The functions of Cloudera ML's ``cml.metrics_v1``, ``cml.models_v1`` and ``cdsw`` on modeldeck.

Signatures follow Cloudera's documentation; behaviour follows :mod:`modeldeck.metrics` (records
are kept by the modeldeck platform, or in the local dev store with ``dev=True``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from modeldeck import metrics as _metrics
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
    _metrics.track_aggregate_metrics(
        metrics,
        start_timestamp_ms,
        end_timestamp_ms,
        model_deployment_crn=model_deployment_crn,
        dev=dev,
    )


def read_metrics(
    model_deployment_crn: str | None = None,
    start_timestamp_ms: int | None = None,
    end_timestamp_ms: int | None = None,
    model_crn: str | None = None,
    model_build_crn: str | None = None,
    dev: bool = False,
) -> dict[str, list[dict[str, Any]]]:
    """``{"metrics": [...]}``; ``model_crn`` / ``model_build_crn`` narrow the records."""
    if not dev and model_deployment_crn is None:
        raise BadRequest("read_metrics needs model_deployment_crn (or dev=True)")
    result = _metrics.read_metrics(
        None,
        start_timestamp_ms or 0,
        end_timestamp_ms,
        model_deployment_crn=model_deployment_crn,
        dev=dev,
    )
    records = [
        r
        for r in result["metrics"]
        if (model_crn is None or r["modelCrn"] == model_crn)
        and (model_build_crn is None or r["modelBuildCrn"] == model_build_crn)
    ]
    return {"metrics": records}


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
    ``{"success": false, ...}`` with the error).
    """
    response = httpx.post(
        f"{platform_url()}/model",
        json={"accessKey": model_access_key, "request": ipt},
        timeout=timeout,
    )
    body: dict[str, Any] = response.json()
    return body
