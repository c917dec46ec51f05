"""The routing table: an in-memory copy of what the gateway asks of every request (does this
deployment exist, which key hash does it expect), answered without a database round trip.

The deployments service keeps it in step with the store; it imports nothing of the lifecycle.
"""

from __future__ import annotations

from modeldeck.auth.keys import hash_key
from modeldeck.gateway.routes import RouteEntry
from modeldeck.store.schema import DeploymentRow


class RoutingTable:
    """The route of each deployment, by name and by its access key's hash."""

    def __init__(self) -> None:
        self._routes: dict[str, RouteEntry] = {}
        self._by_key: dict[str, str] = {}

    def route(self, name: str) -> RouteEntry | None:
        return self._routes.get(name)

    def route_by_key(self, access_key: str) -> RouteEntry | None:
        name = self._by_key.get(hash_key(access_key))
        return self._routes.get(name) if name else None

    def set(self, row: DeploymentRow) -> None:
        old = self._routes.get(row.name)
        if old and old.key_hash:
            self._by_key.pop(old.key_hash, None)
        self._routes[row.name] = RouteEntry(
            name=row.name,
            auth_enabled=row.auth_enabled,
            key_hash=row.access_key_hash,
            crn=row.crn,
            version=row.model_version,
            source=row.source,
            deployment_id=row.id,
            model_name=row.model_name,
            signature=row.signature,
        )
        if row.access_key_hash:
            self._by_key[row.access_key_hash] = row.name

    def drop(self, name: str) -> None:
        old = self._routes.pop(name, None)
        if old and old.key_hash:
            self._by_key.pop(old.key_hash, None)
