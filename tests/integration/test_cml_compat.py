"""Code written for Cloudera ML, used the way Cloudera's documentation shows, against a real
platform on each store: the access key read from ``list_models`` and used with ``call_model``,
``read_metrics`` by model CRN after two deployments of one model, filtering by the build CRN
that ``create_model_build`` returned, records that carry exactly the CRNs the ``cmlapi``
objects show, registry deployments read back under ``prediction``.

One model is built and deployed twice per store (versions 1 and 2 of the registered Iris
model), once for the module; the tests read what that left.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import httpx
import pytest

import modeldeck.compat
from modeldeck import metrics as sdk
from tests.conftest import RunningPlatform

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # make test-slow (2 min)

PROJECT = "compat"
RECORD = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
TIMEOUT = 120.0


@dataclass
class Cloudera:
    cmlapi: ModuleType
    cdsw: ModuleType
    models: ModuleType  # cml.models_v1
    metrics: ModuleType  # cml.metrics_v1


@dataclass
class Lab:
    """What the module's script did: a model, two builds, two deployments, two calls."""

    api: Any
    model: Any
    key: str  # read back from list_models
    builds: list[Any]  # as create_model_build returned them
    deployments: list[Any]  # once deployed
    answers: list[dict[str, Any]]  # call_model's, one while each deployment was live
    start_ms: int
    end_ms: int


def wait_for(poll: Callable[[], Any], done: set[str]) -> Any:
    deadline = time.monotonic() + TIMEOUT
    while True:
        obj = poll()
        if obj.status in done:
            return obj
        assert time.monotonic() < deadline, f"still {obj.status!r} after {TIMEOUT} s: {obj}"
        time.sleep(0.25)


@pytest.fixture(scope="module")
def cloudera() -> Iterator[Cloudera]:
    """``cmlapi``, ``cdsw``, ``cml.models_v1`` and ``cml.metrics_v1`` under Cloudera's names."""
    names = ("cmlapi", "cmlapi.rest", "cdsw", "cml", "cml.models_v1", "cml.metrics_v1")
    sys.path.insert(0, modeldeck.compat.path())
    try:
        import cdsw
        import cml.metrics_v1
        import cml.models_v1
        import cmlapi

        assert cmlapi.__file__ and cmlapi.__file__.startswith(modeldeck.compat.path())
        yield Cloudera(cmlapi, cdsw, cml.models_v1, cml.metrics_v1)
    finally:
        sys.path.remove(modeldeck.compat.path())
        for name in names:
            sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def lab(platform: RunningPlatform, cloudera: Cloudera) -> Iterator[Lab]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MODELDECK_URL", platform.url)
        env.setenv("MODELDECK_API_KEY", platform.api_key)
        env.delenv("CDSW_DOMAIN", raising=False)
        sdk.configure()  # the metric functions follow MODELDECK_URL
        try:
            yield _run_the_script(cloudera)
        finally:
            sdk.configure()


def _run_the_script(c: Cloudera) -> Lab:
    api = c.cmlapi.default_client()
    model = api.create_model(
        c.cmlapi.CreateModelRequest(
            project_id=PROJECT, name="iris compat", registered_model_id="iris"
        ),
        PROJECT,
    )
    # as Cloudera scripts do: find the model, take its access key from there
    listed = api.list_models(PROJECT, search_filter=json.dumps({"name": "iris compat"}))
    key = listed.models[0].access_key
    start_ms = int(time.time() * 1000)
    builds, deployments, answers = [], [], []
    for version, call in (("1", c.models.call_model), ("2", c.cdsw.call_model)):
        build = api.create_model_build(
            c.cmlapi.CreateModelBuildRequest(registered_model_version_id=version),
            PROJECT,
            model.id,
        )
        builds.append(build)
        built = wait_for(
            lambda b=build: api.get_model_build(PROJECT, model.id, b.id), {"built", "build failed"}
        )
        assert built.status == "built", built.status_message
        created = api.create_model_deployment(
            c.cmlapi.CreateModelDeploymentRequest(replicas=1), PROJECT, model.id, build.id
        )
        deployed = wait_for(
            lambda b=build, d=created: api.get_model_deployment(PROJECT, model.id, b.id, d.id),
            {"deployed", "failed", "stopped"},
        )
        assert deployed.status == "deployed", deployed.status_message
        deployments.append(deployed)
        answer = call(key, RECORD)
        assert answer["success"] is True, answer
        answers.append(answer)
    end_ms = int(time.time() * 1000) + 1
    return Lab(api, model, key, builds, deployments, answers, start_ms, end_ms)


# -- 1. access keys ----------------------------------------------------------------------------


def test_the_access_key_read_from_list_models_calls_the_model(
    lab: Lab, platform: RunningPlatform, cloudera: Cloudera
) -> None:
    assert lab.key == lab.model.access_key and len(lab.key) == 40
    assert lab.api.get_model(PROJECT, lab.model.id).access_key == lab.key
    assert lab.answers[0]["response"]["prediction"] == [0]
    # a read-only API key sees no access key, here or in modeldeck's own API
    client = platform.client()
    reader = client.create_api_key("compat-reader", "read")["key"]
    read_only = cloudera.cmlapi.default_client(url=platform.url, cml_api_key=reader)
    assert read_only.list_models(PROJECT).models[0].access_key is None
    assert read_only.get_model(PROJECT, lab.model.id).access_key is None
    path = f"{platform.url}/api/v1/deployments/{lab.model.deployment_name}"
    as_admin = httpx.get(path, headers={"Authorization": f"Bearer {platform.api_key}"}).json()
    as_reader = httpx.get(path, headers={"Authorization": f"Bearer {reader}"}).json()
    assert (as_admin["access_key"], as_reader["access_key"]) == (lab.key, None)
    assert lab.key not in platform.logs()


# -- 3. CRNs -----------------------------------------------------------------------------------


def test_every_model_build_and_deployment_has_its_own_crn(lab: Lab, cloudera: Cloudera) -> None:
    twin = lab.api.create_model(
        {"name": "iris compat", "registered_model_id": "iris"}, "another-project"
    )
    crns = [
        lab.model.crn,
        twin.crn,
        *(b.crn for b in lab.builds),
        *(d.crn for d in lab.deployments),
    ]
    assert len(set(crns)) == len(crns), crns
    for build in lab.builds:  # stable: what create_model_build said, get_model_build says
        assert lab.api.get_model_build(PROJECT, lab.model.id, build.id).crn == build.crn
    # each answer names the deployment that was live
    assert [a["response"]["model_deployment_crn"] for a in lab.answers] == [
        d.crn for d in lab.deployments
    ]


# -- 2. read_metrics by model CRN; 3. records carry the cmlapi objects' CRNs --------------------


def test_read_metrics_by_model_crn_after_two_deployments(lab: Lab, cloudera: Cloudera) -> None:
    records = cloudera.metrics.read_metrics(
        start_timestamp_ms=lab.start_ms, end_timestamp_ms=lab.end_ms, model_crn=lab.model.crn
    )["metrics"]
    assert [r["predictionUuid"] for r in records] == [a["response"]["uuid"] for a in lab.answers]
    assert [(r["modelCrn"], r["modelBuildCrn"], r["modelDeploymentCrn"]) for r in records] == [
        (lab.model.crn, build.crn, deployment.crn)
        for build, deployment in zip(lab.builds, lab.deployments, strict=True)
    ]
    # 4. as Cloudera ML's generated function records a registry model: prediction (of the one
    # row sent), and the input
    for record, answer in zip(records, lab.answers, strict=True):
        assert [record["metrics"]["prediction"]] == answer["response"]["prediction"]
        assert record["metrics"]["input"] == RECORD
        assert "output" not in record["metrics"]


def test_filtering_by_the_build_crn_create_model_build_returned(
    lab: Lab, cloudera: Cloudera
) -> None:
    first, second = (a["response"]["uuid"] for a in lab.answers)

    def uuids(**query: Any) -> list[str]:
        found = cloudera.cdsw.read_metrics(
            start_timestamp_ms=query.pop("start", lab.start_ms),
            end_timestamp_ms=lab.end_ms,
            **query,
        )
        return [r["predictionUuid"] for r in found["metrics"] if r["predictionUuid"]]

    b1, b2 = (b.crn for b in lab.builds)
    d1, d2 = (d.crn for d in lab.deployments)
    assert uuids(model_build_crn=b1) == [first]
    assert uuids(model_build_crn=b2) == [second]
    assert uuids(model_deployment_crn=d2) == [second]
    assert uuids(model_crn=lab.model.crn, model_build_crn=b1, model_deployment_crn=d1) == [first]
    assert uuids(model_build_crn=b1, model_deployment_crn=d2) == []
    second_ms = next(
        r["endTimeStampMs"]
        for r in cloudera.metrics.read_metrics(model_deployment_crn=d2)["metrics"]
        if r["predictionUuid"] == second
    )
    assert uuids(model_crn=lab.model.crn, start=second_ms) == [second]


def test_aggregates_by_deployment_crn_and_modeldecks_own_shape(
    lab: Lab, platform: RunningPlatform, cloudera: Cloudera
) -> None:
    d2 = lab.deployments[1].crn
    cloudera.metrics.track_aggregate_metrics(
        {"accuracy": 1.0}, lab.start_ms, lab.end_ms, model_deployment_crn=d2
    )
    found = cloudera.metrics.read_metrics(model_deployment_crn=d2, end_timestamp_ms=lab.end_ms)
    [aggregate] = [r for r in found["metrics"] if not r["predictionUuid"]]
    assert (aggregate["modelDeploymentCrn"], aggregate["metrics"]) == (d2, {"accuracy": 1.0})
    # modeldeck's own API keeps its shape: output, input, and the class probabilities
    own = platform.client().read_metrics(lab.model.deployment_name, start_ms=lab.start_ms)
    uuid = lab.answers[0]["response"]["uuid"]
    [first] = [r for r in own["metrics"] if r["predictionUuid"] == uuid]
    assert first["metrics"]["output"] == 0 and first["metrics"]["input"] == RECORD
    assert "prediction" not in first["metrics"] and "probabilities" in first["metrics"]


def test_a_rotated_key_reads_back_and_calls_the_model(
    lab: Lab, platform: RunningPlatform, cloudera: Cloudera
) -> None:
    rotated = platform.client().rotate_access_key(lab.model.deployment_name)
    assert rotated != lab.key
    assert lab.api.list_models(PROJECT).models[0].access_key == rotated
    assert cloudera.models.call_model(rotated, RECORD)["success"] is True
    assert cloudera.models.call_model(lab.key, RECORD)["success"] is False
