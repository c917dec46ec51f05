"""Registered models and their versions (read through MLflow), as the API and the client show
them."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from modeldeck.views.base import View


class ModelVersionView(View):
    name: str
    version: str
    status: str
    run_id: str | None
    source: str
    aliases: list[str]
    tags: dict[str, str]
    description: str
    created_at: str | None
    run_metrics: dict[str, float] = Field(default_factory=dict)
    run_params: dict[str, str] = Field(default_factory=dict)
    signature: dict[str, Any] | None = None


class RegisteredModelView(View):
    name: str
    description: str
    aliases: dict[str, str] = Field(description="Alias -> version.")
    tags: dict[str, str]
    latest_version: str | None
    created_at: str | None
    updated_at: str | None
    versions: list[ModelVersionView] = Field(default_factory=list)


class AliasView(View):
    """An alias moved (promotion)."""

    model: str
    alias: str
    version: str
    previous_version: str | None = Field(description="Where it pointed before (null: nowhere).")
