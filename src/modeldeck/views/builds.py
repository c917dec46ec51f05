"""Builds and cached environments as the API, the client and the CLI show them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from modeldeck.views.base import View


class BuildView(View):
    id: str
    deployment: str
    reason: str = Field(description="What started it: deploy, redeploy, start, restore, cml.")
    model: str
    version: str
    model_uri: str
    env_manager: str
    status: str = Field(description="queued, building, built or 'build failed'.")
    status_message: str
    cache_key: str | None
    cache_hit: bool = Field(description="The environment was in the cache: nothing was built.")
    python_version: str | None
    environment_path: str | None
    packages: list[str] = Field(description="The environment's resolved packages (pip freeze).")
    model_packages: dict[str, Any] = Field(
        description="Versions of the packages the model's requirements name, read inside the "
        "environment, e.g. {'scikit-learn': '1.5.2'}."
    )
    duration_seconds: float | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    log: str | None = Field(
        default=None, description="The build's output; only when one build is asked for."
    )


class EnvironmentView(View):
    key: str
    env_manager: str
    path: str
    python_version: str
    size_bytes: int
    created_at: float
    last_used_at: float
    build_seconds: float
    in_use: bool


class PruneResult(View):
    removed: list[str] = Field(description="Keys of the environments removed.")
    freed_bytes: int
    models_removed: int
