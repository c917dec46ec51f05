"""The routing table: what the gateway needs to know of a deployment on every request.

The control plane keeps it (``DeploymentService`` fills it from the store); the gateway reads it
through :class:`Routes` and never owns a deployment's life.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class RouteEntry:
    """One deployment's route: its name, how callers authenticate, what its answers carry."""

    name: str
    auth_enabled: bool
    key_hash: str | None
    crn: str
    version: str
    source: str = "registry"
    deployment_id: str = ""
    model_name: str = ""
    # The version's MLflow signature (``{"inputs": [...], "outputs": [...]}``), for the Open
    # Inference Protocol's metadata and typed tensors; ``None`` when it has none.
    signature: dict[str, Any] | None = None


class Routes(Protocol):
    """The routing table, as the gateway reads it."""

    def route(self, name: str) -> RouteEntry | None: ...

    def route_by_key(self, access_key: str) -> RouteEntry | None: ...


class CanaryRouting(Protocol):
    """Where a canary sends its share of a deployment's requests (``deployments/canary.py``)."""

    def routing(self, name: str) -> tuple[str, float] | None: ...
