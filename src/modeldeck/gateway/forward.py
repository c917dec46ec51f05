"""The gateway: one public URL per platform, spreading requests over a deployment's replicas.

It checks the access key, picks the ready replica with the fewest requests in flight and
forwards the body untouched (the replica decodes and validates it). A replica that cannot be
reached is taken out of rotation and the request is retried once on another, so a crashed
replica costs nothing to the callers that had not reached it yet while a healthy one remains. A
request whose replica died while handling it is not retried: it may be what killed it, and
retried it would kill the next replica too (a "poison" request). It gets a 502
(``model_crashed``); the supervisor restarts the replica. During a rollout the runtime
offers only the serving version's replicas until the new version's are all healthy; every answer
names the version that made it (``X-Modeldeck-Version``).

Canaries (``deployments/canary.py``): in ``canary`` mode, ``percent`` of the requests (spread
evenly, a counter per deployment) go to the candidate's replicas, falling back to the stable ones
when no candidate replica is ready or has a free slot. In ``shadow`` mode the stable version
answers every request and a copy goes to the candidate in a background task; at most
``SHADOW_CONCURRENCY`` copies are in flight at a time (further ones are dropped, counted in
``shadow_dropped``), so the shadow can never slow the stable path down. Both are counted per
version in technical monitoring. A copy the candidate answered is linked to the stable answer's
prediction (``linker``), so ground truth for the one labels the other.

Every deployment's requests in flight (queued ones included) are counted with their integral
over time (``inflight``): the autoscaler's load signal.

Back-pressure and hangs: a replica is sent at most ``replica_max_concurrency`` requests at a
time. When every ready replica is that busy, a request waits (first come, first served) for a
free slot for at most ``queue_timeout_seconds``, then gets a 429 with ``Retry-After``: callers
never queue without bound. A replica that does not answer within ``request_timeout_seconds``
gets its caller a 504 and is recycled by the runtime.

The hop to the replica uses aiohttp's client: on this path it costs a fraction of httpx's
(whose connection pool scans every idle connection per request), and the gateway's CPU is what
bounds a deployment's throughput.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from modeldeck.auth.keys import matches
from modeldeck.config import Settings
from modeldeck.errors import (
    GatewayTimeout,
    ModelCrashed,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
)
from modeldeck.gateway.routes import CanaryRouting, RouteEntry, Routes
from modeldeck.runtimes.base import Dispatch
from modeldeck.runtimes.local import Replica

FORWARDED_HEADERS = ("content-type", "x-prediction-id", "x-modeldeck-replica")
SHADOW_CONCURRENCY = 8  # shadow copies in flight at a time, per platform

# Counts a request the gateway made itself (a shadow copy): route, replica, status, seconds,
# request bytes, response bytes, version.
Observer = Callable[[RouteEntry, int, int, float, int, int, str], None]
# Links a shadow copy's prediction to the stable one it copies: deployment id, stable
# prediction UUID, the copy's prediction UUID.
Linker = Callable[[str, str, str], None]


class InFlight:
    """The requests of one deployment inside the gateway (queued or at a replica) and their
    integral over time, from which the autoscaler takes the mean over any interval."""

    __slots__ = ("_area", "_since", "count")

    def __init__(self) -> None:
        self.count = 0
        self._area = 0.0  # request-seconds up to ``_since``
        self._since = time.monotonic()

    def _advance(self, now: float) -> None:
        self._area += self.count * (now - self._since)
        self._since = now

    def enter(self) -> None:
        self._advance(time.monotonic())
        self.count += 1

    def leave(self) -> None:
        self._advance(time.monotonic())
        self.count -= 1

    def area(self, now: float) -> float:
        """Request-seconds in flight from the start up to ``now`` (``time.monotonic()``)."""
        return self._area + self.count * (now - self._since)


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict[str, str]
    replica: int | None = None
    version: str | None = None  # the model version of the replica that answered


class Gateway:
    def __init__(
        self,
        settings: Settings,
        deployments: Routes,
        runtime: Dispatch,
        canaries: CanaryRouting | None = None,
        observer: Observer | None = None,
        linker: Linker | None = None,
    ) -> None:
        self.settings = settings
        self.deployments = deployments
        self.runtime = runtime
        self.canaries = canaries
        self.observer = observer
        self.linker = linker
        self.shadow_dropped = 0
        self._shadows: set[asyncio.Task[None]] = set()
        self._turns: dict[str, int] = {}
        self._client: aiohttp.ClientSession | None = None
        # Per deployment: requests waiting for a replica with a free slot, oldest first.
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}
        self._inflight: dict[str, InFlight] = {}

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
        for task in list(self._shadows):
            task.cancel()
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

    def inflight(self, name: str) -> InFlight:
        """The requests of deployment ``name`` in flight (queued ones included)."""
        found = self._inflight.get(name)
        if found is None:
            found = self._inflight[name] = InFlight()
        return found

    async def forward(self, route: RouteEntry, body: bytes) -> Answer:
        inflight = self.inflight(route.name)
        inflight.enter()
        try:
            return await self._forward(route, body)
        finally:
            inflight.leave()

    async def _forward(self, route: RouteEntry, body: bytes) -> Answer:
        assert self._client is not None, "gateway not started"
        tried = None
        last_error = ""
        timeout = self.settings.request_timeout_seconds
        routing = self.canaries.routing(route.name) if self.canaries else None
        to_candidate = routing is not None and routing[0] == "canary"
        to_candidate = to_candidate and routing is not None and self._turn(route.name, routing[1])
        for attempt in range(2):
            replica = None
            if to_candidate and attempt == 0:
                replica = self.runtime.pick_candidate(
                    route.name, self.settings.replica_max_concurrency
                )
                if replica is not None:
                    replica.inflight += 1
            if replica is None:
                replica = await self._acquire(route.name, tried)
            if replica is None:
                break
            proc = self.runtime.process(replica)
            try:
                async with self._client.post(replica.url + "/predict", data=body) as response:
                    content = await response.read()
                    if response.status >= 500 and "json" not in response.content_type:
                        # Not a replica's answer (those are JSON) but its host's: Ray Serve's
                        # proxy says "Internal Server Error" in plain text when the replica
                        # died with the request in it.
                        raise ModelCrashed(
                            f"deployment {route.name!r} failed while handling this request "
                            f"({response.status}: {content[:200].decode('utf-8', 'replace')})",
                            details={"deployment": route.name, "status": response.status},
                        )
                    headers = {k: v for k in FORWARDED_HEADERS if (v := response.headers.get(k))}
                    version = replica.spec.model_version
                    headers["x-modeldeck-version"] = version
                    if routing is not None and routing[0] == "shadow":
                        self._shadow(route, body, headers.get("x-prediction-id"))
                    index = _index(headers, replica)
                    return Answer(response.status, content, headers, index, version)
            except aiohttp.ClientConnectorError as exc:  # never reached it: another may answer
                last_error = f"{type(exc).__name__}: {exc}"
                self.runtime.report_failure(replica, last_error)
                tried = replica
                continue
            except aiohttp.ClientError as exc:  # reached, then the connection broke
                code = await self.runtime.crashed(replica, proc)
                if code is not None:
                    # The replica died with this request in it: the request may be what killed
                    # it, so it goes to no other replica (a poison request takes down nothing
                    # but its own replica).
                    self.runtime.report_failure(replica, f"exited with code {code}")
                    raise ModelCrashed(
                        f"replica {replica.index} of deployment {route.name!r} exited (code "
                        f"{code}) while handling this request; it is not retried on another "
                        "replica, in case the request is what crashed it",
                        details={
                            "deployment": route.name,
                            "replica": replica.index,
                            "exit_code": code,
                        },
                    ) from exc
                # It lives (a kept-alive connection it had closed), or the supervisor stopped
                # it (recycled): this request is no suspect. Try another replica.
                last_error = f"{type(exc).__name__}: {exc}"
                self.runtime.report_failure(replica, last_error)
                tried = replica
                continue
            except TimeoutError as exc:  # reached, but no answer in time: the model hangs
                self.runtime.recycle(
                    replica,
                    f"recycled: did not answer a request within {timeout:g} s "
                    "(MODELDECK_REQUEST_TIMEOUT_SECONDS)",
                )
                raise GatewayTimeout(
                    f"deployment {route.name!r} did not answer within {timeout:g} s "
                    f"(MODELDECK_REQUEST_TIMEOUT_SECONDS); its replica {replica.index} is "
                    "being restarted",
                    details={
                        "deployment": route.name,
                        "replica": replica.index,
                        "timeout_seconds": timeout,
                    },
                ) from exc
            finally:
                self._release(route.name, replica)
        raise ServiceUnavailable(
            f"deployment {route.name!r} has no ready replica"
            + (f" (last error: {last_error})" if last_error else ""),
            details={"deployment": route.name},
        )

    def _turn(self, name: str, percent: float) -> bool:
        """Whether this request of ``name`` is the candidate's: ``percent`` of them, evenly."""
        n = self._turns.get(name, 0) + 1
        self._turns[name] = n
        return math.floor(n * percent / 100) > math.floor((n - 1) * percent / 100)

    def _shadow(self, route: RouteEntry, body: bytes, stable_uuid: str | None) -> None:
        """Send a copy of ``body`` to the candidate in the background (or drop it when
        ``SHADOW_CONCURRENCY`` copies are in flight or no candidate replica is free); the copy's
        prediction is linked to the stable one, ``stable_uuid``."""
        limit = self.settings.replica_max_concurrency
        replica = self.runtime.pick_candidate(route.name, limit)
        if replica is None or len(self._shadows) >= SHADOW_CONCURRENCY:
            self.shadow_dropped += 1
            return
        replica.inflight += 1
        task = asyncio.get_running_loop().create_task(
            self._send_shadow(route, replica, body, stable_uuid)
        )
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)

    async def _send_shadow(
        self, route: RouteEntry, replica: Replica, body: bytes, stable_uuid: str | None
    ) -> None:
        assert self._client is not None
        loop = asyncio.get_running_loop()
        started = loop.time()
        status, size = 599, 0
        try:
            async with self._client.post(replica.url + "/predict", data=body) as response:
                status, size = response.status, len(await response.read())
                shadow_uuid = response.headers.get("x-prediction-id")
                if status == 200 and stable_uuid and shadow_uuid and self.linker is not None:
                    self.linker(route.deployment_id, stable_uuid, shadow_uuid)
        except (aiohttp.ClientError, TimeoutError):
            pass  # counted as a failure of the candidate; the stable answer has gone already
        finally:
            self._release(route.name, replica)
        if self.observer is not None:
            self.observer(
                route, replica.index, status, loop.time() - started, len(body), size,
                replica.spec.model_version,
            )  # fmt: skip

    async def _acquire(self, name: str, exclude: Replica | None) -> Replica | None:
        """A ready replica with a free slot, its slot taken; ``None`` when none is ready.

        When every ready replica is full, wait for a slot (in arrival order) for at most
        ``queue_timeout_seconds``; then raise 429.
        """
        limit = self.settings.replica_max_concurrency
        waiting = self._waiting.setdefault(name, deque())
        replica = self.runtime.pick(name, exclude=exclude, limit=limit)
        if replica is not None and waiting:
            # Others wait first. Slots can free up without a release (a replica became ready):
            # wake the oldest, then queue behind it.
            self._wake(name)
            replica = None
        if replica is None:
            if not self.runtime.serving(name):
                return None
            replica = await self._wait_for_slot(name, exclude, limit, waiting)
        replica.inflight += 1
        return replica

    async def _wait_for_slot(
        self, name: str, exclude: Replica | None, limit: int, waiting: deque[asyncio.Future[None]]
    ) -> Replica:
        loop = asyncio.get_running_loop()
        queue_timeout = self.settings.queue_timeout_seconds
        deadline = loop.time() + queue_timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                self._wake(name)  # pass on a slot this caller may have been woken for
                retry_after = max(1, math.ceil(queue_timeout))
                raise TooManyRequests(
                    f"every replica of deployment {name!r} is busy "
                    f"({limit} requests in flight each, MODELDECK_REPLICA_MAX_CONCURRENCY) "
                    f"and none freed up within {queue_timeout:g} s; retry later",
                    details={"deployment": name, "retry_after_seconds": retry_after},
                    headers={"Retry-After": str(retry_after)},
                )
            waiter: asyncio.Future[None] = loop.create_future()
            waiting.append(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                pass
            finally:
                with contextlib.suppress(ValueError):
                    waiting.remove(waiter)
            replica = self.runtime.pick(name, exclude=exclude, limit=limit)
            if replica is not None:
                return replica
            if not self.runtime.serving(name):
                raise ServiceUnavailable(
                    f"deployment {name!r} has no ready replica", details={"deployment": name}
                )

    def _release(self, name: str, replica: Replica) -> None:
        replica.inflight -= 1
        self._wake(name)

    def _wake(self, name: str) -> None:
        """Let the longest-waiting request of ``name`` look for a free slot."""
        waiting = self._waiting.get(name)
        while waiting:
            waiter = waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


def _index(headers: dict[str, str], replica: Replica) -> int:
    """The replica that answered: the one its header names (behind Ray Serve's proxy, the
    runtime cannot know which it will be)."""
    named = headers.get("x-modeldeck-replica", "")
    return int(named) if named.isdigit() else replica.index
