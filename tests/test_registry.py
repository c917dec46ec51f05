from __future__ import annotations

import pytest

from modeldeck.errors import BadRequest, NotFound
from modeldeck.registry import Registry, parse_version_spec
from tests.conftest import Registered


@pytest.fixture(scope="module")
def registry(mlflow_registry: Registered) -> Registry:
    return Registry(mlflow_registry.tracking_uri)


def test_lists_models_with_aliases_and_latest(
    registry: Registry, mlflow_registry: Registered
) -> None:
    models = {m.name: m for m in registry.list_models()}
    iris = models["iris"]
    assert iris.latest_version == mlflow_registry.versions[-1]
    assert iris.aliases == {"champion": mlflow_registry.versions[0]}


def test_model_versions_carry_run_metrics_and_params(registry: Registry) -> None:
    model = registry.get_model("iris")
    assert [v.version for v in model.versions] == ["2", "1"]
    assert 0.5 < model.versions[0].run_metrics["accuracy"] <= 1.0
    assert model.versions[0].run_params["C"] == "10.0"
    assert model.versions[1].aliases == ["champion"]


def test_version_carries_its_signature(registry: Registry) -> None:
    version = registry.get_version("iris", "1")
    assert version.signature is not None
    names = [c["name"] for c in version.signature["inputs"]]
    assert names == ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.mark.parametrize(
    ("spec", "expected"), [("1", "1"), ("2", "2"), ("latest", "2"), (None, "2"), ("@champion", "1")]
)
def test_resolves_version_alias_and_latest(
    registry: Registry, spec: str | None, expected: str
) -> None:
    resolved = registry.resolve("iris", spec)
    assert resolved.version == expected
    assert resolved.uri == f"models:/iris/{expected}"


@pytest.mark.parametrize(
    ("name", "spec", "words"),
    [
        ("nope", "latest", "registered model 'nope' not found"),
        ("iris", "9", "has no version 9 (versions: 1, 2)"),
        ("iris", "@gone", "has no alias 'gone' (aliases: champion)"),
        ("it's", "latest", "not found"),
    ],
)
def test_unknown_names_versions_and_aliases_are_clear_404s(
    registry: Registry, name: str, spec: str, words: str
) -> None:
    with pytest.raises(NotFound) as info:
        registry.resolve(name, spec)
    assert words in info.value.message
    assert info.value.status_code == 404


def test_version_spec_parsing() -> None:
    assert parse_version_spec(3) == "3"
    assert parse_version_spec("007") == "7"
    assert parse_version_spec(alias="champion") == "@champion"
    assert parse_version_spec(" latest ") == "latest"
    with pytest.raises(BadRequest):
        parse_version_spec("v1")
    with pytest.raises(BadRequest):
        parse_version_spec("1", alias="x")
