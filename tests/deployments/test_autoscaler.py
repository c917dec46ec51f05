"""The autoscaler's loop with the real deployments service, store and gateway counter, and the
fake local runtime of test_local: it scales on the gateway's in-flight count, records the events,
and leaves a deployment alone while it rolls out."""

from __future__ import annotations

import asyncio
from pathlib import Path

from modeldeck.config import Settings
from modeldeck.deployments.autoscale import Autoscaler
from modeldeck.deployments.schemas import AutoscalingPolicy, DeploymentCreate
from modeldeck.deployments.service import DeploymentService
from modeldeck.gateway.forward import Gateway
from modeldeck.monitoring.technical import ReplicaEvents
from modeldeck.registry import Registry
from modeldeck.store import Store
from modeldeck.views import AutoscalingView
from tests.runtimes.test_local import FakeRuntime

POLICY = AutoscalingPolicy(
    min_replicas=1,
    max_replicas=3,
    target_inflight=2,
    scale_up_delay_seconds=1.0,
    scale_down_delay_seconds=1.0,
)


def test_scales_on_the_gateways_inflight_count_but_not_during_a_rollout(tmp_path: Path) -> None:
    model = tmp_path / "model.py"
    model.write_text("def predict(args):\n    return 1\n")
    store = Store(f"sqlite:///{tmp_path / 'modeldeck.db'}")
    store.migrate()
    settings = Settings(data_dir=tmp_path, allowed_file_dirs=[tmp_path])
    rt = FakeRuntime(settings)
    service = DeploymentService(settings, store, Registry(f"sqlite:///{tmp_path / 'm.db'}"), rt)
    rt._listener = service.on_runtime_event
    gateway = Gateway(settings, service, rt)
    events = ReplicaEvents(store)
    autoscaler = Autoscaler(service, rt, gateway, events)

    async def ticks(seconds: float) -> None:
        """Autoscaler rounds every 50 ms for ``seconds``, each change awaited."""
        for _ in range(int(seconds / 0.05)):
            await asyncio.sleep(0.05)
            await asyncio.gather(*autoscaler.tick().values())

    async def run() -> None:
        created = await service.create(
            DeploymentCreate(name="a", file=str(model), autoscaling=POLICY)
        )
        assert created.autoscaling == AutoscalingView.model_validate(POLICY)
        assert created.replicas == 1
        await rt._tick()
        deployment_id = created.id
        inflight = gateway.inflight("a")
        for _ in range(5):  # 5 in flight at a target of 2: 3 replicas wanted
            inflight.enter()
        await ticks(0.3)
        assert (await service.get("a")).replicas == 1, "not before the up delay"
        await ticks(1.0)
        view = await service.get("a")
        assert view.replicas == 3 and len(rt._deployments["a"].replicas) == 3
        [up] = events.between(deployment_id, 0, 2**62)
        assert up["kind"] == "scaled_up"
        assert (up["replicas_before"], up["replicas_after"]) == (1, 3)
        assert up["message"].startswith("scaled up 1 → 3: ")
        assert up["message"].endswith("in flight per replica > target 2 for 1 s")
        assert [v.wanted for v in autoscaler.views()] == [3]

        # A redeploy whose replicas do not come up yet: the load goes, but nothing scales.
        await rt._tick()
        rt.healthy = lambda r: r.index < 3
        await service.redeploy(DeploymentCreate(name="a", file=str(model), replicas=3))
        assert rt.rolling_out("a") is not None
        for _ in range(5):
            inflight.leave()
        await ticks(1.5)
        assert rt._deployments["a"].spec.replicas == 3
        assert [e["kind"] for e in events.between(deployment_id, 0, 2**62)] == ["scaled_up"]

        # The rollout completes: the new version keeps the policy and then scales down.
        rt.healthy = lambda r: True
        await rt._tick()
        await rt._tick()
        assert rt.rolling_out("a") is None
        await ticks(1.5)
        await asyncio.gather(*rt._drains)
        view = await service.get("a")
        assert view.autoscaling == AutoscalingView.model_validate(POLICY) and view.replicas == 1
        kinds = [e["kind"] for e in events.between(deployment_id, 0, 2**62)]
        assert kinds == ["scaled_up", "scaled_down"]

        # A fixed count ends it: no more decisions.
        await service.scale("a", replicas=2)
        for _ in range(9):
            inflight.enter()
        await ticks(0.5)
        view = await service.get("a")
        assert (view.autoscaling, view.replicas) == (None, 2)
        assert autoscaler.views() == []

    asyncio.run(run())
    store.close()
