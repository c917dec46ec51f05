"""A shadow copy's prediction is linked to the stable prediction it copies: ground truth for the
stable one labels the copy in the read-back and in realised performance, whichever of the label
and the link comes first, also when the copy ends in the next five-minute summary. Both stores."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from modeldeck.monitoring.analysis import AnalysisService
from modeldeck.records.model_metrics import ModelMetrics, PredictionRecord, ShadowLinks, Target
from modeldeck.registry import Registry
from modeldeck.store import Store
from modeldeck.store.schema import ShadowLinkRow
from tests.fixtures import add_deployment

T0 = 1_700_000_100_000  # on a five-minute boundary
BUCKET = 300_000
TARGET = Target("dep-1", "clf", "m", "1")


@pytest.fixture
def setup(
    store_url: str, tmp_path: Any
) -> Iterator[tuple[ModelMetrics, ShadowLinks, AnalysisService]]:
    store = Store(store_url)
    store.migrate()
    add_deployment(store, "dep-1", "clf", source="file")
    links = ShadowLinks(store)
    registry = Registry(f"sqlite:///{tmp_path / 'unused-mlflow.db'}")
    yield ModelMetrics(store, links), links, AnalysisService(store, registry)
    store.close()


def _uuid(i: int, salt: int) -> str:
    return f"{salt:08x}-0000-4000-8000-{i:012x}"


def _predictions(metrics: ModelMetrics, ends: list[int]) -> None:
    """Stable predictions (version 1, salt 1) and their shadow copies (version 2, salt 2), the
    copy ending 5 ms after its stable answer. Each says class "a"."""
    records = []
    for i, end in enumerate(ends):
        for version, salt, at in (("1", 1, end), ("2", 2, end + 5)):
            records.append(
                PredictionRecord(
                    uuid=_uuid(i, salt),
                    deployment_id="dep-1",
                    start_ms=at,
                    end_ms=at,
                    model_version=version,
                    metrics={"input": {"x": i}, "output": "a"},
                )
            )
    metrics.insert_predictions(records)


def _accuracy(analysis: AnalysisService, version: str) -> tuple[int, float | None]:
    window = analysis.performance("clf", start_ms=T0, end_ms=T0 + 2 * BUCKET, model_version=version)
    found = window["windows"][0]
    realised = found["realised"] or {}
    return found["labelled"], realised.get("accuracy")


def test_ground_truth_for_the_stable_prediction_labels_its_shadow_copy(
    setup: tuple[ModelMetrics, ShadowLinks, AnalysisService],
) -> None:
    metrics, links, analysis = setup
    # The last stable answer ends in the first bucket, its copy in the second.
    ends = [T0 + 1000 * i for i in range(4)] + [T0 + BUCKET - 2]
    _predictions(metrics, ends)
    assert _accuracy(analysis, "2") == (0, None)  # summaries built: nothing labelled yet

    # Labels before the links: the first three right ("a"), the fourth wrong.
    labels = ["a", "a", "a", "b"]
    metrics.track_delayed_many(
        TARGET, [(_uuid(i, 1), {"actual_result": label}) for i, label in enumerate(labels)]
    )
    for i in range(4):
        links.add("dep-1", _uuid(i, 1), _uuid(i, 2))
    assert links.flush() == 4
    assert _accuracy(analysis, "2") == (4, 0.75)
    assert _accuracy(analysis, "1") == (4, 0.75)

    # The link before the label, across the summaries' boundary.
    links.add("dep-1", _uuid(4, 1), _uuid(4, 2))
    links.flush()
    assert _accuracy(analysis, "2") == (4, 0.75)
    metrics.track_delayed(TARGET, _uuid(4, 1), {"actual_result": "a"})
    assert _accuracy(analysis, "2") == (5, 0.8)

    # Read back: the copy carries the stable prediction's ground truth, then its own.
    metrics.track_delayed(TARGET, _uuid(0, 2), {"note": "checked"})
    records = {
        r["predictionUuid"]: r["metrics"]
        for r in metrics.read(TARGET, start_ms=T0, model_version="2").metrics
    }
    assert records[_uuid(0, 2)] == {
        "input": {"x": 0},
        "output": "a",
        "actual_result": "a",
        "note": "checked",
    }
    assert records[_uuid(3, 2)]["actual_result"] == "b"


def test_links_of_unrecorded_copies_are_dropped_and_go_with_their_predictions(
    setup: tuple[ModelMetrics, ShadowLinks, AnalysisService],
) -> None:
    metrics, links, _ = setup
    _predictions(metrics, [T0, T0 + 1])
    links.add("dep-1", _uuid(0, 1), _uuid(0, 2))
    links.add("dep-1", _uuid(1, 1), _uuid(9, 2))  # a copy that was never recorded
    links.add("dep-2", _uuid(1, 1), _uuid(1, 2))  # not that deployment's prediction
    assert links.flush() == 1
    links.add("dep-1", _uuid(0, 1), _uuid(0, 2))  # twice: stored once
    assert links.flush() == 0
    assert _links(metrics.store) == 1
    assert metrics.prune(T0 + 100) == 4  # every prediction: the link goes with its copy
    assert _links(metrics.store) == 0


def _links(store: Store) -> int:
    with store.read() as session:
        return int(session.scalar(select(func.count()).select_from(ShadowLinkRow)) or 0)
