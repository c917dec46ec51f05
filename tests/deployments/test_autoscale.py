"""The autoscaler's decision: samples of requests in flight + policy + clock -> replica count."""

from __future__ import annotations

import itertools

import pytest
from pydantic import ValidationError

from modeldeck.deployments.autoscale import Sample, decide, wanted
from modeldeck.deployments.schemas import AutoscalingPolicy, DeploymentCreate, ScaleRequest

POLICY = AutoscalingPolicy(
    min_replicas=1,
    max_replicas=4,
    target_inflight=4,
    scale_up_delay_seconds=5,
    scale_down_delay_seconds=30,
)


def samples(*inflight: float, start: float = 0.0, every: float = 1.0) -> list[Sample]:
    """One sample a second (by default) from ``start``, with these means in flight."""
    return [Sample(start + i * every, start + (i + 1) * every, v) for i, v in enumerate(inflight)]


def run(
    policy: AutoscalingPolicy, current: int, load: list[float], every: float = 1.0
) -> list[int]:
    """The count after each second of ``load``, applying each decision as it comes."""
    history: list[Sample] = []
    counts = []
    for i, value in enumerate(load):
        history.append(Sample(i * every, (i + 1) * every, value))
        current = decide(policy, current, history, (i + 1) * every).replicas
        counts.append(current)
    return counts


def test_wanted_is_ceil_of_inflight_over_target_within_bounds() -> None:
    assert wanted(POLICY, 0) == 1  # min
    assert wanted(POLICY, 4) == 1
    assert wanted(POLICY, 4.01) == 2
    assert wanted(POLICY, 8.0) == 2  # exactly the target per replica: no extra one
    assert wanted(POLICY, 11.5) == 3
    assert wanted(POLICY, 1000) == 4  # max


def test_scales_up_only_after_the_up_delay() -> None:
    load = samples(12, 12, 12, 12)  # 4 s of 12 in flight: 3 wanted, 1 runs
    early = decide(POLICY, 1, load, now=4.0)
    assert early.replicas == 1 and early.wanted == 3 and early.reason == ""
    held = decide(POLICY, 1, samples(12, 12, 12, 12, 12), now=5.0)
    assert held.replicas == 3
    assert held.reason == "scaled up 1 → 3: 12.0 in flight per replica > target 4 for 5 s"


def test_scales_up_to_the_fewest_wanted_over_the_delay() -> None:
    decision = decide(POLICY, 1, samples(16, 9, 16, 16, 16), now=5.0)
    assert decision.replicas == 3  # 9 in flight wanted 3; 16 wants 4


def test_a_dip_within_the_up_delay_holds() -> None:
    assert decide(POLICY, 1, samples(12, 12, 2, 12, 12), now=5.0).replicas == 1


def test_scales_down_only_after_the_down_delay() -> None:
    busy_then_idle = [12.0] * 10 + [0.0] * 29
    assert decide(POLICY, 3, samples(*busy_then_idle), now=39.0).replicas == 3
    decision = decide(POLICY, 3, samples(*busy_then_idle, 0.0), now=40.0)
    assert decision.replicas == 1
    assert decision.reason == "scaled down 3 → 1: 0.0 in flight per replica < target 4 for 30 s"


def test_scales_down_to_the_most_wanted_over_the_delay() -> None:
    load = [0.0] * 20 + [6.0] + [0.0] * 9  # one second of 6 in flight wants 2
    assert decide(POLICY, 4, samples(*load), now=30.0).replicas == 2


def test_clamps_to_min_and_max() -> None:
    assert decide(POLICY, 4, samples(*[500.0] * 10), now=10.0).replicas == 4
    floor = AutoscalingPolicy(min_replicas=2, max_replicas=4, scale_down_delay_seconds=3)
    assert decide(floor, 3, samples(0, 0, 0), now=3.0).replicas == 2
    # A count outside the bounds (the policy just changed) is brought into them at once.
    assert decide(floor, 6, samples(0), now=1.0).replicas == 4
    assert decide(floor, 1, [], now=0.0).replicas == 2


def test_waits_until_the_samples_reach_back_a_whole_delay() -> None:
    """Samples since t=10 only (the deployment just came up): 5 s of them are needed."""
    load = samples(12, 12, 12, start=10.0)
    assert decide(POLICY, 1, load, now=13.0).replicas == 1
    assert decide(POLICY, 1, samples(12, 12, 12, 12, 12, start=10.0), now=15.0).replicas == 3


def test_zero_delays_follow_the_latest_sample() -> None:
    eager = AutoscalingPolicy(max_replicas=4, scale_up_delay_seconds=0, scale_down_delay_seconds=0)
    assert decide(eager, 1, samples(0, 12), now=2.0).replicas == 3
    assert decide(eager, 3, samples(12, 0), now=2.0).replicas == 1


def test_no_flapping_around_a_boundary() -> None:
    """A load swinging across the 1/2 replica boundary every few seconds scales up once it has
    held above for the up delay, and never back down while it keeps returning within the down
    delay."""
    swing = ([6.0] * 6 + [3.0] * 4) * 8  # 80 s: 6 s above the target, 4 s below
    counts = run(POLICY, 1, swing)
    assert counts == [1] * 4 + [2] * 76  # up once 5 s above (t=5), and no way back down


def test_a_load_that_rises_and_falls_scales_up_then_down_once_each() -> None:
    load = [0.0] * 5 + [14.0] * 20 + [0.0] * 40
    counts = run(POLICY, 1, load)
    assert counts[:9] == [1] * 9
    assert counts[9] == 4  # 5 s of 14 in flight (4 wanted) at t=10
    assert counts[9:54] == [4] * 45  # the down delay counts from the last busy second (t=25)
    assert counts[54:] == [1] * 11
    assert sum(a != b for a, b in itertools.pairwise(counts)) == 2


def test_policy_validation() -> None:
    with pytest.raises(ValidationError, match="max_replicas \\(1\\) is below min_replicas"):
        AutoscalingPolicy(min_replicas=3, max_replicas=1)
    with pytest.raises(ValidationError):
        AutoscalingPolicy(max_replicas=4, target_inflight=0)
    with pytest.raises(ValidationError):
        AutoscalingPolicy(max_replicas=33)
    with pytest.raises(ValidationError, match="extra"):
        AutoscalingPolicy.model_validate({"max_replicas": 2, "target": 3})
    with pytest.raises(ValidationError, match="either 'replicas'"):
        ScaleRequest.model_validate({"replicas": 2, "autoscaling": {"max_replicas": 3}})
    with pytest.raises(ValidationError, match="either 'replicas'"):
        ScaleRequest.model_validate({})
    with pytest.raises(ValidationError, match="no replicas to autoscale"):
        DeploymentCreate(name="b", kind="batch", autoscaling=AutoscalingPolicy(max_replicas=2))


def test_the_starting_count_is_brought_into_the_bounds() -> None:
    policy = AutoscalingPolicy(min_replicas=2, max_replicas=3)
    assert DeploymentCreate(name="d", file="/x.py", autoscaling=policy).replicas == 2
    assert DeploymentCreate(name="d", file="/x.py", replicas=9, autoscaling=policy).replicas == 3
