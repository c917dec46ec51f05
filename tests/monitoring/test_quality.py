"""Data quality: each statistic against pandas on fixed data, and the service on both stores
(records and five-minute summaries give the same answer)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from modeldeck.api.app import create_app
from modeldeck.config import Settings
from modeldeck.errors import NotFound
from modeldeck.monitoring import quality
from modeldeck.monitoring.alerts.deliver import Smtp
from modeldeck.monitoring.alerts.rules import AlertRuleSpec
from modeldeck.monitoring.alerts.service import AlertService
from modeldeck.monitoring.analysis import AnalysisService
from modeldeck.monitoring.config import MonitoringConfig
from modeldeck.monitoring.drift.plan import plan_column, summarise
from modeldeck.monitoring.quality_service import reference_profile
from modeldeck.records.model_metrics import ModelMetrics, PredictionRecord
from modeldeck.registry import Registry
from modeldeck.simulate import FeatureDrift, Generator
from modeldeck.store import Store
from tests.conftest import Registered
from tests.fixtures import add_deployment

T0 = 1_700_000_400_000 // 300_000 * 300_000  # on a five-minute boundary
MINUTE = 60_000

REFERENCE = pd.DataFrame(
    {
        "x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        "colour": ["red", "blue", "red", "green", "blue", "red"],
        "size": [10.0, 20.0, 10.0, 30.0, 20.0, 10.0],
    }
)
CURRENT = pd.DataFrame(
    {
        "x": [0.5, 2.0, None, 7.0, 3.0, np.nan, 9.0, 1.0],
        "colour": ["red", "pink", None, "pink", "blue", "black", "red", None],
        "size": [20.0] * 8,
    }
)


def _quality(column: str, current: pd.Series, reference: pd.Series) -> dict[str, Any]:
    kind = "numeric" if pd.api.types.is_float_dtype(reference) else "categorical"
    plan = plan_column(reference, kind)
    summary = summarise(current, plan)
    return quality.column_quality(column, reference_profile(reference, plan), summary, len(current))


@pytest.mark.parametrize("column", ["x", "colour", "size"])
def test_missing_share_is_pandas_isna_mean(column: str) -> None:
    found = _quality(column, CURRENT[column], REFERENCE[column])
    assert found["missing_share"] == pytest.approx(CURRENT[column].isna().mean())
    assert found["count"] == CURRENT[column].notna().sum()


def test_out_of_range_share_is_share_outside_reference_min_max() -> None:
    found = _quality("x", CURRENT["x"], REFERENCE["x"])
    ref = REFERENCE["x"]
    outside = (CURRENT["x"] < ref.min()) | (CURRENT["x"] > ref.max())
    assert found["out_of_range"] == outside.sum() == 3  # 0.5, 7, 9
    assert found["out_of_range_share"] == pytest.approx(outside.mean())
    assert found["problems"] == ["missing", "out_of_range"]


def test_new_categories_are_the_set_difference_with_the_reference() -> None:
    found = _quality("colour", CURRENT["colour"], REFERENCE["colour"])
    present = CURRENT["colour"].dropna()
    unseen = present[~present.isin(set(REFERENCE["colour"]))]
    assert found["new_categories"] == len(unseen)
    assert found["new_category_share"] == pytest.approx(len(unseen) / len(CURRENT))
    expected = unseen.value_counts()
    listed = {c["value"]: c["count"] for c in found["top_new_categories"]}
    assert listed == expected.to_dict() == {"pink": 2, "black": 1}
    assert found["top_new_categories"][0]["value"] == "pink"  # the most frequent first
    assert found["distinct"] == present.nunique()


def test_constant_column_where_the_reference_varies() -> None:
    size = _quality("size", CURRENT["size"], REFERENCE["size"])
    assert CURRENT["size"].nunique() == 1 < REFERENCE["size"].nunique()
    assert size["constant"] is True and "constant" in size["problems"]
    assert _quality("x", CURRENT["x"], REFERENCE["x"])["constant"] is False
    # Constant in the reference too: nothing changed.
    assert _quality("size", CURRENT["size"], CURRENT["size"])["constant"] is False


def test_type_violations_count_values_of_another_type() -> None:
    current = pd.Series([1.0, "abc", "2.5", [1, 2], None], dtype=object)
    found = _quality("x", current, REFERENCE["x"])
    as_numbers = pd.to_numeric(
        current.map(lambda v: v if isinstance(v, str | float) else None), errors="coerce"
    )
    expected = int((as_numbers.isna() & current.notna()).sum())
    assert found["type_violations"] == expected == 2  # "abc" and the list; "2.5" is a number
    assert found["missing"] == 1


def test_window_schema_and_worst_shares() -> None:
    from modeldeck.monitoring.drift.plan import DriftPlan, drift_part

    plans = {
        c: plan_column(REFERENCE[c], k) for c, k in [("x", "numeric"), ("colour", "categorical")]
    }
    records = [{"input": {"x": 1.0, "colour": "red", "extra": 1}}, {"input": {"x": None}}]
    part = drift_part(records, MonitoringConfig(), DriftPlan(plans, None, ""))
    profiles = {c: reference_profile(REFERENCE[c], p) for c, p in plans.items()}
    found = quality.window_quality(part, profiles, reference_columns=["x", "colour", "size"])
    assert found["schema"] == {"unexpected_columns": ["extra"], "absent_columns": []}
    by_name = {c["column"]: c for c in found["columns"]}
    assert by_name["x"]["missing_share"] == 0.5
    assert by_name["colour"]["missing_share"] == 0.5  # the field is absent from one record
    assert found["missing_share"] == 0.5


# -- the service, on both stores ----------------------------------------------------------------


@pytest.fixture
def service(store_url: str, tmp_path: Any) -> Iterator[tuple[AnalysisService, ModelMetrics]]:
    store = Store(store_url)
    store.migrate()
    add_deployment(store, "dep-1", "clf", source="file")
    registry = Registry(f"sqlite:///{tmp_path / 'unused-mlflow.db'}")
    yield AnalysisService(store, registry), ModelMetrics(store)
    store.close()


def _record(metrics: ModelMetrics, n: int, *, missing_every: int = 4) -> None:
    """``n`` predictions over 30 minutes; every ``missing_every``-th lacks ``x``; a third of
    them have an unseen colour; ``x`` goes past the reference's max after 15 minutes."""
    records = []
    for i in range(n):
        ts = T0 + i * (30 * MINUTE) // n
        features: dict[str, Any] = {"colour": ["red", "blue", "purple"][i % 3], "size": 20.0}
        if i % missing_every:
            features["x"] = float(1 + i % 5) + (10.0 if ts >= T0 + 15 * MINUTE else 0.0)
        records.append(
            PredictionRecord(
                uuid=f"00000000-0000-4000-8000-{i:012x}",
                deployment_id="dep-1",
                start_ms=ts,
                end_ms=ts,
                model_version="1",
                metrics={"input": features, "output": "a"},
            )
        )
    metrics.insert_predictions(records)


def test_quality_without_reference_says_so(service: tuple[AnalysisService, ModelMetrics]) -> None:
    analysis, metrics = service
    _record(metrics, 40)
    report = analysis.quality("clf", start_ms=T0, end_ms=T0 + 30 * MINUTE)
    assert report["reference"] is None and "no reference data" in report["note"]
    assert report["mode"] == "raw"
    x = {c["column"]: c for c in report["total"]["columns"]}["x"]
    assert x["missing_share"] == pytest.approx(10 / 40)
    assert x["out_of_range_share"] is None
    assert {c["column"]: c for c in report["total"]["columns"]}["size"]["constant"] is True


def test_quality_from_records_and_from_summaries_agree(
    service: tuple[AnalysisService, ModelMetrics],
) -> None:
    analysis, metrics = service
    _record(metrics, 1500)
    analysis.set_reference("clf", REFERENCE, source="test")
    analysis.set_config("clf", MonitoringConfig(max_rows=1000))
    kwargs: dict[str, Any] = {"start_ms": T0, "end_ms": T0 + 30 * MINUTE, "step_ms": 10 * MINUTE}
    binned = analysis.quality("clf", **kwargs)
    analysis.set_config("clf", MonitoringConfig(max_rows=50_000))
    raw = analysis.quality("clf", **kwargs)
    assert (binned["mode"], raw["mode"]) == ("binned", "raw")
    assert binned["windows"] == raw["windows"]
    assert binned["total"] == raw["total"]
    asked = analysis.quality("clf", **kwargs, binned=True)  # what the gauges ask, any size
    assert asked["mode"] == "binned" and asked["total"] == raw["total"]
    total = {c["column"]: c for c in raw["total"]["columns"]}
    assert total["x"]["missing_share"] == pytest.approx(375 / 1500)
    assert total["colour"]["new_category_share"] == pytest.approx(1 / 3)
    assert total["colour"]["top_new_categories"] == [{"value": "purple", "count": 500}]
    assert total["size"]["constant"] is True
    assert raw["total"]["missing_share"] == pytest.approx(0.25)
    # x leaves the reference's range in the second half only.
    shares = [
        {c["column"]: c for c in w["columns"]}["x"]["out_of_range_share"] for w in raw["windows"]
    ]
    assert shares[0] == 0 and shares[2] == pytest.approx(0.75)
    assert [w["predictions"] for w in raw["windows"]] == [500, 500, 500]


# -- through HTTP ---------------------------------------------------------------------------------


@pytest.fixture
def api(store_url: str, mlflow_registry: Registered, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path,
        store_url=store_url,
        mlflow_tracking_uri=mlflow_registry.tracking_uri,
        api_key="mdk_quality",
        summary_interval_seconds=0,  # summaries are built by the report itself
    )
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = "Bearer mdk_quality"
        yield client


def test_a_window_past_max_rows_through_http(api: TestClient) -> None:
    """Default settings (``max_rows`` 50,000): 50,001 predictions are answered from five-minute
    summaries, with the numbers the records give."""
    store = api.app.state.platform.store  # type: ignore[attr-defined]
    add_deployment(
        store, "dep-q", "quality", source="file", desired_state="stopped", status="stopped"
    )
    n = MonitoringConfig().max_rows + 1
    metrics = ModelMetrics(store)
    batch = []
    for i in range(n):
        features: dict[str, Any] = {"colour": ["red", "blue", "purple"][i % 3], "size": 20.0}
        if i % 4:
            features["x"] = float(1 + i % 5)
        ts = T0 + i * 20  # 50,001 predictions over about 17 minutes
        batch.append(
            PredictionRecord(
                uuid=f"00000000-0000-4000-8000-{i:012x}",
                deployment_id="dep-q",
                start_ms=ts,
                end_ms=ts,
                model_version="1",
                metrics={"input": features},
            )
        )
    metrics.insert_predictions(batch)
    csv = REFERENCE.to_csv(index=False).encode()
    put = api.put(
        "/api/v1/deployments/quality/reference",
        params={"filename": "reference.csv"},
        content=csv,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert put.status_code == 200, put.text
    params = {"start": T0, "end": T0 + 20 * MINUTE, "step": 600}
    answer = api.get("/api/v1/deployments/quality/quality", params=params)
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["mode"] == "binned"
    assert report["total"]["predictions"] == n
    total = {c["column"]: c for c in report["total"]["columns"]}
    assert total["x"]["missing"] == sum(1 for i in range(n) if i % 4 == 0)
    assert total["x"]["out_of_range"] == 0
    assert total["colour"]["new_categories"] == sum(1 for i in range(n) if i % 3 == 2)
    assert total["size"]["constant"] is True
    assert [w["start"] for w in report["windows"]] == [T0, T0 + 10 * MINUTE]
    assert sum(w["predictions"] for w in report["windows"]) == n
    assert "missing" in total["x"]["problems"]


def test_alert_rules_watch_quality_metrics(service: tuple[AnalysisService, ModelMetrics]) -> None:
    analysis, metrics = service
    _record(metrics, 40)
    analysis.set_reference("clf", REFERENCE, source="test")
    alerts = AlertService(analysis.store, analysis, cast(Any, None), smtp=Smtp())
    now = T0 + 30 * MINUTE

    def measure(metric: str) -> tuple[float | None, int]:
        spec = AlertRuleSpec(
            name="q", deployment="clf", metric=metric, comparison="gt", threshold=0.1,
            window_seconds=1800,
        )  # fmt: skip
        return alerts.measure(spec, now)

    assert measure("quality.missing_share.x") == (pytest.approx(10 / 40), 40)
    assert measure("quality.missing_share") == (pytest.approx(10 / 40), 40)  # the worst column
    assert measure("quality.new_category_share.colour")[0] == pytest.approx(13 / 40)
    assert measure("quality.out_of_range_share.x")[0] == pytest.approx(15 / 40)
    with pytest.raises(NotFound):
        measure("quality.missing_share.nope")
    created = alerts.create(
        AlertRuleSpec(
            name="missing-x", deployment="clf", metric="quality.missing_share.x",
            comparison="gt", threshold=0.1,
        )
    )  # fmt: skip
    assert created["metric"] == "quality.missing_share.x"


def test_the_simulators_missing_fault_moves_the_missing_share(
    service: tuple[AnalysisService, ModelMetrics],
) -> None:
    """``modeldeck simulate --drift x:missing=0.4 --drift-start 0.5``: the second half's
    missing share of x is the generated share, the first half's zero."""
    analysis, metrics = service
    analysis.set_reference("clf", REFERENCE, source="test")
    generator = Generator(
        REFERENCE, source="uniform", seed=2, total=600, drift_start=0.5,
        drifts=[FeatureDrift.parse("x:missing=0.4")],
    )  # fmt: skip
    samples = generator.take(0, 600)
    metrics.insert_predictions(
        [
            PredictionRecord(
                uuid=f"00000000-0000-4000-8000-{s.index:012x}",
                deployment_id="dep-1",
                start_ms=T0 + s.index * 1000,
                end_ms=T0 + s.index * 1000,
                model_version="1",
                metrics={"input": s.record},
            )
            for s in samples
        ]
    )
    report = analysis.quality("clf", start_ms=T0, end_ms=T0 + 600_000, step_ms=300_000)
    sent = generator.frame(0, 600)
    first, second = ({c["column"]: c for c in w["columns"]}["x"] for w in report["windows"])
    assert first["missing_share"] == 0 == sent.x[:300].isna().mean()
    assert second["missing_share"] == pytest.approx(sent.x[300:].isna().mean())
    assert 0.3 < second["missing_share"] < 0.5 and "missing" in second["problems"]


def test_without_reference_a_large_range_is_scanned_in_chunks_with_the_same_answer(
    service: tuple[AnalysisService, ModelMetrics],
) -> None:
    analysis, metrics = service
    _record(metrics, 1500)
    kwargs: dict[str, Any] = {"start_ms": T0, "end_ms": T0 + 30 * MINUTE, "step_ms": 10 * MINUTE}
    analysis.set_config("clf", MonitoringConfig(max_rows=1000))
    scanned = analysis.quality("clf", **kwargs)
    analysis.set_config("clf", MonitoringConfig(max_rows=50_000))
    raw = analysis.quality("clf", **kwargs)
    assert (scanned["mode"], raw["mode"]) == ("scan", "raw")
    assert scanned["windows"] == raw["windows"] and scanned["total"] == raw["total"]
    x = {c["column"]: c for c in scanned["total"]["columns"]}["x"]
    assert x["missing"] == 375 and x["out_of_range_share"] is None
