"""Cloudera ML's ``cmlapi`` client (API v2) for models, builds and deployments, on modeldeck.

``default_client()`` returns a :class:`CMLServiceApi` whose methods have the names, arguments
and return shapes of Cloudera's generated client, and call modeldeck's ``/api/v2`` routes:
results allow attribute access (``build.status``, ``models.models[0].id``) and ``to_dict()``;
errors raise :class:`ApiException` with the HTTP status and modeldeck's JSON error as ``body``.
Bodies may be dicts or the request classes (``CreateModelRequest(...)`` ...).

Import it as ``cmlapi`` once the shim directory is on the path (see :mod:`modeldeck.compat`).
"""

from __future__ import annotations

import json
import os
import pprint
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from modeldeck import httpclient
from modeldeck.compat.cml import platform_url

QUERY_PARAMETERS = ("search_filter", "sort", "page_size", "page_token")

# -- objects ----------------------------------------------------------------------------------


class ApiObject:
    """An API object: attribute access to its fields, ``to_dict()``, a readable ``repr``."""

    nested: ClassVar[dict[str, type[ApiObject]]] = {}
    """Fields holding objects (or lists of them), by the class to wrap them in."""

    def __init__(self, data: Mapping[str, Any] | None = None, **fields: Any) -> None:
        values = {**(data or {}), **fields}
        object.__setattr__(self, "_fields", list(values))
        for key, value in values.items():
            object.__setattr__(self, key, self._wrap(key, value))

    def _wrap(self, key: str, value: Any) -> Any:
        cls = self.nested.get(key)
        if cls is None:
            return value
        if isinstance(value, Mapping):
            return cls(value)
        if isinstance(value, list):
            return [cls(v) if isinstance(v, Mapping) else v for v in value]
        return value

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self._fields:
            self._fields.append(name)
        object.__setattr__(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        return {key: _plain(getattr(self, key)) for key in self._fields}

    def to_str(self) -> str:
        return pprint.pformat(self.to_dict())

    def __repr__(self) -> str:
        return self.to_str()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ApiObject) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


def _plain(value: Any) -> Any:
    if isinstance(value, ApiObject):
        return value.to_dict()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class RegisteredModelVersion(ApiObject):
    pass


class RegisteredModel(ApiObject):
    nested = {"model_versions": RegisteredModelVersion}


class ListRegisteredModelsResponse(ApiObject):
    nested = {"models": RegisteredModel}


class Model(ApiObject):
    pass


class ListModelsResponse(ApiObject):
    nested = {"models": Model}


class ModelBuild(ApiObject):
    pass


class ListModelBuildsResponse(ApiObject):
    nested = {"model_builds": ModelBuild}


class ModelDeployment(ApiObject):
    pass


class ListModelDeploymentsResponse(ApiObject):
    nested = {"model_deployments": ModelDeployment}


# -- requests ---------------------------------------------------------------------------------


class _Request(ApiObject):
    """A request body; like Cloudera's generated classes, unknown fields are a TypeError."""

    fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **fields: Any) -> None:
        unknown = sorted(set(fields) - set(self.fields))
        if unknown:
            raise TypeError(
                f"{type(self).__name__}() got an unexpected keyword argument {unknown[0]!r}"
            )
        super().__init__({k: v for k, v in fields.items() if v is not None})


_BUILD_FIELDS = (
    "registered_model_version_id", "file_path", "function_name", "comment",
    "runtime_identifier", "runtime_addon_identifiers", "kernel",
)  # fmt: skip
_DEPLOY_FIELDS = ("cpu", "memory", "replicas", "nvidia_gpus", "environment")


class CreateModelRequest(_Request):
    fields = (
        "project_id", "name", "description", "disable_authentication", "registered_model_id",
        "visibility", "auto_build_model", "auto_build_config", "auto_deploy_model",
        "auto_deploy_config",
    )  # fmt: skip


class CreateModelBuildRequest(_Request):
    fields = ("project_id", "model_id", *_BUILD_FIELDS)


class CreateModelDeploymentRequest(_Request):
    fields = ("project_id", "model_id", "build_id", "model_build_id", *_DEPLOY_FIELDS)


# -- errors -----------------------------------------------------------------------------------


class ApiException(Exception):
    """An error answer: ``status``, ``reason``, ``body`` (modeldeck's JSON error, as text)."""

    def __init__(
        self,
        status: int | None = None,
        reason: str | None = None,
        http_resp: httpx.Response | None = None,
    ) -> None:
        self.body: str | None = None
        self.headers: dict[str, str] | None = None
        if http_resp is not None:
            status, reason = http_resp.status_code, http_resp.reason_phrase
            self.body = http_resp.text
            self.headers = dict(http_resp.headers)
        super().__init__(status, reason)
        self.status = status
        self.reason = reason

    @property
    def error(self) -> dict[str, Any]:
        """modeldeck's error object: ``{"code", "message", "details"}`` (empty if none)."""
        try:
            error = json.loads(self.body or "")["error"]
        except (ValueError, KeyError, TypeError):
            return {}
        return error if isinstance(error, dict) else {}

    def __str__(self) -> str:
        text = f"({self.status})\nReason: {self.reason}\n"
        if self.body:
            text += f"HTTP response body: {self.body}\n"
        return text


# -- the client -------------------------------------------------------------------------------


class Configuration:
    """``cmlapi.Configuration``: where the platform is (``host``). ``ssl_ca_cert`` and
    ``verify_ssl`` are accepted and not used: TLS is verified against the system's CAs."""

    def __init__(self) -> None:
        self.host = ""
        self.ssl_ca_cert: str | None = None
        self.verify_ssl = True
        self.api_key: dict[str, str] = {}
        self.api_key_prefix: dict[str, str] = {}


class ApiClient:
    """``cmlapi.ApiClient(configuration)``, for building a client by hand as Cloudera's
    documentation shows (``set_default_header("authorization", "Bearer <key>")``)."""

    def __init__(
        self,
        configuration: Configuration | None = None,
        header_name: str | None = None,
        header_value: str | None = None,
    ) -> None:
        self.configuration = configuration or Configuration()
        self.default_headers: dict[str, str] = {}
        if header_name is not None and header_value is not None:
            self.set_default_header(header_name, header_value)

    def set_default_header(self, header_name: str, header_value: str) -> None:
        self.default_headers[header_name] = header_value


# Why the calls of Cloudera's CMLServiceApi that modeldeck does not serve are not served, by
# what their names start with (the first match wins).
UNSUPPORTED = (
    (("list_project", "get_project", "create_project", "update_project", "delete_project",
      "batch_list_projects", "add_project", "upload_", "download_"),
     "modeldeck has no projects: project_id is only a namespace for models"),
    (("list_job", "get_job", "create_job", "update_job", "delete_job", "stop_job"),
     "modeldeck runs no jobs: run batch inference where you like and record it with "
     "modeldeck.metrics or POST /api/v1/deployments/{name}/predictions"),
    (("list_application", "get_application", "create_application", "update_application",
      "delete_application", "restart_application", "stop_application"),
     "modeldeck hosts no applications"),
    (("list_experiment", "get_experiment", "create_experiment", "update_experiment",
      "delete_experiment", "log_experiment"),
     "experiments are MLflow's: use mlflow's tracking API against MLFLOW_TRACKING_URI"),
    (("create_registered_model", "update_registered_model", "delete_registered_model",
      "get_registered_model_version", "update_registered_model_version",
      "delete_registered_model_version"),
     "the registry is MLflow's: register and change models with mlflow's client"),
    (("update_model_deployment", "delete_model_deployment"),
     "change a deployment with a new deployment of the build (create_model_deployment), or "
     "through modeldeck's /api/v1/deployments"),
    (("update_model", "delete_model"),
     "change or delete the model's deployment through modeldeck's /api/v1/deployments"),
    (("list_runtime",), "modeldeck has no runtimes: models run in the platform's Python or "
     "in a uv/virtualenv environment built from the model's requirements"),
)  # fmt: skip


class CMLServiceApi:
    """The calls of Cloudera's ``CMLServiceApi`` that deploy and watch models.

    ``CMLServiceApi(url, api_key)``, or ``CMLServiceApi(ApiClient(configuration))`` as
    Cloudera's documentation builds one. Any other call of Cloudera's client raises
    ``NotImplementedError`` saying why (:data:`UNSUPPORTED`)."""

    def __init__(
        self,
        url: str | ApiClient | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
    ) -> None:
        headers: dict[str, str] = {}
        if isinstance(url, ApiClient):
            headers = {_header_name(k): v for k, v in url.default_headers.items()}
            url = _platform(url.configuration.host or None)
        self.url = (url or platform_url()).rstrip("/")
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.headers = headers
        self.timeout = timeout

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")
        why = next(
            (reason for prefixes, reason in UNSUPPORTED if name.startswith(prefixes)),
            "modeldeck serves the calls that deploy and watch models",
        )
        raise NotImplementedError(
            f"cmlapi's {name}() is not supported by modeldeck: {why} "
            "(docs/cml-compatibility.md lists what is)"
        )

    def close(self) -> None:
        """Nothing to release: every client sends through the process's one HTTP client
        (:func:`modeldeck.httpclient.shared`), closed at exit."""

    # registered models (MLflow's registry)

    def list_registered_models(
        self,
        search_filter: str | None = None,
        sort: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        **kwargs: Any,
    ) -> ListRegisteredModelsResponse:
        query = _query(search_filter=search_filter, sort=sort, page_size=page_size,
                       page_token=page_token, **kwargs)  # fmt: skip
        return ListRegisteredModelsResponse(self._call("GET", "/registry/models", params=query))

    def get_registered_model(
        self, model_id: str, sort: str | None = None, **kwargs: Any
    ) -> RegisteredModel:
        query = _query(sort=sort, **kwargs)
        return RegisteredModel(self._call("GET", _path("registry", "models", model_id), query))

    # models

    def create_model(self, body: Any, project_id: str, **kwargs: Any) -> Model:
        _query(**kwargs)
        path = _path("projects", project_id, "models")
        return Model(self._call("POST", path, payload=_body(body)))

    def list_models(
        self,
        project_id: str,
        search_filter: str | None = None,
        sort: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        **kwargs: Any,
    ) -> ListModelsResponse:
        query = _query(search_filter=search_filter, sort=sort, page_size=page_size,
                       page_token=page_token, **kwargs)  # fmt: skip
        path = _path("projects", project_id, "models")
        return ListModelsResponse(self._call("GET", path, params=query))

    def list_all_models(
        self,
        search_filter: str | None = None,
        sort: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        **kwargs: Any,
    ) -> ListModelsResponse:
        query = _query(search_filter=search_filter, sort=sort, page_size=page_size,
                       page_token=page_token, **kwargs)  # fmt: skip
        return ListModelsResponse(self._call("GET", "/models", params=query))

    def get_model(self, project_id: str, model_id: str, **kwargs: Any) -> Model:
        _query(**kwargs)
        return Model(self._call("GET", _path("projects", project_id, "models", model_id)))

    # builds

    def create_model_build(
        self, body: Any, project_id: str, model_id: str, **kwargs: Any
    ) -> ModelBuild:
        _query(**kwargs)
        path = _path("projects", project_id, "models", model_id, "builds")
        return ModelBuild(self._call("POST", path, payload=_body(body)))

    def list_model_builds(
        self,
        project_id: str,
        model_id: str,
        sort: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        **kwargs: Any,
    ) -> ListModelBuildsResponse:
        query = _query(sort=sort, page_size=page_size, page_token=page_token, **kwargs)
        path = _path("projects", project_id, "models", model_id, "builds")
        return ListModelBuildsResponse(self._call("GET", path, params=query))

    def get_model_build(
        self, project_id: str, model_id: str, build_id: str, **kwargs: Any
    ) -> ModelBuild:
        _query(**kwargs)
        path = _path("projects", project_id, "models", model_id, "builds", build_id)
        return ModelBuild(self._call("GET", path))

    # deployments

    def create_model_deployment(
        self, body: Any, project_id: str, model_id: str, build_id: str, **kwargs: Any
    ) -> ModelDeployment:
        _query(**kwargs)
        path = _path("projects", project_id, "models", model_id, "builds", build_id, "deployments")
        return ModelDeployment(self._call("POST", path, payload=_body(body)))

    def list_model_deployments(
        self,
        project_id: str,
        model_id: str,
        build_id: str,
        sort: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        **kwargs: Any,
    ) -> ListModelDeploymentsResponse:
        query = _query(sort=sort, page_size=page_size, page_token=page_token, **kwargs)
        path = _path("projects", project_id, "models", model_id, "builds", build_id, "deployments")
        return ListModelDeploymentsResponse(self._call("GET", path, params=query))

    def get_model_deployment(
        self, project_id: str, model_id: str, build_id: str, deployment_id: str, **kwargs: Any
    ) -> ModelDeployment:
        _query(**kwargs)
        path = _deployment_path(project_id, model_id, build_id, deployment_id)
        return ModelDeployment(self._call("GET", path))

    def stop_model_deployment(
        self, project_id: str, model_id: str, build_id: str, deployment_id: str, **kwargs: Any
    ) -> ModelDeployment:
        _query(**kwargs)
        path = _deployment_path(project_id, model_id, build_id, deployment_id) + ":stop"
        return ModelDeployment(self._call("POST", path))

    def restart_model_deployment(
        self, project_id: str, model_id: str, build_id: str, deployment_id: str, **kwargs: Any
    ) -> ModelDeployment:
        _query(**kwargs)
        path = _deployment_path(project_id, model_id, build_id, deployment_id) + ":restart"
        return ModelDeployment(self._call("POST", path))

    def _call(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        payload: Any = None,
    ) -> dict[str, Any]:
        try:
            response = httpclient.shared().request(
                method,
                f"{self.url}/api/v2{path}",
                params=params,
                json=payload,
                headers=self.headers,
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            raise ApiException(status=0, reason=f"cannot reach {self.url}: {exc}") from exc
        if response.status_code >= 400:
            raise ApiException(http_resp=response)
        answer: dict[str, Any] = response.json()
        return answer


def default_client(url: str | None = None, cml_api_key: str | None = None) -> CMLServiceApi:
    """A client for the platform at ``url`` (default ``MODELDECK_URL``, else
    ``https://$CDSW_DOMAIN``) with the API key ``cml_api_key`` (default ``MODELDECK_API_KEY``,
    else ``CDSW_APIV2_KEY``).

    A ``url`` that is just ``https://$CDSW_DOMAIN`` (what Cloudera scripts build from the domain)
    gives way to ``MODELDECK_URL`` when that is set, so a plain ``http://`` platform is reached
    without editing the script.
    """
    key = cml_api_key or os.environ.get("MODELDECK_API_KEY") or os.environ.get("CDSW_APIV2_KEY")
    return CMLServiceApi(_platform(url), key)


def _platform(url: str | None) -> str:
    """``url``, unless it is none or the ``https://$CDSW_DOMAIN`` a Cloudera script builds
    while ``MODELDECK_URL`` is set: then the platform's URL."""
    domain = os.environ.get("CDSW_DOMAIN")
    built_from_domain = bool(domain) and (url or "").rstrip("/") == f"https://{domain}"
    if url is None or (built_from_domain and os.environ.get("MODELDECK_URL")):
        return platform_url()
    return url


def _header_name(name: str) -> str:
    return "Authorization" if name.lower() == "authorization" else name


def _path(*parts: str) -> str:
    return "/" + "/".join(quote(str(p), safe="") for p in parts)


def _deployment_path(project_id: str, model_id: str, build_id: str, deployment_id: str) -> str:
    return _path(
        "projects", project_id, "models", model_id, "builds", build_id, "deployments",
        deployment_id,
    )  # fmt: skip


def _query(**params: Any) -> dict[str, Any]:
    """The query parameters that are set. Cloudera's per-call options (``_request_timeout``,
    ``async_req`` ...) are accepted and ignored; anything else is a TypeError, as there."""
    query = {}
    for key, value in params.items():
        if key.startswith("_") or key == "async_req":
            continue
        if key not in QUERY_PARAMETERS:
            raise TypeError(f"got an unexpected keyword argument {key!r}")
        if value is not None:
            query[key] = value
    return query


def _body(body: Any) -> Any:
    """A dict or a request object, without the fields left unset (``None``)."""
    if isinstance(body, ApiObject):
        body = body.to_dict()
    if isinstance(body, Mapping):
        return {k: _body(v) for k, v in body.items() if v is not None}
    if isinstance(body, list):
        return [_body(v) for v in body]
    return body


__all__ = [
    "ApiClient",
    "ApiException",
    "ApiObject",
    "CMLServiceApi",
    "Configuration",
    "CreateModelBuildRequest",
    "CreateModelDeploymentRequest",
    "CreateModelRequest",
    "ListModelBuildsResponse",
    "ListModelDeploymentsResponse",
    "ListModelsResponse",
    "ListRegisteredModelsResponse",
    "Model",
    "ModelBuild",
    "ModelDeployment",
    "RegisteredModel",
    "RegisteredModelVersion",
    "default_client",
]
