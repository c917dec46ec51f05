"""The MLflow adapter: registered models, versions, aliases, signatures.

modeldeck never keeps a registry of its own; everything here is read from MLflow's tracking
server or store through ``MlflowClient``, and the one thing it writes there is an alias
(``set_alias``: promotion). Only this module (and the replica's MLflow runtime)
imports MLflow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modeldeck.errors import BadRequest, NotFound, ServiceUnavailable

if TYPE_CHECKING:
    from mlflow import MlflowClient


@dataclass
class VersionInfo:
    name: str
    version: str
    status: str
    run_id: str | None
    source: str
    aliases: list[str]
    tags: dict[str, str]
    description: str
    created_at: str | None
    run_metrics: dict[str, float] = field(default_factory=dict)
    run_params: dict[str, str] = field(default_factory=dict)
    signature: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ModelInfo:
    name: str
    description: str
    aliases: dict[str, str]
    tags: dict[str, str]
    latest_version: str | None
    created_at: str | None
    updated_at: str | None
    versions: list[VersionInfo] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ResolvedVersion:
    """A concrete registered version that a deployment serves."""

    name: str
    version: str
    spec: str
    run_id: str | None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def parse_version_spec(version: str | int | None = None, alias: str | None = None) -> str:
    """Normalise the ways of naming a version to one spec: ``"3"``, ``"@alias"`` or ``"latest"``."""
    if version is not None and alias:
        raise BadRequest("give a version or an alias, not both")
    if alias:
        return "@" + alias.lstrip("@")
    if version is None or str(version).strip() in ("", "latest"):
        return "latest"
    text = str(version).strip()
    if text.startswith("@"):
        return text
    if not text.isdigit():
        raise BadRequest(
            f"version must be a number, '@alias' or 'latest', got {text!r}",
            details={"field": "version"},
        )
    return str(int(text))


class Registry:
    """Read-only view of MLflow's Model Registry."""

    def __init__(self, tracking_uri: str, registry_uri: str | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri or tracking_uri
        self._client: MlflowClient | None = None

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(
                tracking_uri=self.tracking_uri, registry_uri=self.registry_uri
            )
        return self._client

    def list_models(self, *, with_versions: bool = False) -> list[ModelInfo]:
        models = self._call(lambda: self._all_registered_models())
        infos = [self._model_info(m) for m in models]
        if with_versions:
            for info in infos:
                info.versions = self.list_versions(info.name)
        return sorted(infos, key=lambda m: m.name)

    def get_model(self, name: str) -> ModelInfo:
        model = self._get_registered_model(name)
        info = self._model_info(model)
        info.versions = self.list_versions(name)
        return info

    def list_versions(self, name: str) -> list[VersionInfo]:
        if "'" in name:
            raise NotFound(f"registered model {name!r} not found")
        versions = self._call(
            lambda: list(self.client.search_model_versions(filter_string=f"name='{name}'"))
        )
        infos = [self._version_info(v, with_signature=False) for v in versions]
        if infos:
            # search results leave aliases out; the registered model knows them
            aliases = dict(getattr(self._get_registered_model(name), "aliases", {}) or {})
            for info in infos:
                info.aliases = sorted(a for a, v in aliases.items() if str(v) == info.version)
        return sorted(infos, key=lambda v: int(v.version), reverse=True)

    def get_version(self, name: str, version: str) -> VersionInfo:
        resolved = self.resolve(name, version)
        mv = self._call(lambda: self.client.get_model_version(name, resolved.version))
        return self._version_info(mv, with_signature=True)

    def resolve(self, name: str, spec: str | int | None = None) -> ResolvedVersion:
        """Turn ``name`` plus ``"3"`` / ``"@alias"`` / ``"latest"`` into a concrete version."""
        spec = parse_version_spec(spec)
        model = self._get_registered_model(name)
        if spec.startswith("@"):
            alias = spec[1:]
            aliases = dict(getattr(model, "aliases", {}) or {})
            if alias not in aliases:
                known = ", ".join(sorted(aliases)) or "none"
                raise NotFound(
                    f"registered model {name!r} has no alias {alias!r} (aliases: {known})",
                    details={"model": name, "alias": alias},
                )
            version = str(aliases[alias])
        else:
            versions = self.list_versions(name)
            if not versions:
                raise NotFound(
                    f"registered model {name!r} has no versions", details={"model": name}
                )
            if spec == "latest":
                version = versions[0].version
            else:
                numbers = [v.version for v in versions]
                if spec not in numbers:
                    raise NotFound(
                        f"registered model {name!r} has no version {spec} "
                        f"(versions: {', '.join(reversed(numbers))})",
                        details={"model": name, "version": spec},
                    )
                version = spec
        mv = self._call(lambda: self.client.get_model_version(name, version))
        return ResolvedVersion(name=name, version=str(mv.version), spec=spec, run_id=mv.run_id)

    def set_alias(self, name: str, alias: str, version: str | int) -> tuple[str | None, str]:
        """Point ``name@alias`` at ``version`` (a number); returns (previous version, new)."""
        alias = alias.strip()
        if not alias or alias.startswith("@") or alias.lower() == "latest" or alias.isdigit():
            raise BadRequest(
                f"invalid alias {alias!r}: a name such as 'champion' (not a number or 'latest')",
                details={"field": "alias"},
            )
        number = str(version).strip()
        if not number.isdigit():
            raise BadRequest(
                f"version must be a version number, got {version!r}", details={"field": "version"}
            )
        model = self._get_registered_model(name)
        before = dict(getattr(model, "aliases", {}) or {}).get(alias)
        self.get_version(name, number)  # exists, or NotFound naming the versions there are
        self._call(lambda: self.client.set_registered_model_alias(name, alias, number))
        return (None if before is None else str(before)), number

    def signature(self, resolved: ResolvedVersion) -> dict[str, Any] | None:
        """The version's signature as ``{"inputs": [...], "outputs": [...]}``, if it has one."""
        import tempfile

        import mlflow
        from mlflow.models import Model

        def load() -> Any:
            root = self.client.get_model_version_download_uri(resolved.name, resolved.version)
            with tempfile.TemporaryDirectory() as tmp:
                path = mlflow.artifacts.download_artifacts(
                    artifact_uri=root.rstrip("/") + "/MLmodel", dst_path=tmp
                )
                return Model.load(path).signature

        sig = self._call(load)
        if sig is None:
            return None
        return {
            "inputs": sig.inputs.to_dict() if sig.inputs is not None else None,
            "outputs": sig.outputs.to_dict() if sig.outputs is not None else None,
        }

    def model_source(self, name: str, version: str) -> str:
        """Where the version's model files are (an artifact URI), asked of this registry.

        Loading from it needs no ``models:/`` resolution, which MLflow does through its
        process-wide registry URI, not this registry's.
        """
        return str(self._call(lambda: self.client.get_model_version_download_uri(name, version)))

    def download_model(self, name: str, version: str, into: Path) -> Path:
        """The version's model directory (``MLmodel``, its files, ``requirements.txt``,
        ``python_env.yaml``), downloaded once into ``into/<model uuid>`` and reused after."""
        import hashlib
        import os
        import shutil
        import tempfile

        import mlflow
        from mlflow.models import Model

        def load() -> Path:
            root = self.client.get_model_version_download_uri(name, version).rstrip("/")
            into.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=into, prefix=".download-") as tmp:
                mlmodel = mlflow.artifacts.download_artifacts(
                    artifact_uri=root + "/MLmodel", dst_path=tmp, tracking_uri=self.tracking_uri
                )
                model_id = (
                    Model.load(mlmodel).model_uuid
                    or hashlib.sha256(Path(mlmodel).read_bytes()).hexdigest()[:32]
                )
                target = into / "".join(c if c.isalnum() or c in "-_." else "_" for c in model_id)
                if (target / "MLmodel").is_file():
                    return target
                path = mlflow.artifacts.download_artifacts(
                    artifact_uri=root,
                    dst_path=str(Path(tmp) / "model"),
                    tracking_uri=self.tracking_uri,
                )
                shutil.rmtree(target, ignore_errors=True)  # an incomplete earlier download
                os.replace(path, target)
                return target

        return self._call(load)  # type: ignore[no-any-return]

    # -- helpers ------------------------------------------------------------------------------

    def _all_registered_models(self) -> list[Any]:
        out: list[Any] = []
        token = None
        while True:
            page = self.client.search_registered_models(max_results=200, page_token=token)
            out.extend(page)
            token = page.token
            if not token:
                return out

    def _get_registered_model(self, name: str) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise NotFound(
                    f"registered model {name!r} not found", details={"model": name}
                ) from exc
            raise ServiceUnavailable(f"MLflow registry error: {exc.message}") from exc

    def _call(self, fn: Any) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return fn()
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise NotFound(exc.message) from exc
            if exc.error_code == "INVALID_PARAMETER_VALUE":  # e.g. a version that is no number
                raise BadRequest(exc.message) from exc
            raise ServiceUnavailable(f"MLflow registry error: {exc.message}") from exc

    def _model_info(self, model: Any) -> ModelInfo:
        versions = [int(v.version) for v in (model.latest_versions or [])]
        return ModelInfo(
            name=model.name,
            description=model.description or "",
            aliases={k: str(v) for k, v in (model.aliases or {}).items()},
            tags=dict(model.tags or {}),
            latest_version=str(max(versions)) if versions else None,
            created_at=_ts(model.creation_timestamp),
            updated_at=_ts(model.last_updated_timestamp),
        )

    def _version_info(self, mv: Any, *, with_signature: bool) -> VersionInfo:
        metrics: dict[str, float] = {}
        params: dict[str, str] = {}
        if mv.run_id:
            try:
                run = self.client.get_run(mv.run_id)
                metrics = dict(run.data.metrics)
                params = dict(run.data.params)
            except Exception:  # the run may live in another tracking server
                pass
        signature = None
        if with_signature:
            signature = self.signature(
                ResolvedVersion(mv.name, str(mv.version), str(mv.version), mv.run_id)
            )
        return VersionInfo(
            name=mv.name,
            version=str(mv.version),
            status=str(mv.status),
            run_id=mv.run_id,
            source=mv.source,
            aliases=list(mv.aliases or []),
            tags=dict(mv.tags or {}),
            description=mv.description or "",
            created_at=_ts(mv.creation_timestamp),
            run_metrics=metrics,
            run_params=params,
            signature=signature,
        )


def _ts(ms: int | None) -> str | None:
    if not ms:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()
