"""MLflow's deployments API for modeldeck: ``mlflow deployments ... -t modeldeck://host:port``.

Registered as the ``mlflow.deployments`` entry points ``modeldeck`` (plain HTTP) and
``modeldeck+https`` (TLS), so ``mlflow.deployments.get_deploy_client("modeldeck://host:port")``
and the ``mlflow deployments`` CLI manage modeldeck deployments. Everything goes through
:class:`modeldeck.Client` and the control plane's REST API; the API key is the client's,
``MODELDECK_API_KEY``. A bare ``modeldeck`` target means ``MODELDECK_URL``.

``run_local`` runs a platform in this process (embedded defaults, its replicas die with it)
with the model deployed, until Ctrl-C.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlparse

from mlflow.deployments import BaseDeploymentClient, PredictionsResponse
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INTERNAL_ERROR,
    INVALID_PARAMETER_VALUE,
    PERMISSION_DENIED,
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
    TEMPORARILY_UNAVAILABLE,
    UNAUTHENTICATED,
)

from modeldeck.client import ApiError, Client
from modeldeck.replica.codecs import FORMS
from modeldeck.views import DeploymentView

FLAVOR = "python_function"
FLAVORS = (None, "python_function", "pyfunc")
SCHEMES = {"modeldeck": "http", "modeldeck+https": "https"}
# config key -> (type, what it does); every value may come as a string from ``-C key=value``.
CREATE_CONFIG: dict[str, tuple[type, str]] = {
    "replicas": (int, "number of replica processes (default 1)"),
    "cpu": (float, "CPU cores per replica (a limit for the runtime)"),
    "memory_mb": (int, "memory per replica, in MB"),
    "auth_enabled": (bool, "require the access key on the endpoint (default true)"),
    "track_metrics": (bool, "record every prediction's input and output (default true)"),
    "env_manager": (str, "local (default), uv or virtualenv: the model's own environment"),
    "runtime": (str, "local or ray (default: the platform's MODELDECK_DEFAULT_RUNTIME)"),
    "track_alias": (bool, "with models:/name@alias, follow the alias when it moves"),
    "wait": (bool, "block until the deployment serves (default true)"),
    "timeout": (float, "seconds to wait for it (default 300)"),
}
UPDATE_CONFIG = {k: CREATE_CONFIG[k] for k in ("replicas", "env_manager", "wait", "timeout")}
LOCAL_CONFIG: dict[str, tuple[type, str]] = {
    **{k: v for k, v in CREATE_CONFIG.items() if k not in ("wait", "timeout")},
    "host": (str, "address to listen on (default MODELDECK_HOST, 127.0.0.1)"),
    "port": (int, "port to listen on (default MODELDECK_PORT, 8000)"),
    "data_dir": (str, "the platform's data directory (default MODELDECK_DATA_DIR)"),
}
_CODES = {
    400: INVALID_PARAMETER_VALUE,
    401: UNAUTHENTICATED,
    403: PERMISSION_DENIED,
    404: RESOURCE_DOES_NOT_EXIST,
    409: RESOURCE_ALREADY_EXISTS,
    422: INVALID_PARAMETER_VALUE,
    503: TEMPORARILY_UNAVAILABLE,
}


def platform_url(target_uri: str) -> str | None:
    """``modeldeck://host:port[/prefix]`` -> ``http://host:port[/prefix]``
    (``modeldeck+https://`` -> ``https://``); ``None`` for a bare ``modeldeck`` (then the
    client's ``MODELDECK_URL``)."""
    parsed = urlparse(target_uri)
    if not parsed.scheme:
        return None
    scheme = SCHEMES.get(parsed.scheme)
    if scheme is None or not parsed.netloc:
        raise MlflowException(
            f"not a modeldeck target: {target_uri!r}; use modeldeck://host:port (HTTP), "
            "modeldeck+https://host:port (HTTPS) or modeldeck (MODELDECK_URL)",
            error_code=INVALID_PARAMETER_VALUE,
        )
    return f"{scheme}://{parsed.netloc}{parsed.path.rstrip('/')}"


def parse_model_uri(model_uri: str) -> tuple[str, str | None, str | None]:
    """``models:/name/version``, ``models:/name/latest`` or ``models:/name@alias`` as
    ``(name, version, alias)``; modeldeck deploys registered models only."""
    rest = model_uri.removeprefix("models:/") if model_uri.startswith("models:/") else None
    if rest:
        if "@" in rest:
            name, alias = rest.split("@", 1)
            if name and alias and "/" not in name:
                return name, None, alias
        else:
            name, _, version = rest.partition("/")
            if name and version and "/" not in version:
                return name, version, None
    raise MlflowException(
        f"modeldeck deploys registered models: got {model_uri!r}; use models:/<name>/<version>, "
        "models:/<name>/latest or models:/<name>@<alias> (register a run's model first with "
        "mlflow.register_model)",
        error_code=INVALID_PARAMETER_VALUE,
    )


def parse_config(
    config: dict[str, Any] | None, allowed: dict[str, tuple[type, str]], what: str
) -> dict[str, Any]:
    """``config`` with each value of its type (``-C`` passes strings); unknown keys refused."""
    parsed: dict[str, Any] = {}
    for key, value in (config or {}).items():
        if key not in allowed:
            raise MlflowException(
                f"unknown config {key!r} for {what}; modeldeck takes "
                + ", ".join(sorted(allowed))
                + " (see `mlflow deployments help -t modeldeck`)",
                error_code=INVALID_PARAMETER_VALUE,
            )
        kind = allowed[key][0]
        try:
            parsed[key] = _convert(value, kind)
        except ValueError:
            raise MlflowException(
                f"config {key!r} must be {kind.__name__}, got {value!r}",
                error_code=INVALID_PARAMETER_VALUE,
            ) from None
    return parsed


def _convert(value: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise ValueError(value)
    return kind(value)


def _check_flavor(flavor: str | None) -> None:
    if flavor not in FLAVORS:
        raise MlflowException(
            f"modeldeck serves models as MLflow pyfunc: flavor {flavor!r} is not supported "
            "(leave it out, or use python_function)",
            error_code=INVALID_PARAMETER_VALUE,
        )


def _mlflow_error(exc: ApiError) -> MlflowException:
    code = _CODES.get(exc.status_code, INTERNAL_ERROR)
    return MlflowException(f"modeldeck: {exc.message} ({exc.status_code} {exc.code})", code)


def _view(deployment: DeploymentView) -> dict[str, Any]:
    """What MLflow's deployment API answers with: a dict (the deployment's JSON)."""
    return {**deployment.model_dump(mode="json"), "flavor": FLAVOR}


class ModeldeckDeploymentClient(BaseDeploymentClient):  # type: ignore[misc]
    """Deployments on one modeldeck platform, through its REST API (``modeldeck.Client``)."""

    def __init__(self, target_uri: str) -> None:
        super().__init__(target_uri)  # type: ignore[no-untyped-call]
        self.client = Client(platform_url(target_uri))

    def create_deployment(
        self,
        name: str,
        model_uri: str,
        flavor: str | None = None,
        config: dict[str, Any] | None = None,
        endpoint: str | None = None,
    ) -> dict[str, Any]:
        """Deploy ``models:/name/version`` (or ``@alias``, ``/latest``) as deployment ``name``
        and, unless ``config={"wait": False}``, wait until it serves. The answer holds the
        endpoint's ``access_key`` (shown this once)."""
        _check_flavor(flavor)
        _no_endpoint(endpoint)
        model, version, alias = parse_model_uri(model_uri)
        options = parse_config(config, CREATE_CONFIG, "create")
        wait, timeout = options.pop("wait", True), options.pop("timeout", 300.0)
        try:
            created = _view(
                self.client.deploy(name, model, version=version, alias=alias, **options)
            )
            if wait:
                created = {**created, **_view(self.client.wait(name, timeout=timeout))}
        except ApiError as exc:
            raise _mlflow_error(exc) from exc
        return created

    def update_deployment(
        self,
        name: str,
        model_uri: str | None = None,
        flavor: str | None = None,
        config: dict[str, Any] | None = None,
        endpoint: str | None = None,
    ) -> dict[str, Any]:
        """Serve another version (a rollout without downtime: the old version serves until the
        new one is healthy) and/or scale (``config={"replicas": n}``)."""
        _check_flavor(flavor)
        _no_endpoint(endpoint)
        options = parse_config(config, UPDATE_CONFIG, "update")
        wait, timeout = options.pop("wait", True), options.pop("timeout", 300.0)
        if model_uri is None and not options.get("replicas"):
            raise MlflowException(
                "nothing to update: give a model URI (-m) and/or -C replicas=N",
                error_code=INVALID_PARAMETER_VALUE,
            )
        try:
            if "replicas" in options:
                self.client.scale(name, replicas=options["replicas"])
            version = None
            if model_uri is not None:
                model, spec, alias = parse_model_uri(model_uri)
                answer = self.client.redeploy(
                    name, model, version=spec, alias=alias, env_manager=options.get("env_manager")
                )
                version = answer.rollout.version if answer.rollout else answer.version
            if wait:
                return _view(self.client.wait(name, timeout=timeout, version=version))
            return _view(self.client.deployment(name))
        except ApiError as exc:
            raise _mlflow_error(exc) from exc

    def delete_deployment(
        self, name: str, config: dict[str, Any] | None = None, endpoint: str | None = None
    ) -> None:
        """Delete deployment ``name`` (its replicas stop); deleting one that is gone is fine."""
        _no_endpoint(endpoint)
        parse_config(config, {}, "delete")
        try:
            self.client.delete(name)
        except ApiError as exc:
            if exc.status_code != 404:
                raise _mlflow_error(exc) from exc

    def list_deployments(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        _no_endpoint(endpoint)
        try:
            return [_view(d) for d in self.client.deployments()]
        except ApiError as exc:
            raise _mlflow_error(exc) from exc

    def get_deployment(self, name: str, endpoint: str | None = None) -> dict[str, Any]:
        _no_endpoint(endpoint)
        try:
            return _view(self.client.deployment(name))
        except ApiError as exc:
            raise _mlflow_error(exc) from exc

    def predict(
        self, deployment_name: str | None = None, inputs: Any = None, endpoint: str | None = None
    ) -> PredictionsResponse:
        """Predict on ``inputs`` (a DataFrame, an array, a list, or a body such as
        ``{"dataframe_split": ...}``) through the deployment's model endpoint: the prediction
        is recorded as any other, its UUID in the answer's ``uuid``.

        The access key is ``MODELDECK_ACCESS_KEY`` when set, else the deployment's, read back
        with the API key (which needs scope ``deploy`` or ``admin`` for that)."""
        _no_endpoint(endpoint)
        if not deployment_name:
            raise MlflowException("give the deployment's name", INVALID_PARAMETER_VALUE)
        try:
            key = self._access_key(deployment_name)
            answer = self.client.predict(deployment_name, _body(inputs), access_key=key)
        except ApiError as exc:
            raise _mlflow_error(exc) from exc
        return PredictionsResponse(predictions=answer.prediction, uuid=answer.uuid)

    def _access_key(self, name: str) -> str | None:
        from modeldeck.config import ClientSettings

        given = ClientSettings().access_key
        if given is not None:
            return given.get_secret_value()
        return self.client.deployment(name).access_key or None


def _no_endpoint(endpoint: str | None) -> None:
    if endpoint is not None:
        raise MlflowException(
            "modeldeck has deployments, not endpoints: leave --endpoint out",
            error_code=INVALID_PARAMETER_VALUE,
        )


def _body(inputs: Any) -> Any:
    """A request body the model endpoint takes, from what ``predict`` was given."""
    if hasattr(inputs, "to_json") and hasattr(inputs, "columns"):  # a pandas DataFrame
        return {"dataframe_split": json.loads(inputs.to_json(orient="split", index=False))}
    if isinstance(inputs, dict) and any(form in inputs for form in FORMS):
        return inputs
    if hasattr(inputs, "tolist"):  # a NumPy array
        return {"inputs": inputs.tolist()}
    return {"inputs": inputs}


def _config_help(config: dict[str, tuple[type, str]]) -> str:
    return "\n".join(f"    {k} ({t.__name__}): {h}" for k, (t, h) in config.items())


def target_help() -> str:
    return f"""\
modeldeck: deploy registered MLflow models as authenticated REST endpoints, monitored.

Target URI
    modeldeck://HOST:PORT        a platform over HTTP, e.g. modeldeck://127.0.0.1:8000
    modeldeck+https://HOST:PORT  the same over HTTPS
    modeldeck                    the platform at MODELDECK_URL
  The control-plane API key is read from MODELDECK_API_KEY (scope deploy or admin to create,
  update and delete, and for predict to read the deployment's access key back; read to list
  and get). predict uses MODELDECK_ACCESS_KEY instead when it is set.

Model URI
    models:/NAME/VERSION, models:/NAME/latest, models:/NAME@ALIAS (registered models only).
  Flavor: python_function (the default; no other is served).

create config (-C key=value)
{_config_help(CREATE_CONFIG)}

update config: -m models:/NAME/VERSION rolls out another version (the old one serves until the
new one is healthy); -C replicas=N scales.
{_config_help(UPDATE_CONFIG)}

predict: the input file (JSON, read by pandas) is sent as dataframe_split; the answer holds
"predictions" and the prediction's "uuid" (for delayed ground truth).

run-local: a platform in this process (embedded defaults: SQLite under MODELDECK_DATA_DIR,
MLflow at MLFLOW_TRACKING_URI) serving the model until Ctrl-C; config:
{_config_help(LOCAL_CONFIG)}
"""


def run_local(
    name: str, model_uri: str, flavor: str | None = None, config: dict[str, Any] | None = None
) -> None:
    """Serve ``model_uri`` as deployment ``name`` on a platform run in this process, until
    Ctrl-C (its replicas stop with it)."""
    _check_flavor(flavor)
    model, version, alias = parse_model_uri(model_uri)
    options = parse_config(config, LOCAL_CONFIG, "run-local")
    from modeldeck.integrations.local import serve_locally

    serve_locally(name, model, version, alias, options)
