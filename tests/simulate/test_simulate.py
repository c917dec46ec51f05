"""``modeldeck.simulate`` without a platform: the generator on its own, and the sender and the
CLI against a small HTTP stand-in for the four routes they use."""

from __future__ import annotations

import json
import threading
import time
import uuid as uuidlib
from collections.abc import Iterator
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from modeldeck.cli.main import main
from modeldeck.client import Client
from modeldeck.demo.train import FEATURES, iris_frame
from modeldeck.errors import ValidationFailed
from modeldeck.simulate import (
    FeatureDrift,
    Generator,
    LabelSpace,
    Progress,
    Rule,
    parse_position,
    planned_requests,
    simulate,
)

KEY = "mdk_access_test"


@pytest.fixture(scope="module")
def iris() -> pd.DataFrame:
    X, y = iris_frame()
    return X.assign(target=y)


@pytest.fixture(scope="module")
def mixed() -> pd.DataFrame:
    """Numeric, integer and categorical features, and a numeric (regression) target."""
    rng = np.random.default_rng(0)
    n = 300
    return pd.DataFrame(
        {
            "height": rng.normal(170, 10, n),
            "age": rng.integers(18, 80, n),
            "colour": rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2]),
            "price": rng.normal(100, 20, n),
        }
    )


# -- generation -------------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_requests_and_labels(iris: pd.DataFrame) -> None:
    def make(seed: int) -> Generator:
        return Generator(
            iris,
            source="uniform",
            seed=seed,
            target="target",
            drifts=[FeatureDrift("sepal_width", shift=1.0)],
            drift_start=0.5,
            labels=Rule("petal_length > 2.45"),
            label_noise=0.1,
            flip_after=0.75,
            total=3000,
        )

    first = make(7).take(0, 3000)
    assert make(7).take(0, 3000) == first
    # Record i depends on the seed and i only, not on what was asked for before.
    assert make(7).take(2500, 2600) == first[2500:2600]
    other = make(8).take(0, 3000)
    assert [s.record for s in other] != [s.record for s in first]
    assert [s.label for s in other] != [s.label for s in first]
    assert [s.index for s in first] == list(range(3000))
    assert all(set(s.record) == set(FEATURES) for s in first)


def test_uniform_draws_within_the_reference_range(mixed: pd.DataFrame) -> None:
    generator = Generator(mixed, seed=1, target="price")
    assert generator.features == ["height", "age", "colour"]
    assert generator.kinds == {"height": "numeric", "age": "numeric", "colour": "categorical"}
    frame = generator.frame(0, 3000)
    assert "price" not in frame.columns and "label" not in frame.columns
    assert mixed.height.min() <= frame.height.min() and frame.height.max() <= mixed.height.max()
    assert all(isinstance(v, int) for v in frame.age)
    assert set(frame.age) == set(range(mixed.age.min(), mixed.age.max() + 1))
    # Uniform over the categories, whatever their shares in the reference.
    shares = frame.colour.value_counts(normalize=True)
    assert set(shares.index) == {"red", "green", "blue"}
    assert all(abs(s - 1 / 3) < 0.04 for s in shares)


def test_numeric_drift_moves_only_the_drifted_feature(iris: pd.DataFrame) -> None:
    make = partial(Generator, iris, source="uniform", seed=3, target="target", total=2000)
    clean = make().frame(0, 2000)
    drift = FeatureDrift("petal_length", shift=2.0, scale=0.5)
    drifted = make(drifts=[drift], drift_start=0.5).frame(0, 2000)

    for column in ("sepal_length", "sepal_width", "petal_width"):
        assert drifted[column].tolist() == clean[column].tolist()
        assert drifted[column].mean() == clean[column].mean()
    assert drifted.petal_length[:1000].tolist() == clean.petal_length[:1000].tolist()
    center = iris.petal_length.mean()
    expected = center + (clean.petal_length[1000:] - center) * 0.5 + 2.0
    np.testing.assert_allclose(drifted.petal_length[1000:], expected)
    assert drifted.petal_length[1000:].mean() == pytest.approx(
        clean.petal_length[1000:].mean() + 2.0 - 0.5 * (clean.petal_length[1000:].mean() - center)
    )
    assert drifted.petal_length[1000:].std() == pytest.approx(clean.petal_length[1000:].std() * 0.5)


def test_missing_values_are_a_share_of_nulls_in_that_feature_only(
    iris: pd.DataFrame, mixed: pd.DataFrame
) -> None:
    """``COLUMN:missing=SHARE``: from drift_start on, about SHARE of the column's values are
    sent as null; every other value, and every other column, is what it was."""
    make = partial(Generator, iris, source="uniform", seed=3, target="target", total=4000)
    clean = make().frame(0, 4000)
    spec = FeatureDrift.parse("sepal_width:missing=0.3")
    faulty = make(drifts=[spec], drift_start=0.5).frame(0, 4000)
    assert faulty.sepal_width[:2000].isna().sum() == 0
    assert faulty.sepal_width[2000:].isna().mean() == pytest.approx(0.3, abs=0.03)
    kept = faulty.sepal_width.notna()
    assert faulty.sepal_width[kept].tolist() == clean.sepal_width[kept].tolist()
    for column in ("sepal_length", "petal_length", "petal_width"):
        assert faulty[column].tolist() == clean[column].tolist()
    records = make(drifts=[spec], drift_start=0.5).take(2000, 2100)
    assert any(r.record["sepal_width"] is None for r in records)  # JSON null, not NaN
    # Categorical columns too, with or without re-weighting.
    make = partial(Generator, mixed, source="sample", seed=5, target="price", total=2000)
    colours = make(drifts=[FeatureDrift("colour", missing=0.5)]).frame(0, 2000).colour
    assert colours.isna().mean() == pytest.approx(0.5, abs=0.05)
    assert colours.dropna().tolist() == make().frame(0, 2000).colour[colours.notna()].tolist()


def test_category_reweighting_moves_only_that_feature(mixed: pd.DataFrame) -> None:
    make = partial(Generator, mixed, source="sample", seed=5, target="price", total=4000)
    clean = make().frame(0, 4000)
    drift = FeatureDrift.parse("colour:weights=red=0,blue=4,purple=1")
    drifted = make(drifts=[drift], drift_start=1000).frame(0, 4000)

    for column in ("height", "age"):
        assert drifted[column].tolist() == clean[column].tolist()
    assert drifted.colour[:1000].tolist() == clean.colour[:1000].tolist()
    after = drifted.colour[1000:].value_counts(normalize=True)
    # Shares of the reference (0.5 red, 0.3 green, 0.2 blue) times the weights; "purple" is
    # new and counts as an average category (1/3) times its weight.
    raw = {
        "green": mixed.colour.eq("green").mean(),
        "blue": 4 * mixed.colour.eq("blue").mean(),
        "purple": 1 / 3,
    }
    total = sum(raw.values())
    assert "red" not in after.index
    for category in ("green", "blue", "purple"):
        assert after[category] == pytest.approx(raw[category] / total, abs=0.03)


def test_sampled_rows_keep_their_own_labels(iris: pd.DataFrame) -> None:
    generator = Generator(iris, source="sample", seed=2, target="target", labels="target")
    rows = {(*(r[f] for f in FEATURES), r["target"]) for r in iris.to_dict("records")}
    samples = generator.take(0, 500)
    assert all((*(s.record[f] for f in FEATURES), s.label) in rows for s in samples)
    assert {s.label for s in samples} == {0, 1, 2}
    assert all(type(s.label) is int for s in samples)


def test_cycle_takes_the_rows_in_order(mixed: pd.DataFrame) -> None:
    generator = Generator(mixed, source="cycle", seed=0, target="price", labels="target")
    samples = generator.take(0, 2 * len(mixed) + 5)
    for s in samples:
        row = mixed.iloc[s.index % len(mixed)]
        assert s.record == {"height": row.height, "age": row.age, "colour": row.colour}
        assert s.label == row.price


def test_rule_labels(iris: pd.DataFrame) -> None:
    rule = Rule("0 if petal_length < 2.45 else (1 if petal_width < 1.75 else 2)")
    generator = Generator(iris, source="sample", seed=4, target="target", labels=rule)
    samples = generator.take(0, 1000)
    for s in samples:
        r = s.record
        assert s.label == (0 if r["petal_length"] < 2.45 else 1 if r["petal_width"] < 1.75 else 2)
    # The rule matches the real labels of most of Iris.
    truth = Generator(iris, source="sample", seed=4, target="target", labels="target").take(0, 1000)
    agree = sum(a.label == b.label for a, b in zip(samples, truth, strict=True))
    assert agree > 900
    assert (
        Rule("petal_length > 2.45 and not sepal_width >= 3").evaluate(
            {"petal_length": 3.0, "sepal_width": 2.5}
        )
        == 1
    )
    assert Rule("colour in ('red', 'blue')").evaluate({"colour": "red"}) == 1
    assert Rule("round(max(a, b) * 2 - abs(-1), 1)").evaluate({"a": 1.5, "b": 0.25}) == 2.0


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('true')",
        "petal_length.__class__",
        "(lambda: 1)()",
        "[x for x in (1, 2)]",
        "open('/etc/passwd')",
        "petal_length[0]",
        "getattr(petal_length, 'real')",
        "round(petal_length, ndigits=1)",
        "petal_length >",
    ],
)
def test_rules_refuse_anything_but_expressions_over_features(expression: str) -> None:
    with pytest.raises(ValidationFailed, match="rule"):
        Rule(expression)


def test_rule_errors_name_the_problem(iris: pd.DataFrame) -> None:
    with pytest.raises(ValidationFailed, match="names colour, not a feature"):
        Generator(iris, target="target", labels=Rule("colour == 'red'"))
    with pytest.raises(ValidationFailed, match="failed on"):
        Rule("'a' * 1000000000").evaluate({})
    with pytest.raises(ValidationFailed, match="ZeroDivisionError"):
        Rule("x / 0").evaluate({"x": 1})


def test_flips_move_each_label_to_the_next_class(iris: pd.DataFrame) -> None:
    def labels(**options: Any) -> list[Any]:
        generator = Generator(
            iris, source="sample", seed=9, target="target", labels="target", **options
        )
        return [s.label for s in generator.take(0, 2000)]

    clean = labels()
    flipped = labels(flip_after=0.5, total=2000)
    assert flipped[:1000] == clean[:1000]
    assert flipped[1000:] == [(c + 1) % 3 for c in clean[1000:]]
    assert labels(flip_after=1500) == clean[:1500] + [(c + 1) % 3 for c in clean[1500:]]


def test_label_noise_replaces_a_share_of_labels_by_other_classes(iris: pd.DataFrame) -> None:
    def labels(noise: float) -> list[Any]:
        generator = Generator(
            iris, source="sample", seed=1, target="target", labels="target", label_noise=noise
        )
        return [s.label for s in generator.take(0, 5000)]

    clean, noisy = labels(0.0), labels(0.2)
    changed = [(c, n) for c, n in zip(clean, noisy, strict=True) if c != n]
    assert len(changed) / 5000 == pytest.approx(0.2, abs=0.02)
    assert all(n in (0, 1, 2) for _, n in changed)
    # Each other class is as likely as the next.
    moved_up = sum((n - c) % 3 == 1 for c, n in changed) / len(changed)
    assert moved_up == pytest.approx(0.5, abs=0.05)


def test_regression_labels_get_gaussian_noise_and_mirror_when_flipped(
    mixed: pd.DataFrame,
) -> None:
    space = LabelSpace.infer(mixed.price.tolist())
    assert space.task == "regression"
    assert space.mean == pytest.approx(mixed.price.mean())
    make = partial(Generator, mixed, source="sample", seed=2, target="price", labels="target")
    clean = [s.label for s in make().take(0, 4000)]
    noisy = [s.label for s in make(label_noise=0.5).take(0, 4000)]
    difference = np.array(noisy) - np.array(clean)
    assert difference.std() == pytest.approx(0.5 * space.std, rel=0.1)
    assert abs(difference.mean()) < 0.1 * space.std
    flipped = [s.label for s in make(flip_after=0).take(0, 100)]
    np.testing.assert_allclose(flipped, [2 * space.mean - c for c in clean[:100]])


def test_label_space_inference() -> None:
    assert LabelSpace.infer([2, 0, 1, 1]).classes == (0, 1, 2)
    assert LabelSpace.infer(["b", "a", None]).classes == ("a", "b")
    assert LabelSpace.infer([1.0, 0.0]).task == "classification"
    assert LabelSpace.infer([0.5, 1.25]).task == "regression"
    assert LabelSpace.infer(list(range(60))).task == "regression"
    assert LabelSpace("classification", classes=("a", "b", "c")).flip("c") == "a"
    assert LabelSpace("classification", classes=("a", "b")).flip("z") == "z"


def test_drift_and_position_parsing() -> None:
    assert FeatureDrift.parse("petal_length:shift=2") == FeatureDrift("petal_length", shift=2.0)
    assert FeatureDrift.parse("age: scale=1.5, shift=-3") == FeatureDrift(
        "age", shift=-3.0, scale=1.5
    )
    assert FeatureDrift.parse("colour:weights=red=3,blue=1") == FeatureDrift(
        "colour", weights={"red": 3.0, "blue": 1.0}
    )
    assert FeatureDrift.parse("age:missing=0.25,shift=1") == FeatureDrift(
        "age", shift=1.0, missing=0.25
    )
    for bad in ("x:missing=1.5", "x:missing=-0.1", "x:missing=", "x:missing=nan"):
        with pytest.raises(ValidationFailed):
            FeatureDrift.parse(bad)
    for bad in ("petal_length", "petal_length:", "x:shift=a", "x:tilt=2", "x:weights=red", ":s=1"):
        with pytest.raises(ValidationFailed):
            FeatureDrift.parse(bad)
    assert parse_position("500") == 500
    assert parse_position("0.5") == 0.5
    assert parse_position("25%") == 0.25
    with pytest.raises(ValidationFailed):
        parse_position("half")
    assert planned_requests(100, None, None) == 100
    assert planned_requests(None, 10.0, 2.5) == 25
    assert planned_requests(100, 10.0, 2.5) == 25
    assert planned_requests(None, 10.0, None) is None


def test_bad_generator_options_are_refused(iris: pd.DataFrame, mixed: pd.DataFrame) -> None:
    with pytest.raises(ValidationFailed, match="needs a known number of requests"):
        drift = FeatureDrift("sepal_width", shift=1)
        Generator(iris, target="target", drifts=[drift], drift_start=0.5)
    with pytest.raises(ValidationFailed, match="neither a request index"):
        Generator(iris, target="target", labels="target", source="sample", flip_after=1.5)
    with pytest.raises(ValidationFailed, match="uniform records"):
        Generator(iris, target="target", labels="target")
    with pytest.raises(ValidationFailed, match="not a feature"):
        Generator(iris, target="target", drifts=[FeatureDrift("target", shift=1)])
    with pytest.raises(ValidationFailed, match="cannot re-weight numeric"):
        Generator(mixed, drifts=[FeatureDrift("age", weights={"1": 2})])
    with pytest.raises(ValidationFailed, match="cannot shift or scale categorical"):
        Generator(mixed, drifts=[FeatureDrift("colour", shift=1)])
    with pytest.raises(ValidationFailed, match="need labels"):
        Generator(iris, target="target", label_noise=0.1)


# -- sending, against a stand-in platform -----------------------------------------------------


class FakePlatform:
    """The routes ``simulate`` uses: deployment, reference sample, predict, delayed batch."""

    def __init__(self, reference: pd.DataFrame, *, fail_every: int = 0, auth: bool = True) -> None:
        self.reference = reference
        self.fail_every = fail_every
        self.auth = auth
        self.lock = threading.Lock()
        self.calls = 0
        self.predictions: dict[str, tuple[dict[str, Any], float]] = {}
        self.labels: dict[str, tuple[dict[str, Any], float]] = {}
        platform = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                url = urlparse(self.path)
                if url.path == "/api/v1/deployments/fake":
                    self._answer(200, platform.info())
                elif url.path == "/api/v1/deployments/fake/reference":
                    self._answer(200, platform.reference_summary(parse_qs(url.query)))
                else:
                    self._answer(404, {"error": {"code": "not_found", "message": self.path}})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/deployments/fake/predict":
                    self._answer(*platform.predict(body, self.headers.get("Authorization")))
                elif self.path == "/api/v1/deployments/fake/metrics/delayed/batch":
                    self._answer(200, platform.delayed(body))
                else:
                    self._answer(404, {"error": {"code": "not_found", "message": self.path}})

            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def info(self) -> dict[str, Any]:
        return {
            "id": "d-fake",
            "name": "fake",
            "crn": "crn:fake",
            "model": "",
            "version": "1",
            "version_spec": "1",
            "model_uri": "",
            "runtime": "local",
            "status": "deployed",
            "status_message": "",
            "desired_state": "running",
            "replicas": 1,
            "ready_replicas": 1,
            "replica_states": [],
            "cpu": None,
            "memory_mb": None,
            "environment": {},
            "auth_enabled": self.auth,
            "access_key_prefix": None,
            "endpoint_url": f"{self.url}/deployments/fake/predict",
            "kind": "endpoint",
            "source": "file",
            "file_path": "/fake.py",
            "function_name": "predict",
            "track_metrics": True,
            "signature": None,
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
        }

    def reference_summary(self, query: dict[str, list[str]]) -> dict[str, Any]:
        frame = self.reference
        rows = int(query["rows"][0])
        assert query["sample"] == ["true"]
        picked = frame.sample(n=min(rows, len(frame)), random_state=int(query["seed"][0]))
        return {
            "source": "upload reference.csv",
            "rows": len(frame),
            "columns": [
                {"name": c, "kind": "numeric" if c != "colour" else "categorical"}
                for c in frame.columns
            ],
            "target_column": "target",
            "prediction_column": None,
            "sample": picked.to_dict("records"),
        }

    def predict(self, body: dict[str, Any], authorization: str | None) -> tuple[int, Any]:
        if self.auth and authorization != f"Bearer {KEY}":
            return 401, {"error": {"code": "unauthorized", "message": "missing key"}}
        with self.lock:
            self.calls += 1
            if self.fail_every and self.calls % self.fail_every == 0:
                return 503, {"error": {"code": "unavailable", "message": "no replica ready"}}
            uuid = str(uuidlib.uuid4())
            self.predictions[uuid] = (body["dataframe_records"][0], time.monotonic())
        return 200, {"prediction": [0], "uuid": uuid}

    def delayed(self, body: dict[str, Any]) -> dict[str, Any]:
        now = time.monotonic()
        with self.lock:
            for item in body["items"]:
                assert item["prediction_uuid"] in self.predictions
                self.labels[item["prediction_uuid"]] = (item["metrics"], now)
        return {"count": len(body["items"])}


@pytest.fixture
def fake(iris: pd.DataFrame) -> Iterator[FakePlatform]:
    platform = FakePlatform(iris)
    yield platform
    platform.close()


def test_exact_counts_and_labels_after_the_delay(fake: FakePlatform, iris: pd.DataFrame) -> None:
    seen: list[Progress] = []
    with Client(fake.url, "api-key") as client:
        result = simulate(
            client,
            "fake",
            requests=150,
            concurrency=4,
            seed=11,
            source="reference",
            labels="reference",
            label_delay=0.5,
            access_key=KEY,
            on_progress=seen.append,
        )
    assert (result.sent, result.ok, result.failed, result.failures) == (150, 150, 0, {})
    assert result.labels_sent == 150 and result.labels_failed == 0
    assert len(fake.predictions) == 150 and len(fake.labels) == 150
    for p in result.predictions:
        assert p.uuid is not None and p.status == 200 and p.latency_ms is not None
        record, answered = fake.predictions[p.uuid]
        assert record == p.record
        metrics, received = fake.labels[p.uuid]
        assert metrics == {"actual_result": p.label}
        assert received - answered >= 0.5
        assert p.label_sent_at is not None and p.answered_at is not None
        assert p.label_sent_at - p.answered_at >= 0.5
    assert [p.index for p in result.predictions] == list(range(150))
    assert set(result.latency_ms) == {"p50", "p95", "p99"}
    p50, p99 = result.latency_ms["p50"], result.latency_ms["p99"]
    assert p50 is not None and p99 is not None and 0 < p50 <= p99
    assert result.rps > 0 and result.seed == 11 and result.source == "reference"
    assert seen[-1].phase == "done" and seen[-1].labels_sent == 150
    assert any(p.phase == "labels" and p.labels_pending for p in seen)

    # What was sent is what the generator makes for that seed (from the same reference sample).
    sample = iris.sample(n=len(iris), random_state=11).reset_index(drop=True)
    again = Generator(sample, source="sample", seed=11, target="target", labels="target")
    assert [(p.record, p.label) for p in result.predictions] == [
        (s.record, s.label) for s in again.take(0, 150)
    ]
    as_dict = result.to_dict()
    assert "predictions" not in as_dict and as_dict["ok"] == 150
    assert len(result.to_dict(predictions=True)["predictions"]) == 150


def test_failures_are_counted_by_status_and_get_no_labels(iris: pd.DataFrame) -> None:
    fake = FakePlatform(iris, fail_every=10)
    try:
        with Client(fake.url) as client:
            result = simulate(
                client, "fake", requests=100, seed=1, labels="rule:petal_length > 2.45",
                access_key=KEY,
            )  # fmt: skip
    finally:
        fake.close()
    assert (result.sent, result.ok, result.failed) == (100, 90, 10)
    assert result.failures == {"503": 10}
    assert result.errors == ["503: no replica ready"]
    assert result.labels_sent == 90 and len(fake.labels) == 90
    assert {m["actual_result"] for m, _ in fake.labels.values()} <= {0, 1}


def test_a_rate_spreads_the_requests_and_a_duration_ends_the_run(fake: FakePlatform) -> None:
    with Client(fake.url) as client:
        result = simulate(client, "fake", duration=1.0, rate=20, seed=2, access_key=KEY)
    assert result.sent == result.ok == 20
    # Request i leaves no earlier than i / rate seconds after the start.
    assert result.seconds >= 19 / 20
    assert result.labels_sent == 0


def test_refuses_to_run_without_what_it_needs(fake: FakePlatform) -> None:
    with Client(fake.url) as client:
        with pytest.raises(ValidationFailed, match="requires its access key"):
            simulate(client, "fake", requests=5)
        with pytest.raises(ValidationFailed, match="number of requests or a duration"):
            simulate(client, "fake", access_key=KEY)
        with pytest.raises(ValidationFailed, match="use the reference source"):
            simulate(client, "fake", requests=5, labels="reference", access_key=KEY)
        with pytest.raises(ValidationFailed, match="unknown labels"):
            simulate(client, "fake", requests=5, labels="oracle", access_key=KEY)
    assert fake.calls == 0


def test_the_cli(fake: FakePlatform, tmp_path: Any) -> None:
    runner = CliRunner()
    env = {"MODELDECK_URL": fake.url, "MODELDECK_ACCESS_KEY": KEY}
    args = ["simulate", "fake", "--requests", "40", "--seed", "3", "--source", "reference"]
    result = runner.invoke(
        main,
        [*args, "--labels", "reference", "--flip-after", "50%", "--drift", "petal_length:shift=2",
         "--drift-start", "0.5", "--label-delay", "0.2s", "--json"],
        env=env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert (summary["sent"], summary["ok"], summary["failed"]) == (40, 40, 0)
    assert summary["labels_sent"] == 40 and summary["label_delay"] == 0.2
    assert (summary["drift_start"], summary["flip_after"], summary["seed"]) == (20, 20, 3)

    result = runner.invoke(main, args, env=env)
    assert result.exit_code == 0, result.output
    assert "seed 3" in result.output and "repeat with --seed 3" in result.output
    assert "40" in result.output

    # --file implies the file source; its rows go out in order.
    path = tmp_path / "rows.csv"
    pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"], "y": [0, 1, 0]}).to_csv(path, index=False)
    before = len(fake.predictions)
    result = runner.invoke(
        main,
        ["simulate", "fake", "--requests", "6", "--concurrency", "1", "--file", str(path),
         "--labels", "file:y", "--json"],
        env=env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(fake.predictions) == before + 6
    last = sorted(fake.predictions.items(), key=lambda item: item[1][1])[-6:]
    assert [record for _, (record, _) in last] == [
        {"a": a, "b": b} for a, b in [(1, "x"), (2, "y"), (3, "z")] * 2
    ]
    assert [fake.labels[u][0]["actual_result"] for u, _ in last] == [0, 1, 0, 0, 1, 0]

    result = runner.invoke(main, ["simulate", "fake"], env=env)
    assert result.exit_code == 2 and "--requests N or --duration" in result.output
    result = runner.invoke(main, [*args, "--drift", "petal_length"], env=env)
    assert result.exit_code == 1 and "expected COLUMN:shift=X" in result.output
