"""A deployment that follows ``models:/iris@champion`` on a real platform: moving the alias in
MLflow rolls the new version out under continuous load without a failed request, and a rollback
is not undone by the next poll.

The platform polls every second (``MODELDECK_ALIAS_POLL_SECONDS=1``); real replicas take about
10 s to load, so this runs on SQLite only (the poll's decisions run on both stores in
tests/deployments/test_follow_alias.py). The registry is shared by the session: ``champion`` is
put back on version 1 afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Registered, RunningPlatform, start_platform
from tests.integration.test_deployments import wait_for
from tests.integration.test_rollout import Load

pytestmark = pytest.mark.integration

NAME = "champ"
POLL_SECONDS = 1.0


@pytest.fixture(scope="module")
def platform(
    mlflow_registry: Registered, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPlatform]:
    data_dir = tmp_path_factory.mktemp("follow")
    running = start_platform(
        data_dir,
        f"sqlite:///{data_dir / 'modeldeck.db'}",
        mlflow_registry.tracking_uri,
        MODELDECK_ALIAS_POLL_SECONDS=str(POLL_SECONDS),
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.mark.slow  # make test-slow
def test_an_alias_move_rolls_out_under_load_and_a_rollback_holds(
    platform: RunningPlatform, champion: Any
) -> None:
    client = platform.client()
    created = client.deploy(NAME, "iris", alias="champion")
    assert (created["version_spec"], created["track_alias"]) == ("@champion", True)
    key = str(created["access_key"])
    client.wait(NAME, timeout=120)

    def serves(version: str) -> dict[str, Any] | None:
        d = client.deployment(NAME)
        done = d["version"] == version and d["rollout"] is None and d["status"] == "deployed"
        return d if done else None

    with Load(platform, key, name=NAME) as load:
        champion.set_registered_model_alias("iris", "champion", "2")
        # poll interval + a rollout (replicas load in about 10 s); a generous bound, not a speed
        d = wait_for(lambda: serves("2"), timeout=POLL_SECONDS + 120)
    assert load.failures == []
    assert load.versions[0] == "1" and load.versions[-1] == "2"
    first_v2 = load.versions.index("2")
    assert set(load.versions[first_v2:]) == {"2"}, "once v2 answers, v1 does not any more"
    assert (d["version_spec"], d["track_alias"], d["alias_held_version"]) == (
        "@champion",
        True,
        None,
    )
    assert d["model_uri"] == "models:/iris/2"

    # A rollback returns to v1 and holds v2: the polls that follow leave it on v1.
    with Load(platform, key, name=NAME) as load:
        client.rollback(NAME)
        d = wait_for(lambda: serves("1"), timeout=120)
        time.sleep(POLL_SECONDS * 3)  # several polls, while champion still points at v2
    assert load.failures == []
    assert load.versions[-1] == "1"
    d = client.deployment(NAME)
    assert (d["version"], d["rollout"], d["track_alias"], d["alias_held_version"]) == (
        "1",
        None,
        True,
        "2",
    )
    client.delete(NAME)
