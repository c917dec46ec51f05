"""Cloudera ML API v2 models, builds and deployments on top of modeldeck's own services.

Knows nothing of HTTP. The mapping:

* a **registered model** is MLflow's, read through :class:`~modeldeck.registry.Registry`; its
  ``model_id`` is its name and a version's ``model_version_id`` is ``models:/name/version``;
* a **model** (per ``project_id``, which is only a namespace) is a name, an access key and the
  modeldeck deployment it serves as (``deployment_name``). The key is kept as a hash and, for
  API keys of scope ``deploy`` or ``admin`` to read back as on Cloudera ML, encrypted with the
  platform's secret (:mod:`modeldeck.auth.vault`);
* a **build** checks a registered version (or a Python file): it resolves the version in MLflow
  and loads the model once in a separate process, in the background (``queued`` ->
  ``building`` -> ``built`` | ``build failed`` with the reason); when the model's deployment
  runs in an isolated environment, the version's environment is built (or found in the cache)
  first, as one of the deployment's builds, and the model is loaded with its Python;
* a **deployment** of a build deploys through :class:`DeploymentService`, the one behind
  ``/api/v1/deployments``: the first creates the model's modeldeck deployment with the model's
  access key, later ones redeploy it with the build's version. While a CML deployment is the
  model's live one, its status comes from the modeldeck deployment.

Models, builds and deployments have CRNs of their own (:mod:`modeldeck.crn`); the
records their predictions make read back with them (:mod:`modeldeck.compat.cml_records`), and
``/model`` answers name the CML deployment that made the prediction.

Every object lives in the store, so every process sees the same state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import sys
import uuid
from collections.abc import Sequence
from operator import attrgetter
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from modeldeck import compat
from modeldeck.auth.keys import KeyHash, new_access_key
from modeldeck.auth.vault import KeyVault
from modeldeck.builds.environment import ISOLATED, replica_environment
from modeldeck.compat.cml_records import CmlRecords, Serving, load_servings, serving_at
from modeldeck.compat.cmlapi_build import RESULT_PREFIX
from modeldeck.compat.cmlapi_schemas import (
    BuildConfig,
    CreateModelBuildRequest,
    CreateModelDeploymentRequest,
    CreateModelRequest,
    DeployConfig,
    ListModelBuildsResponse,
    ListModelDeploymentsResponse,
    ListModelsResponse,
    ListRegisteredModelsResponse,
    Model,
    ModelBuild,
    ModelDeployment,
    RegisteredModel,
    RegisteredModelVersion,
)
from modeldeck.config import Settings
from modeldeck.crn import build_crn, deployment_crn, model_crn
from modeldeck.deployments.schemas import DeploymentCreate
from modeldeck.deployments.service import DeploymentService
from modeldeck.errors import BadRequest, Conflict, ModeldeckError, NotFound, ValidationFailed
from modeldeck.gateway.routes import RouteEntry
from modeldeck.paths import allowed_python_file
from modeldeck.records.model_metrics import now_ms
from modeldeck.registry import ModelInfo, Registry, ResolvedVersion, parse_version_spec
from modeldeck.store import Store
from modeldeck.store.schema import (
    CmlModelBuildRow,
    CmlModelDeploymentRow,
    CmlModelRow,
    DeploymentRow,
    utcnow,
)
from modeldeck.views.deployments import DeploymentView

log = logging.getLogger("modeldeck.cmlapi")

BUILD_TIMEOUT_SECONDS = 600.0
LIVE = "deploying"
"""The stored status of a model's live deployment: its real status is the modeldeck one's."""

T = TypeVar("T", bound=BaseModel)
R = TypeVar("R", CmlModelRow, CmlModelBuildRow, CmlModelDeploymentRow)


class BuildFailed(ModeldeckError):
    """The environment of a build could not be made."""


class CmlService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        registry: Registry,
        deployments: DeploymentService,
        vault: KeyVault | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry
        self.deployments = deployments
        self.vault = vault or KeyVault(settings)
        self.records = CmlRecords(store)
        self._tasks: set[asyncio.Task[None]] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        # When each CML deployment went live, by the modeldeck deployment it runs as: which one
        # a /model answer names. This service is their only writer.
        self._servings: dict[str, list[Serving]] = {}

    async def restore(self) -> None:
        """Builds the platform was running when it stopped will never finish: say so."""
        await asyncio.to_thread(self._fail_unfinished_builds)
        self._servings = await asyncio.to_thread(self._load_servings, None)

    def answer_crn(self, route: RouteEntry, version: str | None) -> str:
        """The deployment CRN a ``/model`` answer of ``route`` by ``version`` names: that of
        the CML deployment its record belongs to (as :mod:`~modeldeck.compat.cml_records`
        reads it), or the modeldeck deployment's own."""
        serving = serving_at(
            self._servings.get(route.deployment_id, ()), version or route.version, now_ms()
        )
        return serving.deployment_crn if serving is not None else route.crn

    async def shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- registered models (MLflow) -----------------------------------------------------------

    async def list_registered_models(
        self,
        search_filter: str | None = None,
        sort: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> ListRegisteredModelsResponse:
        wanted = _filter(search_filter, {"model_name": "name", "name": "name"}).get("name")
        if wanted is not None:
            try:
                infos = [await asyncio.to_thread(self.registry.get_model, wanted)]
            except NotFound:
                infos = []
        else:
            infos = await asyncio.to_thread(self.registry.list_models, with_versions=True)
        models = _sorted([_registered(i, None) for i in infos], sort, ("name",), "name")
        page, token = _page(models, page_size, page_token)
        return ListRegisteredModelsResponse(models=page, next_page_token=token)

    async def get_registered_model(self, model_id: str, sort: str | None = None) -> RegisteredModel:
        info = await asyncio.to_thread(self.registry.get_model, model_id)
        return _registered(info, sort)

    # -- models -------------------------------------------------------------------------------

    async def create_model(self, project_id: str, body: CreateModelRequest) -> Model:
        _same("project_id", body.project_id, project_id)
        if body.registered_model_id:
            await asyncio.to_thread(self.registry.get_model, body.registered_model_id)
        key = new_access_key()
        encrypted = await asyncio.to_thread(self.vault.encrypt, key.plaintext)
        model_id = str(uuid.uuid4())
        row = CmlModelRow(
            id=model_id,
            project_id=project_id,
            name=body.name,
            description=body.description,
            deployment_name="",
            registered_model_id=body.registered_model_id,
            auth_enabled=not body.disable_authentication,
            access_key_hash=key.hash,
            access_key_prefix=key.prefix,
            access_key_encrypted=encrypted,
        )
        build = None
        if body.auto_build_model:  # checked before the model is stored
            build = _build_row(row, body.auto_build_config or BuildConfig(), self.settings)
        await asyncio.to_thread(self._insert_model, row)
        if build is not None:
            deploy = (body.auto_deploy_config or DeployConfig()) if body.auto_deploy_model else None
            await self._start_build(row, build, then_deploy=deploy)
        view = await self._model_view(row, reveal_key=False)
        return view.model_copy(update={"access_key": key.plaintext})

    async def list_models(
        self,
        project_id: str | None,
        search_filter: str | None = None,
        sort: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        *,
        reveal_keys: bool = False,
    ) -> ListModelsResponse:
        """A project's models (every project's for ``None``); ``reveal_keys``: with their
        access keys, for callers that may read them."""
        wanted = _filter(search_filter, {"name": "name", "model_name": "name"}).get("name")
        rows = await asyncio.to_thread(self._model_rows, project_id, wanted)
        models = [await self._model_view(r, reveal_key=reveal_keys) for r in rows]
        models = _sorted(models, sort, ("name", "created_at", "updated_at"), "created_at")
        page, token = _page(models, page_size, page_token)
        return ListModelsResponse(models=page, next_page_token=token)

    async def get_model(self, project_id: str, model_id: str, *, reveal_key: bool = False) -> Model:
        return await self._model_view(await self._model(project_id, model_id), reveal_key)

    # -- builds -------------------------------------------------------------------------------

    async def create_build(
        self, project_id: str, model_id: str, body: CreateModelBuildRequest
    ) -> ModelBuild:
        _same("project_id", body.project_id, project_id)
        model = await self._model(project_id, model_id)
        _same("model_id", body.model_id, model.id, model.name)
        return await self._start_build(
            model, _build_row(model, body, self.settings), then_deploy=None
        )

    async def list_builds(
        self,
        project_id: str,
        model_id: str,
        sort: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> ListModelBuildsResponse:
        model = await self._model(project_id, model_id)
        rows = await asyncio.to_thread(self._rows, CmlModelBuildRow, model_id=model.id)
        builds = _sorted(
            [_build_view(r) for r in rows], sort, ("created_at", "updated_at"), "created_at"
        )
        page, token = _page(builds, page_size, page_token)
        return ListModelBuildsResponse(model_builds=page, next_page_token=token)

    async def get_build(self, project_id: str, model_id: str, build_id: str) -> ModelBuild:
        _, build = await self._model_and_build(project_id, model_id, build_id)
        return _build_view(build)

    # -- deployments --------------------------------------------------------------------------

    async def create_deployment(
        self, project_id: str, model_id: str, build_id: str, body: CreateModelDeploymentRequest
    ) -> ModelDeployment:
        _same("project_id", body.project_id, project_id)
        model, build = await self._model_and_build(project_id, model_id, build_id)
        _same("model_id", body.model_id, model.id, model.name)
        _same("build_id", body.build_id, build.id)
        _same("model_build_id", body.model_build_id, build.id)
        if build.status != "built":
            raise Conflict(
                f"build {build.id} is {build.status!r}: deploy a build once it is 'built'",
                details={"build_id": build.id, "status": build.status},
            )
        row = await self._serve(model, build, body, None)
        return await self._deployment_view(model, row)

    async def list_deployments(
        self,
        project_id: str,
        model_id: str,
        build_id: str,
        sort: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> ListModelDeploymentsResponse:
        model, build = await self._model_and_build(project_id, model_id, build_id)
        rows = await asyncio.to_thread(self._rows, CmlModelDeploymentRow, build_id=build.id)
        views = [await self._deployment_view(model, r) for r in rows]
        views = _sorted(views, sort, ("created_at", "updated_at"), "created_at")
        page, token = _page(views, page_size, page_token)
        return ListModelDeploymentsResponse(model_deployments=page, next_page_token=token)

    async def get_deployment(
        self, project_id: str, model_id: str, build_id: str, deployment_id: str
    ) -> ModelDeployment:
        model, _, row = await self._deployment(project_id, model_id, build_id, deployment_id)
        return await self._deployment_view(model, row)

    async def stop_deployment(
        self, project_id: str, model_id: str, build_id: str, deployment_id: str
    ) -> ModelDeployment:
        model, _, row = await self._deployment(project_id, model_id, build_id, deployment_id)
        async with self._lock(model.id):
            row = await asyncio.to_thread(self._get, CmlModelDeploymentRow, row.id)
            if row.status == LIVE:
                if await self._owned_deployment(model) is not None:
                    await self.deployments.stop(model.deployment_name)
                row = await asyncio.to_thread(
                    self._update_deployment, row.id, status="stopped", stopped_at=utcnow()
                )
        return await self._deployment_view(model, row)

    async def restart_deployment(
        self, project_id: str, model_id: str, build_id: str, deployment_id: str
    ) -> ModelDeployment:
        """Start the deployment's build again with its resources (new replicas), making it the
        model's live deployment whatever its status was."""
        model, build, row = await self._deployment(project_id, model_id, build_id, deployment_id)
        config = DeployConfig(
            cpu=row.cpu, memory=row.memory, replicas=row.replicas, environment=row.environment
        )
        row = await self._serve(model, build, config, row.id)
        return await self._deployment_view(model, row)

    # -- building -----------------------------------------------------------------------------

    async def _start_build(
        self, model: CmlModelRow, row: CmlModelBuildRow, then_deploy: DeployConfig | None
    ) -> ModelBuild:
        await asyncio.to_thread(self._insert, row)
        task = asyncio.get_running_loop().create_task(self._build(model, row.id, then_deploy))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return _build_view(row)

    async def _build(
        self, model: CmlModelRow, build_id: str, then_deploy: DeployConfig | None
    ) -> None:
        row = await asyncio.to_thread(self._update_build, build_id, status="building")
        python: str | None = None
        note = ""
        try:
            env = None
            if row.file_path:
                args = ["--file", row.file_path, "--function", row.function_name or "predict"]
                env = {**os.environ, **_with_shims({})}
            else:
                resolved = await asyncio.to_thread(
                    self.registry.resolve, row.model_name, row.model_version
                )
                row = await asyncio.to_thread(
                    self._update_build,
                    build_id,
                    model_version=resolved.version,
                    model_uri=resolved.uri,
                )
                args = ["--model-uri", resolved.uri, "--tracking-uri", self.registry.tracking_uri]
                isolated = await self._isolated_environment(model, resolved)
                if isolated is not None:
                    python, env, args, note = isolated
            ok, message = await _load_check(args, env, python)
            if ok and note:
                message = f"{message}; {note}"
        except ModeldeckError as exc:
            ok, message = False, exc.message
        except Exception as exc:  # a build must end, whatever went wrong
            log.exception("build %s failed", build_id)
            ok, message = False, f"{type(exc).__name__}: {exc}"
        status = "built" if ok else "build failed"
        log.info("build %s of model %s: %s (%s)", build_id, model.name, status, message)
        row = await asyncio.to_thread(
            self._update_build, build_id, status=status, status_message=message,
            finished_at=utcnow(),
        )  # fmt: skip
        if ok and then_deploy is not None:
            await self._auto_deploy(model, row, then_deploy)

    async def _isolated_environment(
        self, model: CmlModelRow, resolved: ResolvedVersion
    ) -> tuple[str, dict[str, str], list[str], str] | None:
        """When the model's deployment runs in an isolated environment (``env_manager`` uv or
        virtualenv), the version's environment build, recorded among the deployment's builds:
        (the environment's interpreter, the load check's process environment and arguments, a
        note for the build's message).
        A failed environment build raises with the resolver's message."""
        deployment = await self._owned_deployment(model)
        if deployment is None or deployment.env_manager not in ISOLATED:
            return None
        builds = self.deployments.builds
        queued = await builds.queue(
            deployment,
            model_name=resolved.name,
            model_version=resolved.version,
            model_uri=resolved.uri,
            env_manager=deployment.env_manager,
            reason="cml",
        )
        outcome = await builds.run(queued.id)
        if not outcome.ok or outcome.environment is None:
            raise BuildFailed(f"environment build {queued.id} failed: {outcome.message}")
        environment = outcome.environment
        env = replica_environment(environment.python, Path(outcome.replica_path or ""), {})
        note = (
            f"{deployment.env_manager} environment {environment.key} "
            f"({'cache hit' if 'cache hit' in outcome.message else 'built'}; "
            f"deployment build {queued.id})"
        )
        return environment.python, env, ["--model-uri", outcome.model_path or resolved.uri], note

    async def _auto_deploy(
        self, model: CmlModelRow, build: CmlModelBuildRow, config: DeployConfig
    ) -> None:
        try:
            await self._serve(model, build, config, None)
        except Exception as exc:  # recorded as a failed deployment the user can see
            message = exc.message if isinstance(exc, ModeldeckError) else repr(exc)
            log.warning("automatic deployment of model %s failed: %s", model.name, message)
            row = _deployment_row(model, build, config, deployment_id=None)
            row.status, row.status_message = "failed", message
            await asyncio.to_thread(self._insert, row)

    # -- deploying ----------------------------------------------------------------------------

    async def _serve(
        self,
        model: CmlModelRow,
        build: CmlModelBuildRow,
        config: DeployConfig,
        existing_id: str | None,
    ) -> CmlModelDeploymentRow:
        """Deploy a build as the model's live deployment: a new CML deployment, or
        ``existing_id`` again. The model's previous live deployment becomes ``stopped``."""
        request = _deployment_request(model, build, config)
        async with self._lock(model.id):
            current = await self._owned_deployment(model)
            if current is not None:
                view: DeploymentView = await self.deployments.redeploy(request)
            else:
                if await asyncio.to_thread(self._deployment_row_named, model.deployment_name):
                    raise Conflict(
                        f"a deployment named {model.deployment_name!r} exists and is not this "
                        "model's: delete it or create the model under another name",
                        details={"deployment": model.deployment_name},
                    )
                assert model.access_key_hash and model.access_key_prefix
                key = KeyHash(
                    model.access_key_hash, model.access_key_prefix, model.access_key_encrypted
                )
                view = await self.deployments.create(request, access_key=key)
            if existing_id is None:
                row = _deployment_row(model, build, config, deployment_id=view.id)
            else:
                row = await asyncio.to_thread(self._get, CmlModelDeploymentRow, existing_id)
                row.deployment_id, row.status, row.status_message = view.id, LIVE, ""
                row.stopped_at = None
            row = await asyncio.to_thread(self._make_live, row)
            self._servings.update(await asyncio.to_thread(self._load_servings, [view.id]))
            return row

    async def _owned_deployment(self, model: CmlModelRow) -> DeploymentRow | None:
        """The model's modeldeck deployment, if it exists and one of its deployments made it."""
        row = await asyncio.to_thread(self._deployment_row_named, model.deployment_name)
        if row is None:
            return None
        owned = await asyncio.to_thread(self._has_deployment_on, model.id, row.id)
        return row if owned else None

    async def _live_status(
        self, model: CmlModelRow, deployment_id: str | None, version: str | None = None
    ) -> tuple[str, str]:
        """The CML status of the live deployment (running as modeldeck deployment
        ``deployment_id``) whose build serves ``version``."""
        try:
            view = await self.deployments.get(model.deployment_name)
        except NotFound:
            return "stopped", f"deployment {model.deployment_name!r} was deleted"
        if view.id != deployment_id:
            return "stopped", f"deployment {model.deployment_name!r} was replaced"
        if view.status == "failed":
            return "failed", view.status_message
        if view.status in ("stopping", "stopped"):
            return "stopped", view.status_message
        if version is not None and view.source == "registry" and view.version != version:
            # The build's version has not taken the traffic (yet): a rollout starting beside
            # the previous version, or one that failed and left the previous version serving.
            if view.rollout is not None and view.rollout.version == version:
                return "deploying", view.status_message
            return "failed", view.status_message or (
                f"version {view.version} serves, not this build's version {version}"
            )
        if view.status == "deployed" and view.ready_replicas > 0:
            return "deployed", ""
        return "deploying", view.status_message

    # -- views --------------------------------------------------------------------------------

    async def _model_view(self, row: CmlModelRow, reveal_key: bool) -> Model:
        deployed = await self._owned_deployment(row)  # its key may have been rotated since
        holder: CmlModelRow | DeploymentRow = deployed if deployed is not None else row
        key = None
        if reveal_key:
            key = await asyncio.to_thread(self.vault.decrypt, holder.access_key_encrypted)
        return Model(
            id=row.id,
            project_id=row.project_id,
            name=row.name,
            description=row.description,
            crn=model_crn(row.id),
            access_key=key,
            access_key_prefix=holder.access_key_prefix,
            auth_enabled=row.auth_enabled,
            registered_model_id=row.registered_model_id,
            deployment_name=row.deployment_name,
            endpoint_url=(
                f"{self.settings.resolved_public_url()}/deployments/{row.deployment_name}/predict"
            ),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    async def _deployment_view(
        self, model: CmlModelRow, row: CmlModelDeploymentRow
    ) -> ModelDeployment:
        status, message = row.status, row.status_message
        if status == LIVE:
            build = await asyncio.to_thread(self._find, CmlModelBuildRow, row.build_id)
            version = build.model_version if build is not None and not build.file_path else None
            status, message = await self._live_status(model, row.deployment_id, version)
        return ModelDeployment(
            id=row.id,
            project_id=row.project_id,
            model_id=row.model_id,
            build_id=row.build_id,
            crn=row.crn,
            status=status,
            status_message=message,
            cpu=row.cpu,
            memory=row.memory,
            replicas=row.replicas,
            environment=row.environment or {},
            deployment_name=model.deployment_name,
            created_at=row.created_at,
            updated_at=row.updated_at,
            stopped_at=row.stopped_at,
        )

    # -- lookups ------------------------------------------------------------------------------

    def _lock(self, model_id: str) -> asyncio.Lock:
        return self._locks.setdefault(model_id, asyncio.Lock())

    async def _model(self, project_id: str, model_id: str) -> CmlModelRow:
        row = await asyncio.to_thread(self._find_model, project_id, model_id)
        if row is None:
            raise NotFound(
                f"model {model_id!r} not found in project {project_id!r}",
                details={"project_id": project_id, "model_id": model_id},
            )
        return row

    async def _model_and_build(
        self, project_id: str, model_id: str, build_id: str
    ) -> tuple[CmlModelRow, CmlModelBuildRow]:
        model = await self._model(project_id, model_id)
        build = await asyncio.to_thread(self._find, CmlModelBuildRow, build_id, model_id=model.id)
        if build is None:
            raise NotFound(
                f"build {build_id!r} of model {model_id!r} not found",
                details={"model_id": model_id, "build_id": build_id},
            )
        return model, build

    async def _deployment(
        self, project_id: str, model_id: str, build_id: str, deployment_id: str
    ) -> tuple[CmlModelRow, CmlModelBuildRow, CmlModelDeploymentRow]:
        model, build = await self._model_and_build(project_id, model_id, build_id)
        row = await asyncio.to_thread(
            self._find, CmlModelDeploymentRow, deployment_id, build_id=build.id
        )
        if row is None:
            raise NotFound(
                f"deployment {deployment_id!r} of build {build_id!r} not found",
                details={"build_id": build_id, "deployment_id": deployment_id},
            )
        return model, build, row

    # -- store --------------------------------------------------------------------------------

    def _insert(self, row: CmlModelBuildRow | CmlModelDeploymentRow) -> None:
        with self.store.write() as session:
            session.add(row)

    def _insert_model(self, row: CmlModelRow) -> None:
        try:
            with self.store.write() as session:
                taken = session.scalars(
                    select(CmlModelRow.id).where(
                        CmlModelRow.project_id == row.project_id, CmlModelRow.name == row.name
                    )
                ).first()
                if taken is not None:
                    raise Conflict(
                        f"project {row.project_id!r} already has a model named {row.name!r}",
                        details={"project_id": row.project_id, "name": row.name, "id": taken},
                    )
                row.deployment_name = _free_name(session, row.name, row.id)
                session.add(row)
        except IntegrityError as exc:  # a concurrent create won the race
            raise Conflict(
                f"project {row.project_id!r} already has a model named {row.name!r}",
                details={"project_id": row.project_id, "name": row.name},
            ) from exc

    def _find_model(self, project_id: str, model_id: str) -> CmlModelRow | None:
        with self.store.read() as session:
            row = session.get(CmlModelRow, model_id)
            if row is not None and row.project_id == project_id:
                return row
            return session.scalars(
                select(CmlModelRow).where(
                    CmlModelRow.project_id == project_id, CmlModelRow.name == model_id
                )
            ).first()

    def _model_rows(self, project_id: str | None, name: str | None) -> list[CmlModelRow]:
        query = select(CmlModelRow)
        if project_id is not None:
            query = query.where(CmlModelRow.project_id == project_id)
        if name is not None:
            query = query.where(CmlModelRow.name == name)
        with self.store.read() as session:
            return list(session.scalars(query))

    def _find(self, table: type[R], row_id: str, **where: str) -> R | None:
        with self.store.read() as session:
            row = session.get(table, row_id)
        if row is None or any(getattr(row, k) != v for k, v in where.items()):
            return None
        return row

    def _get(self, table: type[R], row_id: str) -> R:
        row = self._find(table, row_id)
        assert row is not None
        return row

    def _rows(self, table: type[R], **where: str) -> list[R]:
        query = select(table).filter_by(**where)
        with self.store.read() as session:
            return list(session.scalars(query))

    def _update_build(self, build_id: str, **values: Any) -> CmlModelBuildRow:
        with self.store.write() as session:
            row = session.get_one(CmlModelBuildRow, build_id)
            for key, value in values.items():
                setattr(row, key, value)
            row.updated_at = utcnow()
            return row

    def _update_deployment(self, deployment_id: str, **values: Any) -> CmlModelDeploymentRow:
        with self.store.write() as session:
            row = session.get_one(CmlModelDeploymentRow, deployment_id)
            for key, value in values.items():
                setattr(row, key, value)
            row.updated_at = utcnow()
            return row

    def _make_live(self, row: CmlModelDeploymentRow) -> CmlModelDeploymentRow:
        """Store ``row`` as its model's one live deployment, live from now on; the previous
        one is stopped."""
        now = utcnow()
        row.status = LIVE
        row.live_since_ms = [*(row.live_since_ms or []), int(now.timestamp() * 1000)]
        with self.store.write() as session:
            for other in session.scalars(
                select(CmlModelDeploymentRow).where(
                    CmlModelDeploymentRow.model_id == row.model_id,
                    CmlModelDeploymentRow.status == LIVE,
                    CmlModelDeploymentRow.id != row.id,
                )
            ):
                other.status = "stopped"
                other.status_message = f"replaced by deployment {row.id}"
                other.stopped_at = other.updated_at = now
            row.updated_at = now
            return session.merge(row)

    def _deployment_row_named(self, name: str) -> DeploymentRow | None:
        with self.store.read() as session:
            return session.scalars(
                select(DeploymentRow).where(DeploymentRow.name == name)
            ).one_or_none()

    def _has_deployment_on(self, model_id: str, deployment_id: str) -> bool:
        with self.store.read() as session:
            found = session.scalars(
                select(CmlModelDeploymentRow.id).where(
                    CmlModelDeploymentRow.model_id == model_id,
                    CmlModelDeploymentRow.deployment_id == deployment_id,
                )
            ).first()
        return found is not None

    def _load_servings(self, deployment_ids: list[str] | None) -> dict[str, list[Serving]]:
        with self.store.read() as session:
            return load_servings(session, deployment_ids)

    def _fail_unfinished_builds(self) -> None:
        with self.store.write() as session:
            for row in session.scalars(
                select(CmlModelBuildRow).where(CmlModelBuildRow.status.in_(("queued", "building")))
            ):
                row.status = "build failed"
                row.status_message = "the platform stopped during the build: create a new build"
                row.finished_at = row.updated_at = utcnow()


# -- helpers ----------------------------------------------------------------------------------


async def _load_check(
    args: list[str], env: dict[str, str] | None, python: str | None = None
) -> tuple[bool, str]:
    """Load the model in a separate process, as a replica would, with ``python`` (the
    platform's by default): (loaded?, what happened)."""
    proc = await asyncio.create_subprocess_exec(
        python or sys.executable, "-m", "modeldeck.compat.cmlapi_build", *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), BUILD_TIMEOUT_SECONDS)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return False, f"the model did not load within {BUILD_TIMEOUT_SECONDS:.0f} s"
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        raise
    lines = output.decode(errors="replace").splitlines()
    for line in reversed(lines):
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX) :])
            return bool(result["ok"]) and proc.returncode == 0, str(result["message"])
    tail = " | ".join(line for line in lines[-5:] if line.strip())
    return False, f"the build check exited with code {proc.returncode}: {tail}"


def _build_row(model: CmlModelRow, config: BuildConfig, settings: Settings) -> CmlModelBuildRow:
    """A queued build of what ``config`` names; a 422 naming the field if it names nothing."""
    row = CmlModelBuildRow(
        id=str(uuid.uuid4()),
        model_id=model.id,
        project_id=model.project_id,
        comment=config.comment,
        runtime_identifier=config.runtime_identifier,
        status="queued",
        status_message="",
        model_uri="",
    )
    if config.file_path:
        # modeldeck has no project files: an absolute path in MODELDECK_ALLOWED_FILE_DIRS
        path = Path(allowed_python_file(config.file_path, settings, "file_path"))
        row.file_path = str(path)
        row.function_name = config.function_name or "predict"
        row.model_name = path.stem
        row.model_version = ""
        return row
    ref = config.registered_model_version_id
    if ref is None and model.registered_model_id:
        ref = "latest"  # of the model's registered model
    if ref is None:
        raise ValidationFailed(
            "name what to build: registered_model_version_id (or file_path)",
            details={"field": "registered_model_version_id"},
        )
    row.registered_model_version_id = ref
    row.model_name, row.model_version = _version_ref(ref, model.registered_model_id)
    return row


def _version_ref(ref: str, registered_model_id: str | None) -> tuple[str, str]:
    """``models:/name/3``, ``models:/name@alias``, or ``3`` / ``@alias`` / ``latest`` of the
    model's registered model -> (registered model name, version spec)."""
    if ref.startswith("models:/"):
        rest = ref[len("models:/") :]
        if "@" in rest:
            name, _, alias = rest.rpartition("@")
            spec = "@" + alias
        else:
            name, _, spec = rest.rpartition("/")
        if name and spec and spec != "@":
            return name, _spec(spec)
    elif registered_model_id:
        return registered_model_id, _spec(ref)
    raise ValidationFailed(
        "registered_model_version_id must be a model_version_id (models:/name/version), or a "
        f"version number, @alias or 'latest' of the model's registered_model_id; got {ref!r}",
        details={"field": "registered_model_version_id"},
    )


def _spec(text: str) -> str:
    try:
        return parse_version_spec(text)
    except BadRequest as exc:
        raise ValidationFailed(
            exc.message, details={"field": "registered_model_version_id"}
        ) from exc


def _deployment_request(
    model: CmlModelRow, build: CmlModelBuildRow, config: DeployConfig
) -> DeploymentCreate:
    source: dict[str, Any] = {"model": build.model_name, "version": build.model_version}
    environment = dict(config.environment)
    if build.file_path:
        source = {"file": build.file_path, "function": build.function_name or "predict"}
        environment = _with_shims(environment)
    try:
        return DeploymentCreate(
            name=model.deployment_name,
            replicas=config.replicas,
            cpu=config.cpu,
            memory_mb=max(1, round(config.memory * 1024)) if config.memory else None,
            environment=environment,
            auth_enabled=model.auth_enabled,
            **source,
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error.get("loc", ())) or "body"
        raise ValidationFailed(f"{field}: {error.get('msg')}", details={"field": field}) from exc


def _with_shims(environment: dict[str, str]) -> dict[str, str]:
    """``environment`` with the compatibility shims on ``PYTHONPATH``: a Cloudera model file
    imports ``cml.models_v1`` or ``cdsw``. Not when a real installation is importable."""
    if compat.real_installations():
        return environment
    paths = [compat.path(), environment.get("PYTHONPATH", os.environ.get("PYTHONPATH", ""))]
    return {**environment, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def _deployment_row(
    model: CmlModelRow, build: CmlModelBuildRow, config: DeployConfig, deployment_id: str | None
) -> CmlModelDeploymentRow:
    """A new CML deployment of ``build``, running as modeldeck deployment ``deployment_id``."""
    now = utcnow()
    row_id = str(uuid.uuid4())
    return CmlModelDeploymentRow(
        id=row_id,
        model_id=model.id,
        build_id=build.id,
        project_id=model.project_id,
        crn=deployment_crn(row_id),
        deployment_id=deployment_id,
        live_since_ms=[],
        cpu=config.cpu,
        memory=config.memory,
        replicas=config.replicas,
        environment=dict(config.environment),
        status=LIVE,
        status_message="",
        created_at=now,
        updated_at=now,
    )


def _free_name(session: Session, name: str, model_id: str) -> str:
    """A deployment name for a model: its name made URL-safe, unless that is taken."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-_.")[:63] or "model"
    taken = (
        session.scalars(select(DeploymentRow.id).where(DeploymentRow.name == slug)).first()
        or session.scalars(
            select(CmlModelRow.id).where(CmlModelRow.deployment_name == slug)
        ).first()
    )
    return f"{slug[:54]}-{model_id[:8]}" if taken else slug


def _registered(info: ModelInfo, sort: str | None) -> RegisteredModel:
    versions = [
        RegisteredModelVersion(
            model_version_id=f"models:/{v.name}/{v.version}",
            model_id=info.name,
            version_number=int(v.version),
            status=v.status,
            description=v.description,
            aliases=v.aliases,
            tags=v.tags,
            run_id=v.run_id,
            source=v.source,
            created_at=v.created_at,
        )
        for v in info.versions
    ]
    return RegisteredModel(
        model_id=info.name,
        name=info.name,
        description=info.description,
        created_at=info.created_at,
        updated_at=info.updated_at,
        aliases=info.aliases,
        tags=info.tags,
        model_versions=_sorted(versions, sort, ("version_number",), "-version_number"),
    )


def _build_view(row: CmlModelBuildRow) -> ModelBuild:
    return ModelBuild(
        id=row.id,
        project_id=row.project_id,
        model_id=row.model_id,
        crn=build_crn(row.id),
        status=row.status,
        status_message=row.status_message,
        registered_model_version_id=row.registered_model_version_id,
        model_name=row.model_name,
        model_version=row.model_version,
        file_path=row.file_path,
        function_name=row.function_name,
        comment=row.comment,
        runtime_identifier=row.runtime_identifier,
        created_at=row.created_at,
        updated_at=row.updated_at,
        built_at=row.finished_at if row.status == "built" else None,
    )


def _same(field: str, given: str | None, *expected: str) -> None:
    """A body field repeating a path parameter must agree with it."""
    if given is not None and given not in expected:
        raise BadRequest(
            f"{field} {given!r} in the body does not match the path ({expected[0]!r})",
            details={"field": field},
        )


def _filter(search_filter: str | None, keys: dict[str, str]) -> dict[str, str]:
    """Cloudera's ``search_filter`` (a JSON object) -> {canonical key: value}."""
    if not search_filter:
        return {}
    try:
        parsed = json.loads(search_filter)
    except ValueError as exc:
        raise BadRequest(
            "search_filter must be a JSON object", details={"field": "search_filter"}
        ) from exc
    if not isinstance(parsed, dict):
        raise BadRequest("search_filter must be a JSON object", details={"field": "search_filter"})
    out = {}
    for key, value in parsed.items():
        if key not in keys:
            raise BadRequest(
                f"cannot filter by {key!r}; filter by one of: {', '.join(sorted(keys))}",
                details={"field": "search_filter"},
            )
        out[keys[key]] = str(value)
    return out


def _sorted(items: list[T], sort: str | None, fields: Sequence[str], default: str) -> list[T]:
    """Sort by ``field`` (ascending) or ``-field`` (descending)."""
    key = sort or default
    field = key.lstrip("+-")
    if field not in fields:
        raise BadRequest(
            f"cannot sort by {field!r}; sort by one of: {', '.join(fields)}",
            details={"field": "sort"},
        )
    return sorted(items, key=attrgetter(field), reverse=key.startswith("-"))


def _page(items: list[T], page_size: int | None, page_token: str | None) -> tuple[list[T], str]:
    start = 0
    if page_token:
        if not page_token.isdigit():
            raise BadRequest(
                "page_token must be a next_page_token from a previous answer",
                details={"field": "page_token"},
            )
        start = int(page_token)
    if page_size is None:
        return items[start:], ""
    end = start + page_size
    return items[start:end], (str(end) if end < len(items) else "")


__all__ = ["CmlService"]
