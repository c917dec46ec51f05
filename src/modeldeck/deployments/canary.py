"""Canaries: a candidate version beside the stable one, promoted or rolled back by a policy.

A canary (``mode: canary``) sends ``percent`` of a deployment's requests to the candidate's
replicas; a shadow (``mode: shadow``) answers every request with the stable version and sends a
copy to the candidate, whose answer is recorded, never returned (see ``gateway/forward.py``).
Both versions' requests are counted here per version from the canary's start (the policy's
request count, error rate and p95 latency); drift and realised or estimated performance come from
the prediction records, which carry their version (``monitoring/analysis.py``).

Every ``canary_interval_seconds`` the policy is evaluated (``decide``): ``wait`` while the
candidate has fewer than ``min_requests`` requests (or no performance to compare yet),
``rollback`` (the candidate stops) when a check fails, ``promote`` when all pass: the deployment
is redeployed to the candidate's version the zero-downtime way and, when the deployment's version
is an alias (``@champion``), the alias is moved to that version in the registry first. The start,
each change of verdict and the end are stored with their reasons (``canary_decisions``).

Evidence is trusted only as far as it goes. Performance is realised (labels joined) or
estimated (each version's own confidence estimator, calibrated on its own predictions for the
reference data: never another version's); a promotion needs the candidate's evidence to be at
least as strong as the stable version's, and realised unless the policy allows estimated-only
promotions (``allow_estimated``). Unknown performance never passes. Before traffic counts at
all, the sanity floor compares both versions' metric on the labelled reference data (each
version scored once, in the background, when the canary starts): a candidate far below the
stable version there is rolled back at once. Both sides' kinds of evidence are named in every
recorded reason.

A canary survives a platform restart (an upgrade, a crash, SIGKILL). Its start writes a row to
``canaries`` (the request, both versions, the start time) in the transaction that records the
"started" decision, and its end (promote, rollback, stop) deletes the row in the transaction that
records why; deleting the deployment deletes it too (a foreign key). At start-up, once the
deployments are restored, ``resume`` brings back each stored canary whose deployment still runs
the row's stable version: the candidate's replicas start again (the recorded version, not its
alias resolved anew), the split or the copy goes on with the same percent and mode, and the
policy keeps its start time, so drift and performance still cover everything since the start.
The per-version request counts are rebuilt from the stored technical rollups (5-second buckets
per deployment and version, ``monitoring/technical.py``) from the start's bucket on: what an
unclean stop did not flush (the last seconds) is missing, and with technical monitoring off they
start from zero. The "resumed" decision says which. A canary whose deployment serves another
version by then (a redeploy that completed before the restart, before an evaluation noticed) or
was stopped is stopped, and one whose candidate cannot start again (its version gone from the
registry, say) is rolled back, each with its reason recorded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy import delete, func, select

from modeldeck.config import Settings
from modeldeck.deployments.schemas import RedeployRequest
from modeldeck.deployments.service import DeploymentService
from modeldeck.errors import Conflict, ModeldeckError, NotFound
from modeldeck.monitoring.alerts.rules import PERFORMANCE_METRICS
from modeldeck.monitoring.analysis import AnalysisService
from modeldeck.monitoring.technical import BUCKET_MS, latency_bucket, percentile
from modeldeck.registry import Registry
from modeldeck.runtimes.base import Runtime
from modeldeck.store import Store
from modeldeck.store.schema import (
    LATENCY_BOUNDS_MS,
    CanaryDecisionRow,
    CanaryRow,
    DeploymentRow,
    RollupRow,
)
from modeldeck.validation import Text
from modeldeck.views.deployments import CanaryDecisionView, CanaryPolicyView, CanaryView

log = logging.getLogger("modeldeck.canary")

DECISIONS_SHOWN = 50
ENDINGS = {"promote", "rollback", "stopped"}  # decisions that end a canary (its row goes)
LOWER_IS_BETTER = {"mae", "mse", "rmse", "mape", "log_loss", "brier"}
# The performance report's metrics a policy can compare (label coverage is not a quality).
CANARY_METRICS = tuple(m for m in PERFORMANCE_METRICS if m != "label_coverage")


class CanaryPolicy(BaseModel):
    """When a candidate is promoted or rolled back."""

    model_config = ConfigDict(extra="forbid")

    min_requests: int = Field(
        default=100, ge=1, description="Candidate requests to wait for before deciding."
    )
    max_error_rate: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Largest share of the candidate's requests that may fail (5xx).",
    )
    max_p95_ms: float | None = Field(
        default=None, gt=0, description="Largest p95 latency of the candidate, in ms."
    )
    max_drift: bool = Field(
        default=True,
        description="Roll back when the candidate's inputs drift from the reference and the "
        "stable version's do not (needs reference data; skipped without).",
    )
    performance_margin: float | None = Field(
        default=0.05,
        ge=0,
        description="How much worse than the stable version's the candidate's realised "
        "(or, without labels, estimated) metric may be; null: not checked.",
    )
    allow_estimated: bool = Field(
        default=False,
        description="Promote on estimated performance alone (no labels for the candidate). "
        "Off: a promotion needs the candidate's realised metric; an estimate can still roll "
        "it back.",
    )
    reference_margin: float | None = Field(
        default=0.2,
        ge=0,
        description="Sanity floor: roll back at once, without waiting for traffic, when the "
        "candidate's metric on the labelled reference data is worse than the stable "
        "version's by more than this; null: not checked.",
    )
    metric: str = Field(
        default="accuracy",
        description="The performance metric compared: "
        + ", ".join(CANARY_METRICS)
        + " (the realised or estimated metric of the performance report).",
    )

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in CANARY_METRICS:
            raise ValueError(f"unknown metric {value[:64]!r}; one of {', '.join(CANARY_METRICS)}")
        return value


class CanaryRequest(BaseModel):
    """Start a canary (or shadow) of another version beside the serving one."""

    model_config = ConfigDict(extra="forbid")

    version: Annotated[str, Text(255, min_length=1)] | None = Field(
        default=None, description="Candidate version number."
    )
    alias: Annotated[str, Text(255, min_length=1)] | None = Field(
        default=None, description="Candidate alias, e.g. 'challenger'."
    )
    percent: float = Field(
        default=10, ge=0, le=100, description="Share of requests the candidate answers (canary)."
    )
    mode: Literal["canary", "shadow"] = "canary"
    replicas: int = Field(default=1, ge=1, le=16, description="Replicas of the candidate.")
    policy: CanaryPolicy = Field(default_factory=CanaryPolicy)

    @model_validator(mode="before")
    @classmethod
    def _version_text(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("version"), int):
            data = {**data, "version": str(data["version"])}
        return data

    @model_validator(mode="after")
    def _one_of(self) -> CanaryRequest:
        if (self.version is None) == (self.alias is None):
            raise ValueError("give exactly one of version and alias")
        return self


@dataclass
class VersionStats:
    """Requests to one version since the canary started."""

    requests: int = 0
    errors: int = 0
    hist: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS_MS) + 1))

    def add(self, status: int, seconds: float) -> None:
        self.requests += 1
        self.errors += status >= 500
        self.hist[latency_bucket(seconds * 1000)] += 1

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def p95_ms(self) -> float | None:
        return percentile(self.hist, 0.95)


@dataclass
class Evidence:
    """What the policy looks at for one version."""

    requests: int = 0
    error_rate: float = 0.0
    p95_ms: float | None = None
    drifted: bool | None = None  # None: not known (no reference data)
    performance: float | None = None
    performance_kind: str | None = None  # realised | estimated; None: unknown
    labelled: int = 0  # predictions with ground truth
    reference: float | None = None  # the metric on the labelled reference data
    reference_note: str | None = None  # why ``reference`` is unknown; None: not scored yet

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Decision:
    action: Literal["wait", "promote", "rollback"]
    reasons: list[str]


STRENGTH = {"realised": 2, "estimated": 1}  # of performance evidence; unknown is 0


def decide(policy: CanaryPolicy, stable: Evidence, candidate: Evidence) -> Decision:
    """The policy's verdict on ``candidate`` against ``stable`` (pure: unit-tested per reason)."""
    floor = _floor(policy, stable, candidate)
    if floor is not None and floor[0] == "failed":
        return Decision("rollback", [floor[1]])  # without waiting for traffic
    if candidate.requests < policy.min_requests:
        return Decision(
            "wait", [f"{candidate.requests} of {policy.min_requests} candidate requests so far"]
        )
    failed: list[str] = []
    passed: list[str] = []
    waiting: list[str] = []
    if floor is not None:
        (waiting if floor[0] == "waiting" else passed).append(floor[1])
    rate = f"error rate {candidate.error_rate:.2%} (max {policy.max_error_rate:.2%})"
    (failed if candidate.error_rate > policy.max_error_rate else passed).append(rate)
    if policy.max_p95_ms is not None:
        if candidate.p95_ms is None:
            failed.append("no latency measured")
        else:
            p95 = f"p95 latency {candidate.p95_ms:g} ms (max {policy.max_p95_ms:g} ms)"
            (failed if candidate.p95_ms > policy.max_p95_ms else passed).append(p95)
    if policy.max_drift:
        if candidate.drifted is None:
            passed.append("drift not checked: no reference data")
        elif candidate.drifted and not stable.drifted:
            failed.append("the candidate's inputs drift and the stable version's do not")
        else:
            passed.append("drift no worse than the stable version's")
    if policy.performance_margin is not None:
        verdict, text = _performance(policy, policy.performance_margin, stable, candidate)
        {"failed": failed, "passed": passed, "waiting": waiting}[verdict].append(text)
    if failed:
        return Decision("rollback", failed)
    if waiting:
        return Decision("wait", waiting)
    return Decision("promote", passed)


def _worse_by(name: str, candidate: float, stable: float) -> float:
    return candidate - stable if name in LOWER_IS_BETTER else stable - candidate


def _performance(
    policy: CanaryPolicy, margin: float, stable: Evidence, candidate: Evidence
) -> tuple[str, str]:
    """``(failed | passed | waiting, reason)`` of the performance check: values are compared
    only when the candidate's evidence is at least as strong as the stable version's (realised
    beats estimated; unknown never passes), and an estimate alone promotes only when the
    policy allows it."""
    name = policy.metric
    if candidate.performance is None or stable.performance is None:
        which = "candidate" if candidate.performance is None else "stable version"
        return "waiting", f"no realised or estimated {name} of the {which} yet (unknown)"
    kind, stable_kind = candidate.performance_kind or "", stable.performance_kind or ""
    if STRENGTH.get(kind, 0) < STRENGTH.get(stable_kind, 0):
        return "waiting", (
            f"{name} is {kind} for the candidate and {stable_kind} for the stable version: "
            "waiting for evidence of the same kind"
        )
    text = (
        f"{kind} {name} {candidate.performance:.4g} of the candidate against {stable_kind} "
        f"{stable.performance:.4g} of the stable version (margin {margin:g})"
    )
    if _worse_by(name, candidate.performance, stable.performance) > margin:
        return "failed", text
    if kind != "realised" and not policy.allow_estimated:
        return "waiting", (
            f"{text}; a promotion needs the candidate's realised {name} "
            "(policy.allow_estimated is off): waiting for labels"
        )
    return "passed", text


def _floor(policy: CanaryPolicy, stable: Evidence, candidate: Evidence) -> tuple[str, str] | None:
    """``(failed | passed | waiting, reason)`` of the sanity floor, ``None`` when the policy
    has none: both versions' metric on the labelled reference data."""
    margin = policy.reference_margin
    if margin is None:
        return None
    name = policy.metric
    if candidate.reference is None or stable.reference is None:
        side = candidate if candidate.reference is None else stable
        if side.reference_note is None:
            return "waiting", f"{name} on the labelled reference data is not measured yet"
        return "passed", f"{name} on the reference data not checked: {side.reference_note}"
    text = (
        f"{name} on the labelled reference data {candidate.reference:.4g} of the candidate "
        f"against {stable.reference:.4g} of the stable version (margin {margin:g})"
    )
    worse = _worse_by(name, candidate.reference, stable.reference) > margin
    return ("failed", text) if worse else ("passed", text)


@dataclass
class _Canary:
    deployment_id: str
    stable_version: str
    candidate_version: str
    request: CanaryRequest
    started_ms: int
    stats: dict[str, VersionStats] = field(default_factory=dict)
    last: CanaryDecisionView | None = None
    wait_recorded: bool = False  # the first wait is recorded; later ones only update ``last``
    scoring: asyncio.Task[None] | None = None  # both versions scored on the reference
    scored: bool = False  # ... and stored
    scoring_error: str | None = None  # why they cannot be (no reference data...)

    @property
    def alias(self) -> str | None:
        return self.request.alias

    @property
    def mode(self) -> str:
        return self.request.mode

    @property
    def percent(self) -> float:
        return self.request.percent if self.request.mode == "canary" else 0.0

    @property
    def policy(self) -> CanaryPolicy:
        return self.request.policy

    def share(self) -> str:
        return f"{self.percent:g}% of requests" if self.mode == "canary" else "a copy"


@dataclass
class _Stored:
    """A ``canaries`` row with what resuming it needs to know of its deployment."""

    name: str
    deployment_id: str
    stable_version: str
    candidate_version: str
    request: dict[str, Any]
    started_ms: int
    serving_version: str
    running: bool  # an endpoint whose desired state is running


def _now_ms() -> int:
    return int(time.time() * 1000)


class CanaryService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        registry: Registry,
        deployments: DeploymentService,
        runtime: Runtime,
        analysis: AnalysisService,
    ) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry
        self.deployments = deployments
        self.runtime = runtime
        self.analysis = analysis
        self._canaries: dict[str, _Canary] = {}

    # -- what the gateway asks on every request ---------------------------------------------

    def routing(self, name: str) -> tuple[str, float] | None:
        """``(mode, percent)`` of ``name``'s canary, if one runs."""
        canary = self._canaries.get(name)
        return (canary.mode, canary.percent) if canary else None

    def observe(self, name: str, version: str, status: int, seconds: float) -> None:
        canary = self._canaries.get(name)
        if canary is not None and version in (canary.stable_version, canary.candidate_version):
            canary.stats.setdefault(version, VersionStats()).add(status, seconds)

    # -- operations -------------------------------------------------------------------------

    async def start(self, name: str, request: CanaryRequest) -> CanaryView:
        if name in self._canaries:
            raise Conflict(
                f"deployment {name!r} already runs a canary: stop it first",
                details={"deployment": name},
            )
        row, spec = await self.deployments.candidate_spec(
            name, request.version, request.alias, request.replicas
        )
        if self.runtime.rolling_out(name):
            raise Conflict(
                f"deployment {name!r} is rolling out a version: start the canary once it serves",
                details={"deployment": name},
            )
        if spec.model_version == row.model_version:
            raise Conflict(
                f"version {spec.model_version} is the version deployment {name!r} serves",
                details={"deployment": name},
            )
        canary = _Canary(
            deployment_id=row.id,
            stable_version=row.model_version,
            candidate_version=spec.model_version,
            request=request,
            started_ms=_now_ms(),
        )
        # Stored before it starts: a canary that runs is one a restart resumes.
        await self._record(
            canary, "started", [f"version {spec.model_version} gets {canary.share()}"]
        )
        try:
            await self.runtime.start_candidate(spec)
        except Exception as exc:
            log.exception("starting the candidate of %s failed", name)
            await self._record(canary, "stopped", [f"the candidate could not start: {exc}"])
            raise
        self._canaries[name] = canary
        self._score(name, canary)
        return await self.status(name)

    async def resume(self) -> dict[str, str]:
        """Bring back the canaries stored before a platform restart (call once the deployments
        are restored); returns each one's outcome: resumed, stopped or rollback."""
        outcomes = {}
        for stored in await asyncio.to_thread(self._stored):
            try:
                outcomes[stored.name] = await self._resume(stored)
            except Exception:  # one canary's failure must not keep the others (or the platform)
                log.exception("resuming the canary of %s failed", stored.name)
        return outcomes

    async def _resume(self, stored: _Stored) -> str:
        name = stored.name
        try:
            request = CanaryRequest.model_validate(stored.request)
        except ValidationError as exc:
            mode = str(stored.request.get("mode", "canary"))
            request = CanaryRequest.model_construct(version=stored.candidate_version, mode=mode)
            canary = self._stored_canary(stored, request)
            await self._record(canary, "stopped", [f"its stored request is not valid: {exc}"])
            return "stopped"
        canary = self._stored_canary(stored, request)
        moved = stored.serving_version != stored.stable_version
        if moved or not stored.running:
            why = f"serves version {stored.serving_version} now" if moved else "was stopped"
            await self._record(canary, "stopped", [f"the deployment {why}"])
            return "stopped"
        try:
            # The recorded version: an alias may point elsewhere by now.
            _, spec = await self.deployments.candidate_spec(
                name, stored.candidate_version, None, request.replicas, require_serving=False
            )
            if not self.runtime.running(name):
                raise Conflict(f"deployment {name!r} has no replicas running")
        except ModeldeckError as exc:
            reasons = [f"the candidate cannot start again: {exc}"]
            await self._record(canary, "rollback", reasons)
            return "rollback"
        canary.stats = await asyncio.to_thread(self._stored_stats, canary)
        await self.runtime.start_candidate(spec)
        self._canaries[name] = canary
        self._score(name, canary)
        candidate = canary.stats.get(canary.candidate_version, VersionStats())
        stable = canary.stats.get(canary.stable_version, VersionStats())
        if candidate.requests or stable.requests or self.settings.technical_monitoring:
            kept = (
                f"requests counted since the start: {candidate.requests} of the candidate's, "
                f"{stable.requests} of the stable version's, from the stored technical rollups "
                "(requests in the last seconds before an unclean stop may be missing)"
            )
        else:
            kept = "requests counted from zero: technical monitoring is off, none were stored"
        reasons = [
            f"resumed after a platform restart: version {canary.candidate_version} gets "
            f"{canary.share()} again, beside version {canary.stable_version}",
            kept,
            "drift and performance cover the prediction records since the start, as before",
        ]
        log.info("canary of %s resumed (%s)", name, "; ".join(reasons))
        evidence = {"stable": _counts(stable), "candidate": _counts(candidate)}
        await self._record(canary, "resumed", reasons, evidence)
        return "resumed"

    def _stored_canary(self, stored: _Stored, request: CanaryRequest) -> _Canary:
        return _Canary(
            deployment_id=stored.deployment_id,
            stable_version=stored.stable_version,
            candidate_version=stored.candidate_version,
            request=request,
            started_ms=stored.started_ms,
        )

    async def stop(self, name: str, reason: str = "stopped by a user") -> CanaryView:
        canary = self._canaries.pop(name, None)
        if canary is None:
            raise NotFound(f"deployment {name!r} runs no canary", details={"deployment": name})
        await self.runtime.stop_candidate(name)
        await self._record(canary, "stopped", [reason])
        return await self.status(name)

    async def status(self, name: str) -> CanaryView:
        row = await self.deployments.get(name)  # 404 for an unknown deployment
        # Looked up before the decisions are read: a canary's end is recorded before it is
        # gone, so one seen gone has its end among them.
        canary = self._canaries.get(name)
        decisions = await asyncio.to_thread(self._decisions, row.id)
        if canary is None:
            return CanaryView(deployment=name, active=False, decisions=decisions)
        state = self.runtime.candidate(name)
        return CanaryView(
            deployment=name,
            active=True,
            mode=canary.mode,
            percent=canary.percent,
            stable_version=canary.stable_version,
            candidate_version=canary.candidate_version,
            candidate_alias=canary.alias,
            candidate_ready=bool(state and state[1]),
            started_at=canary.started_ms,
            policy=CanaryPolicyView.model_validate(canary.policy),
            last=canary.last,
            decisions=decisions,
        )

    # -- the policy -------------------------------------------------------------------------

    async def evaluate_all(self) -> dict[str, str]:
        """One evaluation of every canary; returns each one's verdict."""
        verdicts = {}
        for name in list(self._canaries):
            try:
                verdicts[name] = await self.evaluate(name)
            except Exception:  # one canary's failure must not stop the others' evaluation
                log.exception("evaluating the canary of %s failed", name)
        return verdicts

    async def evaluate(self, name: str) -> str:
        canary = self._canaries.get(name)
        if canary is None:
            return "none"
        route = self.deployments.route(name)
        if route is not None and route.deployment_id != canary.deployment_id:
            route = None  # deleted, and another deployment of that name created since
        if route is None or route.version != canary.stable_version:
            now = f"version {route.version}" if route else "nothing (it was deleted)"
            await self._end(name, canary, "stopped", [f"the deployment serves {now} now"], None)
            return "stopped"
        state = self.runtime.candidate(name)
        if state is None or state[2]:
            failure = state[2] if state else "the candidate's replicas are gone"
            await self._end(name, canary, "rollback", [f"the candidate failed: {failure}"], None)
            return "rollback"
        if not state[1]:
            decision = Decision("wait", ["the candidate's replicas are starting"])
            evidence: dict[str, Any] | None = None
        else:
            stable, candidate = await asyncio.to_thread(self._evidence, name, canary)
            self._score(name, canary)  # not scored yet (a failure): make sure it is under way
            decision = decide(canary.policy, stable, candidate)
            evidence = {"stable": stable.to_dict(), "candidate": candidate.to_dict()}
        if decision.action == "wait":
            if canary.wait_recorded:
                canary.last = _view(canary, "wait", decision.reasons, evidence)
            else:
                canary.wait_recorded = True
                await self._record(canary, "wait", decision.reasons, evidence)
            return "wait"
        await self._end(name, canary, decision.action, decision.reasons, evidence)
        return decision.action

    async def _end(
        self,
        name: str,
        canary: _Canary,
        action: str,
        reasons: list[str],
        evidence: dict[str, Any] | None,
    ) -> None:
        # The canary stays listed (its requests going to the stable version) until its end is
        # recorded: whoever sees it gone sees why.
        await self.runtime.stop_candidate(name)
        try:
            if action == "promote":
                reasons = [*reasons, *await self._promote(name, canary)]
            else:
                reasons = [*reasons, f"version {canary.candidate_version} stopped"]
            log.info("canary of %s: %s (%s)", name, action, "; ".join(reasons))
            await self._record(canary, action, reasons, evidence)
        finally:
            self._canaries.pop(name, None)

    async def _promote(self, name: str, canary: _Canary) -> list[str]:
        """Serve the candidate's version (and move the deployment's alias to it)."""
        row = await self.deployments.get(name)
        spec = row.version_spec
        version = canary.candidate_version
        done: list[str] = []
        try:
            if spec.startswith("@"):
                alias = spec[1:]
                before, _ = await asyncio.to_thread(
                    self.registry.set_alias, row.model, alias, version
                )
                done.append(f"alias {alias} of {row.model} moved from {before} to {version}")
                if row.track_alias:
                    started = await self.deployments.follow_alias(name)
                    if started is None:  # a rollout under way or the like: go explicitly
                        await self.deployments.redeploy_version(name, RedeployRequest(alias=alias))
                else:
                    await self.deployments.redeploy_version(
                        name, RedeployRequest(alias=alias, track_alias=False)
                    )
            else:
                await self.deployments.redeploy_version(name, RedeployRequest(version=version))
        except ModeldeckError as exc:
            done.append(f"promotion failed: {exc}")
            return done
        done.append(f"rolling out version {version} (zero downtime)")
        return done

    def _score(self, name: str, canary: _Canary) -> None:
        """Score both versions on the reference data in the background (once: stored), unless
        that is under way or cannot be done."""
        if canary.scored or canary.scoring_error is not None:
            return
        if canary.scoring is not None and not canary.scoring.done():
            return
        canary.scoring = asyncio.get_running_loop().create_task(self._score_versions(name, canary))

    async def _score_versions(self, name: str, canary: _Canary) -> None:
        stable, candidate = canary.stable_version, canary.candidate_version
        # Each on the stable version's reference (the floor), the candidate on its own too
        # (its estimator; the same reference unless it has one of its own).
        for version, on in ((stable, stable), (candidate, stable), (candidate, candidate)):
            try:
                await asyncio.to_thread(self.analysis.score_version, name, version, on_version=on)
            except NotFound as exc:  # no reference data: nothing to score on
                canary.scoring_error = exc.message
                return
            except Exception:  # the next evaluation tries again
                log.exception("scoring version %s of %s on the reference failed", version, name)
                return
        canary.scored = True

    def _evidence(self, name: str, canary: _Canary) -> tuple[Evidence, Evidence]:
        return (
            self._version_evidence(name, canary, canary.stable_version),
            self._version_evidence(name, canary, canary.candidate_version),
        )

    def _version_evidence(self, name: str, canary: _Canary, version: str) -> Evidence:
        stats = canary.stats.get(version, VersionStats())
        evidence = Evidence(stats.requests, stats.error_rate, stats.p95_ms)
        start, end = canary.started_ms, _now_ms() + 1
        policy = canary.policy
        if policy.reference_margin is not None:
            self._reference_evidence(name, canary, version, evidence)
        if policy.max_drift:
            try:
                report = self.analysis.drift(
                    name, start_ms=start, end_ms=end, model_version=version
                )
                if report["predictions"]:
                    evidence.drifted = bool(report["dataset"]["drifted"])
            except ModeldeckError:  # no reference data: drift is not known
                evidence.drifted = None
        if policy.performance_margin is not None:
            try:
                report = self.analysis.performance(
                    name, start_ms=start, end_ms=end, model_version=version
                )
            except ModeldeckError:
                return evidence
            for window in report["windows"]:
                evidence.labelled += int(window.get("labelled") or 0)
                for kind in ("realised", "estimated"):
                    value = (window.get(kind) or {}).get(policy.metric)
                    if isinstance(value, (int, float)):
                        evidence.performance, evidence.performance_kind = float(value), kind
                        break
        return evidence

    def _reference_evidence(
        self, name: str, canary: _Canary, version: str, evidence: Evidence
    ) -> None:
        """The version's metric on the labelled reference data (the stable version's
        reference), or why it is unknown; ``reference_note`` stays None while not scored."""
        if canary.scoring_error is not None:
            evidence.reference_note = canary.scoring_error
            return
        score = self.analysis.version_score(name, version, on_version=canary.stable_version)
        if score is None:
            return
        metric = canary.policy.metric
        value = (score.get("metrics") or {}).get(metric)
        if isinstance(value, (int, float)):
            evidence.reference = float(value)
        elif score["status"] != "scored":
            evidence.reference_note = f"version {version}: {score['reason']}"
        else:
            evidence.reference_note = f"{metric} is not measured on the reference data"

    # -- records ----------------------------------------------------------------------------

    async def _record(
        self,
        canary: _Canary,
        decision: str,
        reasons: list[str],
        evidence: dict[str, Any] | None = None,
    ) -> None:
        view = _view(canary, decision, reasons, evidence)
        canary.last = view
        await asyncio.to_thread(self._insert, canary, view)

    def _insert(self, canary: _Canary, view: CanaryDecisionView) -> None:
        """Store a decision; a start stores the canary too, an end deletes it, in the same
        transaction (so a restart resumes exactly the canaries whose end is not recorded)."""
        deployment_id = canary.deployment_id
        with self.store.write() as session:
            session.add(
                CanaryDecisionRow(
                    deployment_id=deployment_id,
                    stable_version=view.stable_version,
                    candidate_version=view.candidate_version,
                    mode=view.mode,
                    decision=view.decision,
                    reasons=view.reasons,
                    evidence=view.evidence,
                    ts_ms=view.at,
                )
            )
            if view.decision == "started":
                session.merge(
                    CanaryRow(
                        deployment_id=deployment_id,
                        stable_version=canary.stable_version,
                        candidate_version=canary.candidate_version,
                        request=canary.request.model_dump(mode="json"),
                        started_ms=canary.started_ms,
                    )
                )
            elif view.decision in ENDINGS:
                session.execute(delete(CanaryRow).where(CanaryRow.deployment_id == deployment_id))

    def _stored(self) -> list[_Stored]:
        with self.store.read() as session:
            rows = session.execute(
                select(CanaryRow, DeploymentRow)
                .join(DeploymentRow, DeploymentRow.id == CanaryRow.deployment_id)
                .order_by(DeploymentRow.name)
            ).all()
            return [
                _Stored(
                    name=d.name,
                    deployment_id=c.deployment_id,
                    stable_version=c.stable_version,
                    candidate_version=c.candidate_version,
                    request=dict(c.request),
                    started_ms=c.started_ms,
                    serving_version=d.model_version,
                    running=d.kind == "endpoint" and d.desired_state == "running",
                )
                for c, d in rows
            ]

    def _stored_stats(self, canary: _Canary) -> dict[str, VersionStats]:
        """Both versions' requests since the canary's start, from the stored rollups (those of
        the 5-second bucket the start falls in included: the candidate had none before)."""
        hist = [getattr(RollupRow, f"lat_{i:02d}") for i in range(len(LATENCY_BOUNDS_MS) + 1)]
        versions = (canary.stable_version, canary.candidate_version)
        with self.store.read() as session:
            rows = session.execute(
                select(
                    RollupRow.version,
                    func.sum(RollupRow.requests),
                    func.sum(RollupRow.status_5xx),
                    *(func.sum(c) for c in hist),
                )
                .where(
                    RollupRow.deployment_id == canary.deployment_id,
                    RollupRow.version.in_(versions),
                    RollupRow.bucket_ms >= canary.started_ms // BUCKET_MS * BUCKET_MS,
                )
                .group_by(RollupRow.version)
            ).all()
        stats = {}
        for version, requests, errors, *counts in rows:
            stats[version] = VersionStats(
                int(requests or 0), int(errors or 0), [int(c or 0) for c in counts]
            )
        return stats

    def _decisions(self, deployment_id: str) -> list[CanaryDecisionView]:
        with self.store.read() as session:
            rows = session.scalars(
                select(CanaryDecisionRow)
                .where(CanaryDecisionRow.deployment_id == deployment_id)
                .order_by(CanaryDecisionRow.ts_ms.desc(), CanaryDecisionRow.id.desc())
                .limit(DECISIONS_SHOWN)
            ).all()
            return [
                CanaryDecisionView(
                    at=r.ts_ms,
                    decision=r.decision,
                    stable_version=r.stable_version,
                    candidate_version=r.candidate_version,
                    mode=r.mode,
                    reasons=list(r.reasons),
                    evidence=r.evidence,
                )
                for r in rows
            ]


def _counts(stats: VersionStats) -> dict[str, Any]:
    return {"requests": stats.requests, "error_rate": stats.error_rate, "p95_ms": stats.p95_ms}


def _view(
    canary: _Canary, decision: str, reasons: list[str], evidence: dict[str, Any] | None
) -> CanaryDecisionView:
    return CanaryDecisionView(
        at=_now_ms(),
        decision=decision,
        stable_version=canary.stable_version,
        candidate_version=canary.candidate_version,
        mode=canary.mode,
        reasons=reasons,
        evidence=evidence,
    )


__all__ = ["CanaryPolicy", "CanaryRequest", "CanaryService", "decide"]
