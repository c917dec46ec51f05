"""The canary policy's decision function, one test per reason it can give: the evidence of
each kind it needs (realised beats estimated, unknown never passes) and the sanity floor on the
labelled reference data."""

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
        "labelled": 50,
        "reference": 0.95,
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
    assert any(
        "realised accuracy 0.87 of the candidate against realised 0.9 of the stable version" in r
        for r in d.reasons
    )
    assert any(
        "accuracy on the labelled reference data 0.95 of the candidate" in r for r in d.reasons
    )


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
    assert d.reasons == [
        "realised accuracy 0.5 of the candidate against realised 0.95 of the stable version "
        "(margin 0.05)"
    ]


def test_lower_is_better_metrics() -> None:
    policy = POLICY.model_copy(update={"metric": "rmse"})
    stable = good(performance=1.0, reference=1.0)
    assert decide(policy, stable, good(performance=0.5, reference=0.5)).action == "promote"
    assert decide(policy, stable, good(performance=1.5, reference=1.0)).action == "rollback"
    floor = decide(policy, stable, good(requests=0, reference=1.5))  # 0.5 worse: the floor
    assert floor.action == "rollback"


def test_unknown_performance_never_passes() -> None:
    d = decide(POLICY, good(), good(performance=None, performance_kind=None))
    assert (d.action, d.reasons) == (
        "wait",
        ["no realised or estimated accuracy of the candidate yet (unknown)"],
    )
    d = decide(POLICY, good(performance=None, performance_kind=None), good())
    assert d.action == "wait"


def test_weaker_evidence_for_the_candidate_waits() -> None:
    # Estimated for the candidate, realised for the stable version: not comparable, even when
    # the estimate looks better.
    d = decide(POLICY, good(), good(performance=0.99, performance_kind="estimated"))
    assert d.action == "wait"
    assert d.reasons == [
        "accuracy is estimated for the candidate and realised for the stable version: "
        "waiting for evidence of the same kind"
    ]


def test_stronger_evidence_for_the_candidate_is_compared() -> None:
    stable = good(performance=0.9, performance_kind="estimated", labelled=0)
    assert decide(POLICY, stable, good(performance=0.88)).action == "promote"
    d = decide(POLICY, stable, good(performance=0.6))
    assert d.action == "rollback"
    assert d.reasons == [
        "realised accuracy 0.6 of the candidate against estimated 0.9 of the stable version "
        "(margin 0.05)"
    ]


def test_estimates_alone_promote_only_when_the_policy_allows() -> None:
    stable = good(performance_kind="estimated", labelled=0)
    candidate = good(performance=0.91, performance_kind="estimated", labelled=0)
    d = decide(POLICY, stable, candidate)
    assert d.action == "wait"
    assert d.reasons == [
        "estimated accuracy 0.91 of the candidate against estimated 0.9 of the stable version "
        "(margin 0.05); a promotion needs the candidate's realised accuracy "
        "(policy.allow_estimated is off): waiting for labels"
    ]
    allowed = POLICY.model_copy(update={"allow_estimated": True})
    d = decide(allowed, stable, candidate)
    assert d.action == "promote"
    assert any(
        "estimated accuracy 0.91 of the candidate against estimated 0.9" in r for r in d.reasons
    )
    assert CanaryPolicy().allow_estimated is False  # off by default


def test_an_estimate_far_below_rolls_back() -> None:
    stable = good(performance=0.97, performance_kind="estimated", labelled=0)
    d = decide(POLICY, stable, good(performance=0.4, performance_kind="estimated", labelled=0))
    assert d.action == "rollback"
    assert d.reasons == [
        "estimated accuracy 0.4 of the candidate against estimated 0.97 of the stable version "
        "(margin 0.05)"
    ]


def test_the_sanity_floor_rolls_back_before_any_traffic() -> None:
    d = decide(POLICY, good(reference=0.95), good(requests=0, reference=0.02, performance=None))
    assert d.action == "rollback"
    assert d.reasons == [
        "accuracy on the labelled reference data 0.02 of the candidate against 0.95 of the "
        "stable version (margin 0.2)"
    ]
    # Within the margin: nothing decided before min_requests.
    assert decide(POLICY, good(), good(requests=0, reference=0.8)).action == "wait"
    assert decide(POLICY, good(), good(reference=0.8)).action == "promote"


def test_the_sanity_floor_is_measured_before_a_promotion() -> None:
    d = decide(POLICY, good(), good(reference=None, reference_note=None))
    assert (d.action, d.reasons) == (
        "wait",
        ["accuracy on the labelled reference data is not measured yet"],
    )
    # It cannot be measured (no labels in the reference, say): said, and not in the way.
    note = "version 2: the reference data has no label column"
    d = decide(
        POLICY, good(reference=None, reference_note=note), good(reference=None, reference_note=note)
    )
    assert d.action == "promote"
    assert f"accuracy on the reference data not checked: {note}" in d.reasons
    off = POLICY.model_copy(update={"reference_margin": None})
    d = decide(off, good(), good(requests=0, reference=0.0))
    assert d.action == "wait"


def test_a_failed_check_wins_over_waiting_for_performance() -> None:
    d = decide(POLICY, good(), good(error_rate=0.5, performance=None))
    assert d.action == "rollback"


def test_checks_left_out_of_the_policy_are_not_made() -> None:
    policy = CanaryPolicy(
        min_requests=1,
        max_p95_ms=None,
        max_drift=False,
        performance_margin=None,
        reference_margin=None,
    )
    d = decide(policy, good(), good(p95_ms=None, drifted=True, performance=None, reference=None))
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
