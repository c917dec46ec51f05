"""The canary service on both stores, with a fake runtime, registry and reports: a promotion
moves the deployment's alias and rolls the version out, a candidate that fails to start is
rolled back, and every decision is stored and read back with its reasons."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from modeldeck.config import Settings
from modeldeck.deployments.canary import CanaryRequest, CanaryService
from modeldeck.errors import Conflict, NotFound
from modeldeck.runtimes.base import DeploymentSpec
from modeldeck.store import Store
from tests.fixtures import add_deployment

ROW = SimpleNamespace(
    id="dep-1", name="iris", model="iris", model_version="1", version_spec="@champion",
    track_alias=True,
)  # fmt: skip


@dataclass
class Fakes:
    candidate: tuple[str, bool, str] | None = ("2", True, "")
    accuracy: dict[str, float] = field(default_factory=lambda: {"1": 0.9, "2": 0.95})
    # Accuracy on the labelled reference data, once scored.
    reference: dict[str, float] = field(default_factory=lambda: {"1": 0.93, "2": 0.96})
    scored: list[tuple[str, str | None]] = field(default_factory=list)
    serving: str = "1"
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    # the deployments service
    async def get(self, name: str) -> Any:
        return ROW

    async def candidate_spec(self, name: str, *args: Any) -> tuple[Any, DeploymentSpec]:
        return ROW, DeploymentSpec(
            name=name, model_uri="models:/iris/2", model_version="2", replicas=1
        )

    async def follow_alias(self, name: str) -> str:
        self.calls.append(("follow_alias", name))
        return "2"

    async def redeploy_version(self, name: str, request: Any) -> None:
        self.calls.append(("redeploy", name, request.version, request.alias))

    def route(self, name: str) -> Any:
        return SimpleNamespace(version=self.serving, deployment_id=ROW.id)

    # the runtime
    def rolling_out(self, name: str) -> str | None:
        return None

    async def start_candidate(self, spec: DeploymentSpec) -> None:
        self.calls.append(("start", spec.model_version))

    async def stop_candidate(self, name: str) -> None:
        self.calls.append(("stop", name))

    def candidate_state(self, name: str) -> tuple[str, bool, str] | None:
        return self.candidate

    # the registry
    def set_alias(self, name: str, alias: str, version: str) -> tuple[str, str]:
        self.calls.append(("set_alias", name, alias, version))
        return "1", version

    # the reports
    def drift(self, name: str, **kwargs: Any) -> dict[str, Any]:
        raise NotFound("no reference data")

    def performance(self, name: str, *, model_version: str, **kwargs: Any) -> dict[str, Any]:
        return {"windows": [{"realised": {"accuracy": self.accuracy[model_version]}}]}

    def score_version(
        self, name: str, version: str, *, on_version: str | None = None
    ) -> dict[str, Any]:
        self.scored.append((version, on_version))
        return {}

    def version_score(self, name: str, version: str, **kwargs: Any) -> dict[str, Any] | None:
        if version not in self.reference:
            return None
        return {"status": "scored", "metrics": {"accuracy": self.reference[version]}}


def service(store_url: str, fakes: Fakes) -> CanaryService:
    store = Store(store_url)
    store.migrate()
    add_deployment(store, ROW.id, ROW.name)  # what the stored canary hangs off
    runtime = SimpleNamespace(
        start_candidate=fakes.start_candidate,
        stop_candidate=fakes.stop_candidate,
        candidate=fakes.candidate_state,
        rolling_out=fakes.rolling_out,
    )
    return CanaryService(
        Settings(),
        store,
        fakes,
        fakes,
        runtime,
        fakes,  # type: ignore[arg-type]
    )


REQUEST = CanaryRequest(version="2", percent=50, policy={"min_requests": 3})  # type: ignore[arg-type]


def test_a_passing_candidate_is_promoted_and_the_alias_moves(store_url: str) -> None:
    fakes = Fakes()
    canaries = service(store_url, fakes)

    async def run() -> None:
        view = await canaries.start("iris", REQUEST)
        assert (view.active, view.candidate_version, view.percent) == (True, "2", 50)
        with pytest.raises(Conflict):
            await canaries.start("iris", REQUEST)
        assert canaries.routing("iris") == ("canary", 50)
        assert await canaries.evaluate("iris") == "wait"
        for _ in range(3):
            canaries.observe("iris", "1", 200, 0.004)
            canaries.observe("iris", "2", 200, 0.004)
        canaries.observe("iris", "3", 500, 0.004)  # neither version: not counted
        assert await canaries.evaluate("iris") == "promote"
        assert canaries.routing("iris") is None

    asyncio.run(run())
    assert ("set_alias", "iris", "champion", "2") in fakes.calls
    assert ("follow_alias", "iris") in fakes.calls
    assert ("stop", "iris") in fakes.calls
    view = asyncio.run(canaries.status("iris"))
    assert not view.active
    assert [d.decision for d in view.decisions] == ["promote", "wait", "started"]
    promote = view.decisions[0]
    assert "alias champion of iris moved from 1 to 2" in promote.reasons
    assert "drift not checked: no reference data" in promote.reasons
    assert promote.evidence is not None
    assert promote.evidence["candidate"]["requests"] == 3
    assert promote.evidence["candidate"]["performance"] == 0.95
    assert promote.evidence["candidate"]["performance_kind"] == "realised"
    assert any(
        r.startswith("realised accuracy 0.95 of the candidate against realised 0.9")
        for r in promote.reasons
    )
    assert view.decisions[1].reasons == ["0 of 3 candidate requests so far"]


def test_a_candidate_that_fails_to_start_is_rolled_back(store_url: str) -> None:
    fakes = Fakes()
    canaries = service(store_url, fakes)

    async def run() -> str:
        await canaries.start("iris", REQUEST)
        fakes.candidate = ("", False, "replica 1 failed to start 3 times")
        return await canaries.evaluate("iris")

    assert asyncio.run(run()) == "rollback"
    assert not any(c[0] in ("set_alias", "redeploy", "follow_alias") for c in fakes.calls)
    last = asyncio.run(canaries.status("iris")).decisions[0]
    assert last.decision == "rollback"
    assert last.reasons[0] == "the candidate failed: replica 1 failed to start 3 times"


def test_a_user_stops_a_canary_once(store_url: str) -> None:
    fakes = Fakes()
    canaries = service(store_url, fakes)

    async def run() -> None:
        await canaries.start("iris", REQUEST.model_copy(update={"mode": "shadow"}))
        assert canaries.routing("iris") == ("shadow", 0.0)
        view = await canaries.stop("iris")
        assert [d.decision for d in view.decisions] == ["stopped", "started"]
        with pytest.raises(NotFound):
            await canaries.stop("iris")

    asyncio.run(run())


def test_a_canary_ends_when_the_deployment_serves_another_version(store_url: str) -> None:
    fakes = Fakes()
    canaries = service(store_url, fakes)

    async def run() -> str:
        await canaries.start("iris", REQUEST)
        fakes.serving = "3"  # redeployed meanwhile: the comparison would be with nothing
        return await canaries.evaluate("iris")

    assert asyncio.run(run()) == "stopped"
    last = asyncio.run(canaries.status("iris")).decisions[0]
    assert (last.decision, last.reasons[0]) == ("stopped", "the deployment serves version 3 now")
    assert ("stop", "iris") in fakes.calls


def test_a_candidate_far_below_on_the_reference_is_rolled_back_before_any_traffic(
    store_url: str,
) -> None:
    fakes = Fakes(reference={"1": 0.94})  # the candidate not scored yet
    canaries = service(store_url, fakes)

    async def run() -> list[str]:
        await canaries.start("iris", REQUEST)
        verdicts = [await canaries.evaluate("iris")]
        for _ in range(500):  # the background scoring of both versions (a condition, bounded)
            if len(fakes.scored) == 3:
                break
            await asyncio.sleep(0.01)
        fakes.reference["2"] = 0.02  # scored: confidently wrong
        verdicts.append(await canaries.evaluate("iris"))
        return verdicts

    assert asyncio.run(run()) == ["wait", "rollback"]
    # Both versions scored on the stable version's reference, the candidate on its own too.
    assert sorted(fakes.scored) == [("1", "1"), ("2", "1"), ("2", "2")]
    view = asyncio.run(canaries.status("iris"))
    last = view.decisions[0]
    assert last.decision == "rollback"
    assert last.reasons[0] == (
        "accuracy on the labelled reference data 0.02 of the candidate against 0.94 of the "
        "stable version (margin 0.2)"
    )
    assert last.evidence is not None
    assert last.evidence["candidate"]["requests"] == 0
    assert (last.evidence["candidate"]["reference"], last.evidence["stable"]["reference"]) == (
        0.02,
        0.94,
    )
    assert not any(c[0] in ("set_alias", "redeploy", "follow_alias") for c in fakes.calls)
