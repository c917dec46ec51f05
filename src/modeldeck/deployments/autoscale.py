"""Autoscaling of local deployments: between a policy's min and max replicas, on the requests in
flight per replica.

Every ``autoscale_interval_seconds`` the autoscaler takes, for each local deployment with an
``AutoscalingPolicy``, the mean number of its requests in flight at the gateway over the interval
(time-weighted; requests queued for a free replica count too): one ``Sample``. A sample *wants*
``ceil(in flight / target_inflight)`` replicas, brought into ``[min_replicas, max_replicas]``.

``decide`` (pure: policy, current count, samples, clock) scales up only when every sample of the
last ``scale_up_delay_seconds`` wanted more replicas than run, to the fewest any of them wanted;
and down only when every sample of the last ``scale_down_delay_seconds`` wanted fewer, to the most
any of them wanted. A load that hovers around a boundary so never flaps: a count holds until the
load has stayed on one side of it for the whole delay, and a long down delay outlasts short dips.

Scaling goes through ``DeploymentService.autoscale`` (the scale path: replicas taken away drain,
their requests in flight finish, before they stop), never while the deployment rolls out, builds
or does not serve. Each change is a replica event in technical monitoring ("scaled up 2 → 3: 11.5
in flight per replica > target 4 for 5 s") and in the log. Ray deployments are scaled by Ray
Serve's own autoscaler, configured from the same policy (``runtimes/ray.py``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from modeldeck.deployments.schemas import AutoscalingPolicy
from modeldeck.monitoring.prometheus import AutoscaleView

if TYPE_CHECKING:
    from modeldeck.deployments.service import DeploymentService
    from modeldeck.monitoring.technical import ReplicaEvents
    from modeldeck.runtimes.base import DeploymentSpec, Runtime

log = logging.getLogger("modeldeck.autoscaler")

_EPSILON = 1e-9  # 8.0 in flight at a target of 4 wants 2 replicas, not 3


class Inflight(Protocol):
    def area(self, now: float) -> float:
        """Request-seconds in flight up to ``now`` (``time.monotonic()``)."""
        ...


class InflightSource(Protocol):
    """Where the autoscaler reads a deployment's requests in flight (the gateway)."""

    def inflight(self, name: str) -> Inflight: ...


@dataclass(frozen=True)
class Sample:
    """The mean number of requests in flight from ``start`` to ``end`` (monotonic seconds)."""

    start: float
    end: float
    inflight: float


@dataclass(frozen=True)
class Decision:
    replicas: int  # the count to run now; the current one to hold
    wanted: int  # what the latest sample wants (within the policy's bounds)
    inflight: float  # mean in flight over the window that decided (else the latest sample's)
    reason: str = ""  # why the count changes ("" when it holds)


def wanted(policy: AutoscalingPolicy, inflight: float) -> int:
    """The replicas ``inflight`` requests in flight want, within the policy's bounds."""
    return policy.clamp(math.ceil(inflight / policy.target_inflight - _EPSILON))


def decide(
    policy: AutoscalingPolicy, current: int, samples: Sequence[Sample], now: float
) -> Decision:
    """The replica count to run at ``now``, given the ``current`` one and the samples so far
    (oldest first)."""
    if not samples:
        return Decision(policy.clamp(current), policy.clamp(current), 0.0)
    latest = samples[-1]
    now_wanted = wanted(policy, latest.inflight)
    if policy.clamp(current) != current:
        bounded = policy.clamp(current)
        return Decision(
            bounded, now_wanted, latest.inflight,
            f"scaled {current} → {bounded}: into the policy's bounds "
            f"[{policy.min_replicas}, {policy.max_replicas}]",
        )  # fmt: skip
    target = policy.target_inflight
    up = _window(samples, now, policy.scale_up_delay_seconds)
    if up:
        fewest = min(wanted(policy, s.inflight) for s in up)
        if fewest > current:
            mean = _mean(up)
            return Decision(
                fewest, now_wanted, mean,
                f"scaled up {current} → {fewest}: {mean / current:.1f} in flight per replica > "
                f"target {target:g} for {policy.scale_up_delay_seconds:g} s",
            )  # fmt: skip
    down = _window(samples, now, policy.scale_down_delay_seconds)
    if down:
        most = max(wanted(policy, s.inflight) for s in down)
        if most < current:
            mean = _mean(down)
            return Decision(
                most, now_wanted, mean,
                f"scaled down {current} → {most}: {mean / current:.1f} in flight per replica "
                f"< target {target:g} for {policy.scale_down_delay_seconds:g} s",
            )  # fmt: skip
    return Decision(current, now_wanted, latest.inflight)


def _window(samples: Sequence[Sample], now: float, delay: float) -> list[Sample]:
    """The samples of the last ``delay`` seconds, or none while the samples do not reach back
    that far (with no delay: the latest)."""
    if delay <= 0:
        return [samples[-1]]
    if samples[0].start > now - delay + _EPSILON:
        return []
    return [s for s in samples if s.end > now - delay]


def _mean(samples: Sequence[Sample]) -> float:
    """The time-weighted mean in flight over ``samples``."""
    seconds = sum(s.end - s.start for s in samples)
    if seconds <= 0:
        return samples[-1].inflight
    return sum(s.inflight * (s.end - s.start) for s in samples) / seconds


@dataclass
class _Tracked:
    policy: dict[str, Any]
    last: tuple[float, float]  # (monotonic time, in-flight area) of the previous tick
    samples: deque[Sample]
    wanted: int
    inflight: float = 0.0


class Autoscaler:
    """Samples the gateway's in-flight counts and scales local deployments (see the module)."""

    def __init__(
        self,
        deployments: DeploymentService,
        runtime: Runtime,
        gateway: InflightSource,
        events: ReplicaEvents,
        interval_seconds: float = 1.0,
    ) -> None:
        self.deployments = deployments
        self.runtime = runtime
        self.gateway = gateway
        self.events = events
        self.interval = interval_seconds
        self._tracked: dict[str, _Tracked] = {}
        self._scaling: dict[str, asyncio.Task[str]] = {}  # changes under way (draining, say)

    async def run_forever(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.interval)
                try:
                    self.tick()
                except Exception:  # never let autoscaling take the platform down
                    log.exception("autoscaling failed")
        finally:
            for task in list(self._scaling.values()):
                task.cancel()

    def tick(self, now: float | None = None) -> dict[str, asyncio.Task[str]]:
        """One round: sample every autoscaled deployment and start scaling those whose decision
        says so (a scale-down waits for the drain: one deployment's never holds up another's);
        returns the scalings started, each task answering its event's message ("" when the
        deployment changed meanwhile)."""
        now = time.monotonic() if now is None else now
        specs = self.runtime.autoscaled()
        for gone in set(self._tracked) - {spec.name for spec in specs}:
            del self._tracked[gone]
        started = {}
        for spec in specs:
            decision = self._sample(spec, now)
            if (
                decision is not None
                and decision.replicas != spec.replicas
                and spec.name not in self._scaling
            ):
                task = asyncio.get_running_loop().create_task(self._scale(spec, decision))
                self._scaling[spec.name] = started[spec.name] = task
                task.add_done_callback(functools.partial(self._done, spec.name))
        return started

    def _done(self, name: str, _: asyncio.Task[str]) -> None:
        self._scaling.pop(name, None)

    def _sample(self, spec: DeploymentSpec, now: float) -> Decision | None:
        assert spec.autoscaling is not None
        name = spec.name
        area = self.gateway.inflight(name).area(now)
        tracked = self._tracked.get(name)
        if tracked is None or tracked.policy != spec.autoscaling or not self.runtime.serving(name):
            # New, a new policy, or starting: samples from now on.
            self._tracked[name] = _Tracked(
                dict(spec.autoscaling), (now, area), deque(), spec.replicas
            )
            return None
        policy = AutoscalingPolicy.model_validate(spec.autoscaling)
        start, before = tracked.last
        tracked.last = (now, area)
        if now <= start:
            return None
        tracked.samples.append(Sample(start, now, (area - before) / (now - start)))
        keep = max(policy.scale_up_delay_seconds, policy.scale_down_delay_seconds)
        while len(tracked.samples) > 1 and tracked.samples[1].start <= now - keep:
            tracked.samples.popleft()  # the oldest still reaching back ``keep`` stays
        decision = decide(policy, spec.replicas, tracked.samples, now)
        tracked.wanted, tracked.inflight = decision.wanted, tracked.samples[-1].inflight
        if self.runtime.rolling_out(name) is not None:
            return None  # no scaling during a rollout
        return decision

    async def _scale(self, spec: DeploymentSpec, decision: Decision) -> str:
        try:
            before = await self.deployments.autoscale(spec.name, decision.replicas)
        except Exception:
            log.exception("%s: scaling to %d replicas failed", spec.name, decision.replicas)
            return ""
        if before is None:
            return ""
        kind = "scaled_up" if decision.replicas > before else "scaled_down"
        log.info("%s: %s", spec.name, decision.reason)
        try:  # one store write, off the event loop
            await asyncio.to_thread(
                self.events.record,
                spec.deployment_id,
                kind,
                decision.reason,
                replicas_before=before,
                replicas_after=decision.replicas,
                inflight=round(decision.inflight, 3),
            )
        except Exception:  # the store is down, or the deployment was deleted meanwhile
            log.exception("%s: recording the scaling event failed", spec.name)
        return decision.reason

    def views(self) -> list[AutoscaleView]:
        """What the autoscaler sees of each deployment, for Prometheus."""
        views = []
        for spec in self.runtime.autoscaled():
            tracked = self._tracked.get(spec.name)
            if tracked is not None:
                views.append(
                    AutoscaleView(spec.name, tracked.wanted, spec.replicas, tracked.inflight)
                )
        return views


__all__ = ["Autoscaler", "Decision", "Sample", "decide", "wanted"]
