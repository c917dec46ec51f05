"""``modeldeck.Client``: the control-plane API from Python (the CLI is built on it)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx

from modeldeck.config import ClientSettings
from modeldeck.errors import ModeldeckError
from modeldeck.views import (
    AccessKeyView,
    AlertEventView,
    AlertRuleView,
    AliasView,
    ApiKeyCreated,
    ApiKeyView,
    BuildView,
    CanaryView,
    ChannelDeliveryView,
    Counted,
    DeploymentCreated,
    DeploymentView,
    DriftReport,
    DriftSeries,
    EnvironmentView,
    MetricsPage,
    ModelVersionView,
    MonitoringConfigView,
    PerformanceReport,
    PredictionView,
    PruneResult,
    QualityReport,
    Recorded,
    ReferenceView,
    RegisteredModelView,
    TechnicalMetrics,
    View,
    WindowView,
)

V = TypeVar("V", bound=View)


class ApiError(ModeldeckError):
    """An error answered by the platform, with its HTTP status and error code."""

    def __init__(
        self, status_code: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, details=details)
        self.status_code = status_code
        self.code = code

    def __str__(self) -> str:
        return f"{self.message} ({self.status_code} {self.code})"


class Client:
    """A synchronous client for one modeldeck platform.

    Its methods return the platform's answers as typed views (:mod:`modeldeck.views`, the
    pydantic models the server's routes answer with): ``client.deployment("iris").status``.
    Fields a newer platform adds are kept, and dict-style access (``answer["status"]``,
    ``answer.get(...)``) still works for code written when the methods returned dicts.

    ``url`` and ``api_key`` default to ``MODELDECK_URL`` and ``MODELDECK_API_KEY``, ``timeout``
    (seconds to wait for each answer) to ``MODELDECK_CLIENT_TIMEOUT_SECONDS`` (60). ``http`` is
    an HTTP client to send the requests with (the metrics SDK passes the process's shared one,
    :func:`modeldeck.httpclient.shared`); by default the client has one of its own, which
    :meth:`close` closes.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        defaults = ClientSettings()
        self.url = (url or defaults.url).rstrip("/")
        key = api_key or (defaults.api_key.get_secret_value() if defaults.api_key else None)
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        if timeout is None:
            timeout = defaults.client_timeout_seconds
        elif not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self._timeout = timeout
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=timeout)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- registry -----------------------------------------------------------------------------

    def models(self) -> list[RegisteredModelView]:
        return _many(RegisteredModelView, self._get("/api/v1/models"))

    def model(self, name: str) -> RegisteredModelView:
        return RegisteredModelView.model_validate(self._get(f"/api/v1/models/{name}"))

    def model_version(self, name: str, version: str | int) -> ModelVersionView:
        return ModelVersionView.model_validate(
            self._get(f"/api/v1/models/{name}/versions/{version}")
        )

    # -- deployments --------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, version: str | int) -> AliasView:
        """Point ``name@alias`` at ``version`` in the registry (promotion); the answer says
        where it pointed before (``previous_version``)."""
        return AliasView.model_validate(
            self._request(
                "PUT", f"/api/v1/models/{name}/aliases/{alias}", json={"version": int(version)}
            )
        )

    def deploy(
        self,
        name: str,
        model: str | None = None,
        *,
        file: str | None = None,
        function: str | None = None,
        kind: str = "endpoint",
        track_metrics: bool = True,
        version: str | int | None = None,
        alias: str | None = None,
        track_alias: bool = True,
        replicas: int = 1,
        cpu: float | None = None,
        memory_mb: int | None = None,
        environment: dict[str, str] | None = None,
        auth_enabled: bool = True,
        env_manager: str | None = None,
        runtime: str | None = None,
        autoscaling: dict[str, Any] | None = None,
    ) -> DeploymentCreated:
        """Create a deployment of a registered ``model`` or of ``file``'s ``function``.

        ``kind="batch"`` creates a name for batch inference to record predictions under (no
        endpoint). ``env_manager`` ``"uv"`` or ``"virtualenv"`` runs the replicas in an
        isolated environment built from the model's logged requirements (``"local"``, the
        default: the platform's own). With an ``alias`` the deployment follows it (rolls out the
        version it points at whenever it moves) unless ``track_alias`` is false. The answer
        holds the access key, shown only this once. ``runtime`` ``"ray"`` runs it as a Ray
        Serve application (default: the platform's ``MODELDECK_DEFAULT_RUNTIME``).
        ``autoscaling`` (``min_replicas``, ``max_replicas``, ``target_inflight``,
        ``scale_up_delay_seconds``, ``scale_down_delay_seconds``) scales the replicas on the
        requests in flight, starting from ``replicas`` brought into its bounds.
        """
        body: dict[str, Any] = {
            "name": name,
            "kind": kind,
            "replicas": replicas,
            "auth_enabled": auth_enabled,
            "track_metrics": track_metrics,
            "environment": environment or {},
        }
        if not track_alias:
            body["track_alias"] = False
        for key, value in (
            ("model", model),
            ("file", file),
            ("function", function),
            ("version", None if version is None else str(version)),
            ("alias", alias),
            ("cpu", cpu),
            ("memory_mb", memory_mb),
            ("env_manager", env_manager),
            ("runtime", runtime),
            ("autoscaling", autoscaling),
        ):
            if value is not None:
                body[key] = value
        return DeploymentCreated.model_validate(
            self._request("POST", "/api/v1/deployments", json=body)
        )

    def deployments(self) -> list[DeploymentView]:
        return _many(DeploymentView, self._get("/api/v1/deployments"))

    def deployment(self, name: str) -> DeploymentView:
        return DeploymentView.model_validate(self._get(f"/api/v1/deployments/{name}"))

    def stop(self, name: str) -> DeploymentView:
        return DeploymentView.model_validate(
            self._request("POST", f"/api/v1/deployments/{name}/stop")
        )

    def start(self, name: str) -> DeploymentView:
        return DeploymentView.model_validate(
            self._request("POST", f"/api/v1/deployments/{name}/start")
        )

    def scale(
        self, name: str, replicas: int | None = None, *, autoscaling: dict[str, Any] | None = None
    ) -> DeploymentView:
        """A fixed count of ``replicas`` (ends autoscaling), or an ``autoscaling`` policy (see
        ``deploy``)."""
        body: dict[str, Any] = {}
        if replicas is not None:
            body["replicas"] = replicas
        if autoscaling is not None:
            body["autoscaling"] = autoscaling
        return DeploymentView.model_validate(
            self._request("POST", f"/api/v1/deployments/{name}/scale", json=body)
        )

    def delete(self, name: str) -> None:
        self._request("DELETE", f"/api/v1/deployments/{name}")

    def redeploy(
        self,
        name: str,
        model: str | None = None,
        *,
        version: str | int | None = None,
        alias: str | None = None,
        env_manager: str | None = None,
        track_alias: bool = True,
    ) -> DeploymentView:
        """Serve another version under deployment ``name`` (its replicas and settings stay).

        With an isolated environment the version's build runs first while the current version
        keeps serving: follow it with :meth:`builds` / :meth:`wait_build`. With an ``alias``
        the deployment follows it from then on unless ``track_alias`` is false.
        """
        body: dict[str, Any] = {} if track_alias else {"track_alias": False}
        for key, value in (
            ("model", model),
            ("version", None if version is None else str(version)),
            ("alias", alias),
            ("env_manager", env_manager),
        ):
            if value is not None:
                body[key] = value
        return DeploymentView.model_validate(
            self._request("POST", f"/api/v1/deployments/{name}/redeploy", json=body)
        )

    def rollback(self, name: str) -> DeploymentView:
        """Return deployment ``name`` to the version it served before its current one (raises
        ApiError 409 when there is none). Follow it with :meth:`wait` and
        ``version=answer.rollout.version``."""
        return DeploymentView.model_validate(
            self._request("POST", f"/api/v1/deployments/{name}/rollback")
        )

    def canary(
        self,
        name: str,
        *,
        version: str | int | None = None,
        alias: str | None = None,
        percent: float = 10,
        mode: str = "canary",
        replicas: int = 1,
        policy: dict[str, Any] | None = None,
    ) -> CanaryView:
        """Run ``version`` (or ``alias``'s version) beside the one ``name`` serves: on
        ``percent`` of its requests (``mode="canary"``) or on a copy of each (``"shadow"``),
        promoted or rolled back by ``policy`` (see docs/deployments.md)."""
        body: dict[str, Any] = {"percent": percent, "mode": mode, "replicas": replicas}
        if version is not None:
            body["version"] = str(version)
        if alias is not None:
            body["alias"] = alias
        if policy is not None:
            body["policy"] = policy
        return CanaryView.model_validate(
            self._request("POST", f"/api/v1/deployments/{name}/canary", json=body)
        )

    def canary_status(self, name: str) -> CanaryView:
        """The deployment's canary (``active``, versions, the last evaluation) and its recorded
        decisions, newest first."""
        return CanaryView.model_validate(self._get(f"/api/v1/deployments/{name}/canary"))

    def stop_canary(self, name: str) -> CanaryView:
        """Stop the deployment's canary: its candidate's replicas stop (raises 404 without)."""
        return CanaryView.model_validate(
            self._request("DELETE", f"/api/v1/deployments/{name}/canary")
        )

    def builds(self, name: str) -> list[BuildView]:
        """The deployment's builds, newest first (without their logs)."""
        return _many(BuildView, self._get(f"/api/v1/deployments/{name}/builds"))

    def build(self, name: str, build_id: str) -> BuildView:
        """One build of the deployment, with its log."""
        return BuildView.model_validate(self._get(f"/api/v1/deployments/{name}/builds/{build_id}"))

    def wait_build(
        self, name: str, build_id: str | None = None, *, timeout: float = 900.0
    ) -> BuildView:
        """Poll until the build (the newest by default) is ``built`` (returned) or
        ``build failed`` (raises ApiError with the resolver's message)."""
        deadline = time.monotonic() + timeout
        while True:
            if build_id is None:
                found = self.builds(name)
                if not found:
                    raise ApiError(404, "not_found", f"deployment {name!r} has no builds")
                build_id = found[0].id
            build = self.build(name, build_id)
            if build.status == "built":
                return build
            if build.status == "build failed":
                raise ApiError(
                    409,
                    "build_failed",
                    f"build {build_id} of deployment {name!r} failed: {build.status_message}",
                    {"deployment": name, "build_id": build_id},
                )
            if time.monotonic() > deadline:
                raise ApiError(504, "timeout", f"build {build_id} not finished after {timeout:g} s")
            time.sleep(0.5)

    def environments(self) -> list[EnvironmentView]:
        """The platform's cached build environments, most recently used first."""
        return _many(EnvironmentView, self._get("/api/v1/environments"))

    def prune_environments(self) -> PruneResult:
        """Remove every cached environment that no running replica uses."""
        return PruneResult.model_validate(self._request("POST", "/api/v1/environments/prune"))

    def rotate_access_key(self, name: str) -> str:
        answer = self._request("POST", f"/api/v1/deployments/{name}/access-key")
        return AccessKeyView.model_validate(answer).access_key

    def wait(
        self,
        name: str,
        *,
        timeout: float = 300.0,
        interval: float = 0.5,
        on_progress: Callable[[DeploymentView], None] | None = None,
        version: str | None = None,
    ) -> DeploymentView:
        """Poll until the deployment is deployed (returned) or failed (raises ApiError).

        With ``version`` (after a redeploy or rollback): until that version serves; if it never
        takes the traffic (the previous version keeps serving) raises ApiError
        ``rollout_failed`` with the reason.
        """
        deadline = time.monotonic() + timeout
        while True:
            deployment = self.deployment(name)
            if on_progress:
                on_progress(deployment)
            if deployment.status == "deployed" and deployment.rollout is None:
                if version is None or deployment.version == str(version):
                    return deployment
                raise ApiError(
                    409,
                    "rollout_failed",
                    f"version {version} of {name!r} did not take the traffic: "
                    f"{deployment.status_message or 'no details'}",
                    {"deployment": name, "version": str(version)},
                )
            if deployment.status in ("failed", "stopped"):
                raise ApiError(
                    409,
                    "deployment_failed" if deployment.status == "failed" else "stopped",
                    f"deployment {name!r} is {deployment.status}: "
                    f"{deployment.status_message or 'no details'}",
                    {"deployment": name},
                )
            if time.monotonic() > deadline:
                raise ApiError(
                    504, "timeout", f"deployment {name!r} not deployed after {timeout:g} s"
                )
            time.sleep(interval)

    def predict(self, name: str, payload: Any, access_key: str | None = None) -> PredictionView:
        """Call a deployment's model endpoint with a body such as ``{"inputs": [...]}``."""
        headers = {"Authorization": f"Bearer {access_key}"} if access_key else {}
        return PredictionView.model_validate(
            self._request("POST", f"/deployments/{name}/predict", json=payload, headers=headers)
        )

    # -- model metrics ------------------------------------------------------------------------

    def record_predictions(self, deployment: str, predictions: list[dict[str, Any]]) -> list[str]:
        """Record predictions made elsewhere (batch inference); returns their UUIDs."""
        answer = self._request(
            "POST",
            f"/api/v1/deployments/{deployment}/predictions",
            json={"predictions": predictions},
        )
        return Recorded.model_validate(answer).uuids

    def track_delayed_metrics(
        self, metrics: dict[str, Any], prediction_uuid: str, deployment: str | None = None
    ) -> None:
        """Attach later metrics (ground truth) to a prediction, by its UUID."""
        body = {"prediction_uuid": prediction_uuid, "metrics": metrics}
        path = (
            f"/api/v1/deployments/{deployment}/metrics/delayed"
            if deployment
            else "/api/v1/metrics/delayed"
        )
        self._request("POST", path, json=body)

    def track_delayed_metrics_batch(
        self, deployment: str, items: list[tuple[str, dict[str, Any]]], *, chunk: int = 5000
    ) -> int:
        """Attach delayed metrics to many predictions: ``[(uuid, metrics), ...]``.

        Sent in chunks of ``chunk``; each chunk is one transaction (all or nothing).
        """
        done = 0
        for start in range(0, len(items), chunk):
            body = {
                "items": [
                    {"prediction_uuid": u, "metrics": m} for u, m in items[start : start + chunk]
                ]
            }
            result = self._request(
                "POST", f"/api/v1/deployments/{deployment}/metrics/delayed/batch", json=body
            )
            done += Counted.model_validate(result).count
        return done

    def track_aggregate_metrics(
        self,
        deployment: str,
        metrics: dict[str, Any],
        start_timestamp_ms: int,
        end_timestamp_ms: int,
        model_version: str | None = None,
    ) -> None:
        body: dict[str, Any] = {
            "metrics": metrics,
            "start_timestamp_ms": start_timestamp_ms,
            "end_timestamp_ms": end_timestamp_ms,
        }
        if model_version:
            body["model_version"] = model_version
        self._request("POST", f"/api/v1/deployments/{deployment}/metrics/aggregate", json=body)

    def read_metrics_page(
        self,
        deployment: str,
        *,
        start_ms: int = 0,
        end_ms: int | None = None,
        uuids: list[str] | None = None,
        model_version: str | None = None,
        limit: int = 1000,
        cursor: str | None = None,
    ) -> MetricsPage:
        """One page of model-metrics records (``next_cursor`` asks for the next)."""
        params: list[tuple[str, str | int]] = [("start", start_ms), ("limit", limit)]
        if end_ms is not None:
            params.append(("end", end_ms))
        for u in uuids or []:
            params.append(("uuid", u))
        if model_version:
            params.append(("version", model_version))
        if cursor:
            params.append(("cursor", cursor))
        return MetricsPage.model_validate(
            self._request("GET", f"/api/v1/deployments/{deployment}/metrics/model", params=params)
        )

    def iter_metrics(self, deployment: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every model-metrics record in the range, a page at a time."""
        cursor = None
        while True:
            page = self.read_metrics_page(deployment, cursor=cursor, **kwargs)
            yield from page.metrics
            cursor = page.next_cursor
            if not cursor:
                return

    def read_metrics(self, deployment: str, **kwargs: Any) -> dict[str, list[dict[str, Any]]]:
        """Every record in the range, in Cloudera ML's ``read_metrics`` shape (a dict)."""
        return {"metrics": list(self.iter_metrics(deployment, **kwargs))}

    def technical_metrics(
        self,
        deployment: str,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        step_seconds: int | None = None,
        replica: int | None = None,
        version: str | None = None,
    ) -> TechnicalMetrics:
        """Request, latency, size, CPU and memory series, the per-replica table (of one
        replica and one model version when given) and the replica events (scaling) of the
        range."""
        params = _present(
            start=start_ms, end=end_ms, step=step_seconds, replica=replica, version=version
        )
        return TechnicalMetrics.model_validate(
            self._request(
                "GET", f"/api/v1/deployments/{deployment}/metrics/technical", params=params
            )
        )

    # -- API keys -----------------------------------------------------------------------------

    def api_keys(self) -> list[ApiKeyView]:
        return _many(ApiKeyView, self._get("/api/v1/api-keys"))

    def create_api_key(self, name: str, scope: str = "admin") -> ApiKeyCreated:
        """A new key (``key`` in the answer, shown once) of scope ``admin``, ``deploy``,
        ``read`` or ``predict:<deployment>``."""
        body = {"name": name, "scope": scope}
        return ApiKeyCreated.model_validate(self._request("POST", "/api/v1/api-keys", json=body))

    def rotate_api_key(self, key_id: str) -> ApiKeyCreated:
        """A new secret for the key (same id, name and scope); the old one stops working."""
        return ApiKeyCreated.model_validate(
            self._request("POST", f"/api/v1/api-keys/{key_id}/rotate")
        )

    def revoke_api_key(self, key_id: str) -> None:
        self._request("DELETE", f"/api/v1/api-keys/{key_id}")

    # -- drift, performance, alerts -----------------------------------------------------------

    def monitoring(self, deployment: str) -> MonitoringConfigView:
        """How the deployment's tracked metrics map onto features, predictions and labels."""
        return MonitoringConfigView.model_validate(
            self._get(f"/api/v1/deployments/{deployment}/monitoring")
        )

    def set_monitoring(self, deployment: str, **config: Any) -> MonitoringConfigView:
        """Replace the monitoring settings (``input_key``, ``label_key``, ``overrides``, ...)."""
        return MonitoringConfigView.model_validate(
            self._request("PUT", f"/api/v1/deployments/{deployment}/monitoring", json=config)
        )

    def set_reference(
        self,
        deployment: str,
        path: str | Path,
        *,
        model_version: str = "",
        target_column: str | None = None,
        prediction_column: str | None = None,
    ) -> ReferenceView:
        """Upload a CSV or Parquet file as the deployment's reference data."""
        path = Path(path)
        params = {"filename": path.name, "version": model_version}
        if target_column:
            params["target_column"] = target_column
        if prediction_column:
            params["prediction_column"] = prediction_column
        answer = self._request(
            "PUT",
            f"/api/v1/deployments/{deployment}/reference",
            params=params,
            content=path.read_bytes(),
            headers={"Content-Type": "application/octet-stream"},
        )
        return ReferenceView.model_validate(answer)

    def reference_from_registry(
        self, deployment: str, model_version: str | None = None
    ) -> ReferenceView:
        """Take the reference data from what was logged with the model's MLflow run."""
        params = {"version": model_version} if model_version else {}
        return ReferenceView.model_validate(
            self._request(
                "POST", f"/api/v1/deployments/{deployment}/reference/from-registry", params=params
            )
        )

    def reference(
        self,
        deployment: str,
        model_version: str | None = None,
        rows: int = 0,
        *,
        sample: bool = False,
        seed: int | None = None,
    ) -> ReferenceView:
        """The reference data's summary; with ``rows``, also its first rows (``head``) or, with
        ``sample=True``, that many rows drawn at random (``sample``; ``seed`` repeats a draw)."""
        params: dict[str, Any] = {"rows": rows}
        if model_version:
            params["version"] = model_version
        if sample:
            params["sample"] = "true"
            if seed is not None:
                params["seed"] = seed
        return ReferenceView.model_validate(
            self._request("GET", f"/api/v1/deployments/{deployment}/reference", params=params)
        )

    def window(
        self,
        deployment: str,
        *,
        span_seconds: int | None = None,
        step_seconds: int | None = None,
    ) -> WindowView:
        """The range (``start``, ``end``, ms) and ``step`` (ms) to show ``deployment`` over:
        the given span and step, or fitted to its predictions (from the first to now, rounded
        up to a preset), windows starting on whole steps."""
        params = _present(span=span_seconds, step=step_seconds)
        return WindowView.model_validate(
            self._request("GET", f"/api/v1/deployments/{deployment}/window", params=params)
        )

    def drift(
        self,
        deployment: str,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        model_version: str | None = None,
        columns: list[str] | None = None,
        exact: bool = False,
    ) -> DriftReport:
        """Data drift per column, dataset drift and prediction drift over a window.

        ``exact`` tests every tracked value even in windows larger than the deployment's
        ``max_rows`` (slower); otherwise those are tested on five-minute summaries.
        """
        params: dict[str, Any] = {"exact": str(exact).lower()}
        for key, value in (("start", start_ms), ("end", end_ms), ("version", model_version)):
            if value is not None:
                params[key] = value
        if columns:
            params["column"] = columns
        return DriftReport.model_validate(
            self._request("GET", f"/api/v1/deployments/{deployment}/drift", params=params)
        )

    def performance(
        self,
        deployment: str,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        step_seconds: int | None = None,
        model_version: str | None = None,
    ) -> PerformanceReport:
        """Realised and estimated performance per window and model version."""
        params = _present(start=start_ms, end=end_ms, step=step_seconds, version=model_version)
        return PerformanceReport.model_validate(
            self._request("GET", f"/api/v1/deployments/{deployment}/performance", params=params)
        )

    def drift_series(
        self,
        deployment: str,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        step_seconds: int | None = None,
        model_version: str | None = None,
        columns: list[str] | None = None,
    ) -> DriftSeries:
        """Drift of each column over time: every column's drift test in each window (by
        default the range fitted to the data, as :meth:`window` gives it)."""
        params = _present(start=start_ms, end=end_ms, step=step_seconds, version=model_version)
        if columns:
            params["column"] = columns
        return DriftSeries.model_validate(
            self._request("GET", f"/api/v1/deployments/{deployment}/drift/series", params=params)
        )

    def quality(
        self,
        deployment: str,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        step_seconds: int | None = None,
        model_version: str | None = None,
    ) -> QualityReport:
        """Data quality per input column (missing values, types, ranges, new categories,
        constant columns, schema), per window and in total."""
        params = _present(start=start_ms, end=end_ms, step=step_seconds, version=model_version)
        return QualityReport.model_validate(
            self._request("GET", f"/api/v1/deployments/{deployment}/quality", params=params)
        )

    def create_alert_rule(self, **spec: Any) -> AlertRuleView:
        """Create an alert rule: ``name``, ``deployment``, ``metric``, ``comparison``, ..."""
        return AlertRuleView.model_validate(
            self._request("POST", "/api/v1/alerts/rules", json=spec)
        )

    def alert_rules(self, deployment: str | None = None) -> list[AlertRuleView]:
        params = {"deployment": deployment} if deployment else {}
        return _many(AlertRuleView, self._request("GET", "/api/v1/alerts/rules", params=params))

    def test_alert_rule(self, deployment: str, name: str) -> list[ChannelDeliveryView]:
        """Send a test event to each channel of a rule; each channel's delivery."""
        return _many(
            ChannelDeliveryView,
            self._request("POST", f"/api/v1/alerts/rules/{deployment}/{name}/test"),
        )

    def delete_alert_rule(self, deployment: str, name: str) -> None:
        self._request("DELETE", f"/api/v1/alerts/rules/{deployment}/{name}")

    def alert_events(
        self, deployment: str | None = None, since_ms: int = 0, limit: int = 100
    ) -> list[AlertEventView]:
        params: dict[str, Any] = {"since": since_ms, "limit": limit}
        if deployment:
            params["deployment"] = deployment
        return _many(AlertEventView, self._request("GET", "/api/v1/alerts/events", params=params))

    def evaluate_alerts(self) -> list[AlertEventView]:
        """Evaluate every alert rule now; returns the events produced."""
        return _many(AlertEventView, self._request("POST", "/api/v1/alerts/evaluate"))

    # -- plumbing -----------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Any route of the platform (``path`` from its root, e.g. ``/api/v2/metrics``): the
        answer's JSON, or :class:`ApiError` with the platform's error."""
        return self._request(method, path, **kwargs)

    def _get(self, path: str) -> Any:
        return self._request("GET", path)

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            headers = {**self._headers, **kwargs.pop("headers", {})}
            response = self._http.request(
                method, self.url + path, headers=headers, timeout=self._timeout, **kwargs
            )
        except (httpx.ReadTimeout, httpx.WriteTimeout) as exc:
            # Connected and sent: the platform is working on it (and goes on doing so).
            raise ApiError(
                504,
                "timeout",
                f"timed out after {self._timeout:g} s waiting for an answer from modeldeck at "
                f"{self.url} ({method} {path}); the platform may still be working on it. Wait "
                "longer with --timeout SECONDS (CLI), MODELDECK_CLIENT_TIMEOUT_SECONDS or "
                "Client(timeout=...)",
                {"timeout_seconds": self._timeout},
            ) from exc
        except httpx.TransportError as exc:
            raise ApiError(
                503, "unreachable", f"cannot reach modeldeck at {self.url}: {exc}"
            ) from exc
        if response.status_code == 204:
            return None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success:
            return body
        error = (body or {}).get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            raise ApiError(
                response.status_code,
                str(error.get("code", "error")),
                str(error.get("message", "")),
                error.get("details") or {},
            )
        raise ApiError(response.status_code, "error", response.text[:500])


def _many(view: type[V], answer: Any) -> list[V]:
    """A list answer, each item read as ``view``."""
    if not isinstance(answer, list):
        raise ApiError(502, "bad_answer", f"expected a list from modeldeck, got {answer!r:.200}")
    return [view.model_validate(item) for item in answer]


def _present(**params: Any) -> dict[str, Any]:
    """The query parameters that were given (None leaves one out)."""
    return {k: v for k, v in params.items() if v is not None}
