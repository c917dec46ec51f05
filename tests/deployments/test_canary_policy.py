"""The canary policy's decision function, one test per reason it can give."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from modeldeck.deployments.canary import CanaryPolicy, CanaryRequest, Evidence, VersionStats, decide

POLICY = CanaryPolicy(min_requests=10, max_error_rate=0.1, max_p95_ms=100, performance_margin=0.05)


def good(**overrides: object) -> Evidence:
    values: dict[str, object] = {
        "requests": 50,
        "error_rate": 0.0,
        "p95_ms": 20.0,
        "drifted": False,
        "performance": 0.9,
        "performance_kind": "realised",
    }
    values.update(overrides)
    return Evidence(**values)  # type: ignore[arg-type]


def test_waits_for_min_requests() -> None:
    d = decide(POLICY, good(), good(requests=9))
    assert d.action == "wait"
    assert d.reasons == ["9 of 10 candidate requests so far"]


def test_promotes_when_every_check_passes() -> None:
    d = decide(POLICY, good(), good(performance=0.87))  # within the margin
    assert d.action == "promote"
    assert any("error rate 0.00%" in r for r in d.reasons)
    assert any("p95 latency 20 ms" in r for r in d.reasons)
    assert any("realised accuracy 0.87 against 0.9" in r for r in d.reasons)


def test_rolls_back_on_errors() -> None:
    d = decide(POLICY, good(), good(error_rate=0.2))
    assert (d.action, d.reasons) == ("rollback", ["error rate 20.00% (max 10.00%)"])


def test_rolls_back_on_latency() -> None:
    d = decide(POLICY, good(), good(p95_ms=250.0))
    assert (d.action, d.reasons) == ("rollback", ["p95 latency 250 ms (max 100 ms)"])


def test_rolls_back_on_drift_only_when_stable_does_not_drift() -> None:
    d = decide(POLICY, good(), good(drifted=True))
    assert d.action == "rollback"
    assert d.reasons == ["the candidate's inputs drift and the stable version's do not"]
    assert decide(POLICY, good(drifted=True), good(drifted=True)).action == "promote"
    unknown = decide(POLICY, good(drifted=None), good(drifted=None))
    assert "drift not checked: no reference data" in unknown.reasons


def test_rolls_back_on_worse_performance() -> None:
    d = decide(POLICY, good(performance=0.95), good(performance=0.5))
    assert d.action == "rollback"
    assert d.reasons == ["realised accuracy 0.5 against 0.95 (margin 0.05)"]


def test_lower_is_better_metrics() -> None:
    policy = POLICY.model_copy(update={"metric": "rmse"})
    assert decide(policy, good(performance=1.0), good(performance=0.5)).action == "promote"
    assert decide(policy, good(performance=1.0), good(performance=1.5)).action == "rollback"


def test_waits_for_performance_then_compares_like_with_like() -> None:
    d = decide(POLICY, good(), good(performance=None, performance_kind=None))
    assert (d.action, d.reasons) == (
        "wait",
        ["no realised or estimated accuracy of the candidate yet"],
    )
    d = decide(POLICY, good(), good(performance_kind="estimated"))
    assert d.action == "wait"
    assert d.reasons == [
        "accuracy is estimated for the candidate and realised for the stable version"
    ]


def test_a_failed_check_wins_over_waiting_for_performance() -> None:
    d = decide(POLICY, good(), good(error_rate=0.5, performance=None))
    assert d.action == "rollback"


def test_checks_left_out_of_the_policy_are_not_made() -> None:
    policy = CanaryPolicy(min_requests=1, max_p95_ms=None, max_drift=False, performance_margin=None)
    d = decide(policy, good(), good(p95_ms=None, drifted=True, performance=None))
    assert (d.action, d.reasons) == ("promote", ["error rate 0.00% (max 1.00%)"])


def test_version_stats_count_5xx_as_errors_and_measure_p95() -> None:
    stats = VersionStats()
    for _ in range(19):
        stats.add(200, 0.004)
    stats.add(503, 0.004)
    stats.add(422, 0.004)  # the caller's mistake, not the candidate's
    assert (stats.requests, stats.errors) == (21, 1)
    assert stats.p95_ms is not None and stats.p95_ms <= 5


def test_a_request_names_exactly_one_of_version_and_alias() -> None:
    assert CanaryRequest.model_validate({"version": 2}).version == "2"
    with pytest.raises(ValidationError):
        CanaryRequest.model_validate({"version": "2", "alias": "challenger"})
    with pytest.raises(ValidationError):
        CanaryRequest.model_validate({"percent": 10})
