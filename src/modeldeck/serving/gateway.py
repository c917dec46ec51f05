"""The gateway: one public URL per platform, spreading requests over a deployment's replicas.

It checks the access key, picks the ready replica with the fewest requests in flight and
forwards the body untouched (the replica decodes and validates it). A replica that cannot be
reached is taken out of rotation and the request is retried once on another, so a crashed
replica costs its callers nothing while a healthy one remains. During a rollout the runtime
offers only the serving version's replicas until the new version's are all healthy; every answer
names the version that made it (``X-Modeldeck-Version``).

The hop to the replica uses aiohttp's client: on this path it costs a fraction of httpx's
(whose connection pool scans every idle connection per request), and the gateway's CPU is what
bounds a deployment's throughput.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from modeldeck.config import Settings
from modeldeck.deployments.local import LocalRuntime
from modeldeck.deployments.service import DeploymentService, RouteEntry
from modeldeck.errors import GatewayTimeout, NotFound, ServiceUnavailable, Unauthorized
from modeldeck.keys import matches

FORWARDED_HEADERS = ("content-type", "x-prediction-id", "x-modeldeck-replica")


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict[str, str]
    replica: int | None = None
    version: str | None = None  # the model version of the replica that answered


class Gateway:
    def __init__(
        self, settings: Settings, deployments: DeploymentService, runtime: LocalRuntime
    ) -> None:
        self.settings = settings
        self.deployments = deployments
        self.runtime = runtime
        self._client: aiohttp.ClientSession | None = None

    async def startup(self) -> None:
        self._client = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60),
            timeout=aiohttp.ClientTimeout(
                total=self.settings.request_timeout_seconds, sock_connect=2.0
            ),
            headers={"Content-Type": "application/json"},
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
            auto_decompress=False,
        )

    async def shutdown(self) -> None:
        if self._client:
            await self._client.close()

    def route(self, name: str) -> RouteEntry:
        """The deployment's route; 404 for an unknown name."""
        route = self.deployments.route(name)
        if route is None:
            raise NotFound(f"deployment {name!r} not found", details={"deployment": name})
        return route

    def authorize(self, route: RouteEntry, access_key: str | None) -> None:
        """401 unless the key opens the deployment (or it has authentication off)."""
        name = route.name
        if route.auth_enabled:
            if not access_key:
                raise Unauthorized(
                    "missing access key: send 'Authorization: Bearer <access key>'",
                    details={"deployment": name},
                )
            if not matches(access_key, route.key_hash):
                raise Unauthorized("invalid access key", details={"deployment": name})

    def route_for_key(self, access_key: str | None) -> RouteEntry:
        if not access_key:
            raise Unauthorized("missing accessKey")
        route = self.deployments.route_by_key(access_key)
        if route is None:
            raise Unauthorized("invalid accessKey")
        return route

    async def forward(self, route: RouteEntry, body: bytes) -> Answer:
        assert self._client is not None, "gateway not started"
        tried = None
        last_error = ""
        for _ in range(2):
            replica = self.runtime.pick(route.name, exclude=tried)
            if replica is None:
                break
            replica.inflight += 1
            try:
                async with self._client.post(replica.url + "/predict", data=body) as response:
                    content = await response.read()
                    headers = {k: v for k in FORWARDED_HEADERS if (v := response.headers.get(k))}
                    version = replica.spec.model_version
                    headers["x-modeldeck-version"] = version
                    return Answer(response.status, content, headers, replica.index, version)
            except TimeoutError as exc:
                raise GatewayTimeout(
                    f"deployment {route.name!r} did not answer within "
                    f"{self.settings.request_timeout_seconds:g} s",
                    details={"deployment": route.name},
                ) from exc
            except aiohttp.ClientError as exc:
                last_error = f"{type(exc).__name__}: {exc}"
                self.runtime.report_failure(replica, last_error)
                tried = replica
                continue
            finally:
                replica.inflight -= 1
        raise ServiceUnavailable(
            f"deployment {route.name!r} has no ready replica"
            + (f" (last error: {last_error})" if last_error else ""),
            details={"deployment": route.name},
        )
