"""Hostile and malformed input on every surface: a 4xx in the one error shape, and no trace.

Each case of ``CASES`` is sent to a real platform (one per store backend for the module) with a
real deployment of the ``iris`` model, a recorded prediction and an alert rule. Around each case
every table of the store is dumped (rows sorted) and the two dumps must be equal. Left out of the
dump: ``technical_rollups`` and ``replica_samples``, which count every model-endpoint request,
rejected ones included (technical monitoring's "failed requests"), and sample replicas' CPU and
memory in the background.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, MetaData, create_engine, select

from modeldeck.demo.train import FEATURES
from tests.conftest import (
    BACKENDS,
    Registered,
    RunningPlatform,
    platform_on,
)

pytestmark = pytest.mark.integration

DEPLOYMENT = "bad-inputs"
UNDUMPED = {"technical_rollups", "replica_samples"}
ROW = [5.1, 3.5, 1.4, 0.2]
YEAR_10000_MS = 253_402_300_800_000  # 10000-01-01T00:00:00Z


@dataclass
class Surface:
    platform: RunningPlatform
    engine: Engine
    access_key: str
    prediction_uuid: str
    first: dict[str, list[str]]

    def fill(self, text: str) -> str:
        return (
            text.replace("{dep}", DEPLOYMENT)
            .replace("{key}", self.access_key)
            .replace("{uuid}", self.prediction_uuid)
        )


@dataclass(frozen=True)
class Bad:
    """One hostile request. ``body`` is sent as is (bytes) or as JSON; ``status`` is exact,
    or ``None`` for "any 4xx" where two checks may each rightly refuse it first."""

    id: str
    method: str
    path: str
    status: int | None
    body: bytes | Any = None
    params: dict[str, Any] = field(default_factory=dict)
    auth: str = "api"  # "api": the control-plane key; "access": the deployment's; "": none
    content_type: str = "application/json"


def raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


PREDICT = "/deployments/{dep}/predict"
DEPLOYMENTS = "/api/v1/deployments"
SCALE = "/api/v1/deployments/{dep}/scale"
DELAYED = "/api/v1/deployments/{dep}/metrics/delayed"
AGGREGATE = "/api/v1/deployments/{dep}/metrics/aggregate"
PREDICTIONS = "/api/v1/deployments/{dep}/predictions"
READ = "/api/v1/deployments/{dep}/metrics/model"
TECHNICAL = "/api/v1/deployments/{dep}/metrics/technical"
RULES = "/api/v1/alerts/rules"
RULE = {
    "name": "r2",
    "deployment": DEPLOYMENT,
    "metric": "technical.requests",
    "comparison": "gt",
    "threshold": 1,
}
TEN_MB = b'{"inputs": "' + b"x" * (10 * 1024 * 1024) + b'"}'
DEEP = b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"

CASES = [
    # -- model endpoint: POST /deployments/{name}/predict ------------------------------------
    Bad("predict-invalid-json", "POST", PREDICT, 400, b'{"inputs": [[5.1, 3.5,', auth="access"),
    Bad("predict-empty-body", "POST", PREDICT, 400, b"", auth="access"),
    Bad("predict-whitespace-body", "POST", PREDICT, 400, b" \n ", auth="access"),
    Bad("predict-nan", "POST", PREDICT, 400, b'{"inputs": [[NaN, 3.5, 1.4, 0.2]]}', auth="access"),
    Bad(
        "predict-infinity",
        "POST",
        PREDICT,
        400,
        b'{"inputs": [[Infinity, 1, 1, 1]]}',
        auth="access",
    ),
    Bad(
        "predict-minus-infinity",
        "POST",
        PREDICT,
        400,
        b'{"inputs": [[-Infinity, 1, 1, 1]]}',
        auth="access",
    ),
    Bad("predict-1e400", "POST", PREDICT, 400, b'{"inputs": [[1e400, 1, 1, 1]]}', auth="access"),
    Bad(
        "predict-int-10e400",
        "POST",
        PREDICT,
        400,
        b'{"inputs": [[1' + b"0" * 400 + b", 1, 1, 1]]}",
        auth="access",
    ),
    Bad(
        "predict-wrong-type",
        "POST",
        PREDICT,
        422,
        {"inputs": [["a", "b", "c", "d"]]},
        auth="access",
    ),
    Bad("predict-wrong-width", "POST", PREDICT, 422, {"inputs": [[1.0, 2.0]]}, auth="access"),
    Bad("predict-body-not-object", "POST", PREDICT, None, [ROW], auth="access"),
    Bad("predict-unknown-form", "POST", PREDICT, None, {"rows": [ROW]}, auth="access"),
    Bad("predict-10mb", "POST", PREDICT, 413, TEN_MB, auth="access"),
    Bad("predict-deep-nesting", "POST", PREDICT, 400, DEEP, auth="access"),
    Bad(
        "predict-lone-surrogate",
        "POST",
        PREDICT,
        400,
        raw('{"inputs": [["\\ud800", 1, 1, 1]]}'),
        auth="access",
    ),
    Bad(
        "predict-invalid-utf8",
        "POST",
        PREDICT,
        400,
        b'{"inputs": [["\xff\xfe", 1, 1, 1]]}',
        auth="access",
    ),
    Bad(
        "predict-nul-column",
        "POST",
        PREDICT,
        422,
        {"dataframe_records": [{"sepal_length\u0000": 1.0}]},
        auth="access",
    ),
    Bad(
        "predict-rtl-emoji-column",
        "POST",
        PREDICT,
        422,
        {"dataframe_split": {"columns": ["\u202e🚀", "b", "c", "d"], "data": [ROW]}},
        auth="access",
    ),
    Bad("predict-no-key", "POST", PREDICT, 401, {"inputs": [ROW]}, auth=""),
    Bad(
        "predict-sql-in-name",
        "POST",
        "/deployments/x' OR '1'='1/predict",
        404,
        {"inputs": [ROW]},
        auth="access",
    ),
    # -- Cloudera ML's /model -----------------------------------------------------------------
    Bad(
        "cml-request-not-object",
        "POST",
        "/model",
        400,
        {"accessKey": "{key}", "request": "sepal_length=1"},
        auth="",
    ),
    Bad(
        "cml-nan",
        "POST",
        "/model",
        400,
        raw('{"accessKey": "{key}", "request": {"sepal_length": NaN}}'),
        auth="",
    ),
    Bad(
        "cml-wrong-type",
        "POST",
        "/model",
        422,
        {"accessKey": "{key}", "request": dict.fromkeys(FEATURES, "x")},
        auth="",
    ),
    # -- deployments: create, scale -----------------------------------------------------------
    Bad("create-invalid-json", "POST", DEPLOYMENTS, 400, b'{"name": "x", "model": '),
    Bad("create-empty-body", "POST", DEPLOYMENTS, 422, b""),
    Bad(
        "create-sql-name",
        "POST",
        DEPLOYMENTS,
        422,
        {"name": "x'; DROP TABLE deployments; --", "model": "iris"},
    ),
    Bad("create-rtl-name", "POST", DEPLOYMENTS, 422, {"name": "iris\u202egnp", "model": "iris"}),
    Bad("create-emoji-name", "POST", DEPLOYMENTS, 422, {"name": "🚀", "model": "iris"}),
    Bad("create-nul-name", "POST", DEPLOYMENTS, 422, {"name": "a\u0000b", "model": "iris"}),
    Bad(
        "create-lone-surrogate",
        "POST",
        DEPLOYMENTS,
        400,
        raw('{"name": "a\\udc00", "model": "iris"}'),
    ),
    Bad("create-duplicate-name", "POST", DEPLOYMENTS, 409, {"name": DEPLOYMENT, "model": "iris"}),
    Bad(
        "create-negative-replicas",
        "POST",
        DEPLOYMENTS,
        422,
        {"name": "neg", "model": "iris", "replicas": -1},
    ),
    Bad(
        "create-huge-replicas",
        "POST",
        DEPLOYMENTS,
        None,
        raw('{"name": "huge", "model": "iris", "replicas": 1' + "0" * 400 + "}"),
    ),
    Bad(
        "create-replicas-wrong-type",
        "POST",
        DEPLOYMENTS,
        422,
        {"name": "two", "model": "iris", "replicas": "two"},
    ),
    Bad(
        "create-cpu-nan", "POST", DEPLOYMENTS, 400, b'{"name": "nan", "model": "iris", "cpu": NaN}'
    ),
    Bad(
        "create-cpu-infinity",
        "POST",
        DEPLOYMENTS,
        400,
        b'{"name": "inf", "model": "iris", "cpu": Infinity}',
    ),
    Bad(
        "create-cpu-1e400",
        "POST",
        DEPLOYMENTS,
        400,
        b'{"name": "big", "model": "iris", "cpu": 1e400}',
    ),
    Bad(
        "create-unknown-field",
        "POST",
        DEPLOYMENTS,
        422,
        {"name": "extra", "model": "iris", "replica_count": 3},
    ),
    Bad(
        "create-deep-nesting",
        "POST",
        DEPLOYMENTS,
        400,
        b'{"name": "deep", "model": "iris", "environment": '
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}",
    ),
    Bad(
        "create-10mb",
        "POST",
        DEPLOYMENTS,
        None,
        b'{"name": "big", "model": "' + b"m" * (10 * 1024 * 1024) + b'"}',
    ),
    Bad(
        "create-file-traversal",
        "POST",
        DEPLOYMENTS,
        None,
        {"name": "trav", "file": "../../etc/passwd"},
    ),
    Bad(
        "create-file-traversal-absolute",
        "POST",
        DEPLOYMENTS,
        None,
        {"name": "trav", "file": "/tmp/../../etc/passwd"},
    ),
    Bad("create-file-not-python", "POST", DEPLOYMENTS, None, {"name": "pw", "file": "/etc/passwd"}),
    Bad(
        "create-bad-env-name",
        "POST",
        DEPLOYMENTS,
        422,
        {"name": "env", "model": "iris", "environment": {"A=B; rm -rf /": "1"}},
    ),
    Bad("scale-negative", "POST", SCALE, 422, {"replicas": -3}),
    Bad("scale-zero", "POST", SCALE, 422, {"replicas": 0}),
    Bad("scale-float", "POST", SCALE, 422, {"replicas": 1.5}),
    Bad("scale-nan", "POST", SCALE, 400, b'{"replicas": NaN}'),
    Bad(
        "scale-unknown-deployment-sql",
        "POST",
        "/api/v1/deployments/x' OR '1'='1/scale",
        404,
        {"replicas": 2},
    ),
    Bad(
        "get-unknown-deployment-sql", "GET", "/api/v1/deployments/x';DROP TABLE deployments;--", 404
    ),
    # -- model metrics: delayed, aggregate, batch predictions, read back ----------------------
    Bad(
        "delayed-nan",
        "POST",
        DELAYED,
        400,
        b'{"prediction_uuid": "{uuid}", "metrics": {"actual_result": NaN}}',
    ),
    Bad(
        "delayed-metrics-not-object",
        "POST",
        DELAYED,
        422,
        {"prediction_uuid": "{uuid}", "metrics": [1, 2]},
    ),
    Bad(
        "delayed-uuid-not-uuid",
        "POST",
        DELAYED,
        None,
        {"prediction_uuid": "' OR 1=1 --", "metrics": {"actual_result": 1}},
    ),
    Bad(
        "delayed-sql-key-unknown-uuid",
        "POST",
        DELAYED,
        404,
        {
            "prediction_uuid": "00000000-0000-4000-8000-000000000000",
            "metrics": {"x'); DROP TABLE predictions; --": 1},
        },
    ),
    Bad(
        "delayed-empty-key", "POST", DELAYED, 422, {"prediction_uuid": "{uuid}", "metrics": {"": 1}}
    ),
    Bad(
        "delayed-nul-key",
        "POST",
        DELAYED,
        422,
        {"prediction_uuid": "{uuid}", "metrics": {"label\u0000": 1}},
    ),
    Bad(
        "delayed-nul-value",
        "POST",
        DELAYED,
        422,
        {"prediction_uuid": "{uuid}", "metrics": {"label": "a\u0000b"}},
    ),
    Bad(
        "delayed-unknown-field",
        "POST",
        DELAYED,
        422,
        {"prediction_uuid": "{uuid}", "metrics": {}, "deployment": "other"},
    ),
    Bad(
        "delayed-deep-value",
        "POST",
        DELAYED,
        422,
        {"prediction_uuid": "{uuid}", "metrics": {"deep": nested(40)}},
    ),
    Bad(
        "delayed-batch-one-unknown",
        "POST",
        "/api/v1/deployments/{dep}/metrics/delayed/batch",
        404,
        {
            "items": [
                {"prediction_uuid": "{uuid}", "metrics": {"actual_result": 1}},
                {
                    "prediction_uuid": "00000000-0000-4000-8000-000000000001",
                    "metrics": {"actual_result": 1},
                },
            ]
        },
    ),
    Bad(
        "aggregate-negative-start",
        "POST",
        AGGREGATE,
        422,
        {"metrics": {"accuracy": 0.9}, "start_timestamp_ms": -1, "end_timestamp_ms": 10},
    ),
    Bad(
        "aggregate-end-before-start",
        "POST",
        AGGREGATE,
        422,
        {"metrics": {"accuracy": 0.9}, "start_timestamp_ms": 20, "end_timestamp_ms": 10},
    ),
    Bad(
        "aggregate-after-year-9999",
        "POST",
        AGGREGATE,
        422,
        {"metrics": {"accuracy": 0.9}, "start_timestamp_ms": 0, "end_timestamp_ms": YEAR_10000_MS},
    ),
    Bad(
        "aggregate-beyond-int64",
        "POST",
        AGGREGATE,
        422,
        {"metrics": {"accuracy": 0.9}, "start_timestamp_ms": 0, "end_timestamp_ms": 10**20},
    ),
    Bad(
        "aggregate-timestamp-string",
        "POST",
        AGGREGATE,
        422,
        {"metrics": {"accuracy": 0.9}, "start_timestamp_ms": "yesterday", "end_timestamp_ms": 10},
    ),
    Bad(
        "aggregate-infinity-metric",
        "POST",
        AGGREGATE,
        400,
        b'{"metrics": {"accuracy": Infinity}, "start_timestamp_ms": 0, "end_timestamp_ms": 1}',
    ),
    Bad(
        "aggregate-metric-beyond-64-bits",
        "POST",
        AGGREGATE,
        422,
        b'{"metrics": {"n": [[{"x": -1010148612555936829878042624}]]}, '
        b'"start_timestamp_ms": 0, "end_timestamp_ms": 1}',
    ),
    Bad(
        "aggregate-metric-beyond-64-bits-unsigned",
        "POST",
        AGGREGATE,
        422,
        {"metrics": {"n": 2**64 - 1}, "start_timestamp_ms": 0, "end_timestamp_ms": 1},
    ),
    Bad(
        "predictions-timestamp-out-of-range",
        "POST",
        PREDICTIONS,
        422,
        {"predictions": [{"metrics": {"input": 1}, "end_timestamp_ms": 10**19}]},
    ),
    Bad(
        "predictions-negative-timestamp",
        "POST",
        PREDICTIONS,
        422,
        {"predictions": [{"metrics": {"input": 1}, "start_timestamp_ms": -5}]},
    ),
    Bad("predictions-empty-list", "POST", PREDICTIONS, 422, {"predictions": []}),
    Bad("read-negative-start", "GET", READ, 422, params={"start": -1}),
    Bad("read-end-beyond-int64", "GET", READ, 422, params={"end": 10**20}),
    Bad("read-sql-cursor", "GET", READ, 422, params={"cursor": "1' OR '1'='1"}),
    Bad("read-uuid-not-uuid", "GET", READ, None, params={"uuid": "'; DELETE FROM predictions;--"}),
    Bad("read-limit-zero", "GET", READ, 422, params={"limit": 0}),
    Bad("technical-start-beyond-int64", "GET", TECHNICAL, 422, params={"start": 10**20}),
    # -- alerts -------------------------------------------------------------------------------
    Bad(
        "rule-threshold-nan",
        "POST",
        RULES,
        400,
        raw(
            '{"name": "n", "deployment": "bad-inputs", "metric": "technical.requests", '
            '"comparison": "gt", "threshold": NaN}'
        ),
    ),
    Bad(
        "rule-sql-metric",
        "POST",
        RULES,
        422,
        {**RULE, "metric": "model.x'; DROP TABLE alert_rules; --"},
    ),
    Bad("rule-duplicate", "POST", RULES, 409, {**RULE, "name": "r1"}),
    Bad("rule-negative-window", "POST", RULES, 422, {**RULE, "window_seconds": -60}),
    Bad("rule-huge-min-samples", "POST", RULES, 422, {**RULE, "min_samples": 10**20}),
    Bad("rule-unknown-deployment", "POST", RULES, 404, {**RULE, "deployment": "nowhere"}),
    Bad("rule-webhook-not-url", "POST", RULES, 422, {**RULE, "webhook_url": "file:///etc/passwd"}),
    Bad("events-since-beyond-int64", "GET", "/api/v1/alerts/events", 422, params={"since": 10**20}),
    # -- drift and performance ----------------------------------------------------------------
    Bad(
        "reference-traversal-filename",
        "PUT",
        "/api/v1/deployments/{dep}/reference",
        422,
        b"a,b\n1,2\n",
        params={"filename": "../../etc/passwd"},
        content_type="application/octet-stream",
    ),
    Bad(
        "reference-not-csv",
        "PUT",
        "/api/v1/deployments/{dep}/reference",
        422,
        b"\x00\x01\x02garbage",
        params={"filename": "../../data.parquet"},
        content_type="application/octet-stream",
    ),
    Bad(
        "monitoring-unknown-field",
        "PUT",
        "/api/v1/deployments/{dep}/monitoring",
        422,
        {"input_key": "input", "surprise": True},
    ),
    Bad(
        "drift-start-beyond-int64",
        "GET",
        "/api/v1/deployments/{dep}/drift",
        422,
        params={"start": 10**20},
    ),
    Bad(
        "performance-end-after-year-9999",
        "GET",
        "/api/v1/deployments/{dep}/performance",
        422,
        params={"end": YEAR_10000_MS},
    ),
    Bad(
        "performance-step-zero",
        "GET",
        "/api/v1/deployments/{dep}/performance",
        422,
        params={"step": 0},
    ),
    Bad(
        "quality-start-beyond-int64",
        "GET",
        "/api/v1/deployments/{dep}/quality",
        422,
        params={"start": 10**20},
    ),
    Bad("quality-step-zero", "GET", "/api/v1/deployments/{dep}/quality", 422, params={"step": 0}),
    Bad(
        "quality-too-many-windows",
        "GET",
        "/api/v1/deployments/{dep}/quality",
        422,
        params={"start": 0, "end": 10**12, "step": 1},
    ),
]


KEYS = "/api/v1/api-keys"
CANARY = "/api/v1/deployments/{dep}/canary"
CML_MODELS = "/api/v2/projects/proj/models"
LONG = "x" * 300

# Inputs that once answered 500 on PostgreSQL while SQLite stored them, or that a later start
# could not get past: both stores must now refuse them alike, before storing or starting.
CASES += [
    # -- deployments: what would stop a start (the environment), and the stores' limits -----
    Bad(
        "create-env-nul",
        "POST",
        DEPLOYMENTS,
        422,
        {"name": "envnul", "model": "iris", "environment": {"FOO": "a\u0000b"}},
    ),
    Bad(
        "create-env-200k",
        "POST",
        DEPLOYMENTS,
        422,
        {"name": "envbig", "model": "iris", "environment": {"FOO": "x" * 200_000}},
    ),
    Bad(
        "create-env-many",
        "POST",
        DEPLOYMENTS,
        422,
        {"name": "envmany", "model": "iris", "environment": {f"V{i}": "1" for i in range(300)}},
    ),
    Bad(
        "create-env-control-name",
        "POST",
        DEPLOYMENTS,
        422,
        {"name": "envname", "model": "iris", "environment": {"A\nB": "1"}},
    ),
    Bad(
        "create-memory-above-int32",
        "POST",
        DEPLOYMENTS,
        422,
        {"name": "mem", "model": "iris", "memory_mb": 2**31},
    ),
    Bad("create-cpu-huge", "POST", DEPLOYMENTS, 422, {"name": "cpu", "model": "iris", "cpu": 1e9}),
    Bad("create-file-nul", "POST", DEPLOYMENTS, 422, {"name": "fnul", "file": "/tmp/a\u0000.py"}),
    Bad("create-model-nul", "POST", DEPLOYMENTS, 422, {"name": "mnul", "model": "ir\u0000is"}),
    Bad("create-model-long", "POST", DEPLOYMENTS, 422, {"name": "mlong", "model": LONG}),
    Bad(
        "create-version-long",
        "POST",
        DEPLOYMENTS,
        422,
        {"name": "vlong", "model": "iris", "version": LONG},
    ),
    Bad(
        "create-alias-control",
        "POST",
        DEPLOYMENTS,
        422,
        {"name": "actl", "model": "iris", "alias": "champ\u0007ion"},
    ),
    Bad(
        "redeploy-version-nul",
        "POST",
        "/api/v1/deployments/{dep}/redeploy",
        422,
        {"version": "1\u0000"},
    ),
    Bad("scale-above-int32", "POST", SCALE, 422, {"replicas": 2**40}),
    Bad("get-deployment-nul-path", "GET", "/api/v1/deployments/bad%00inputs", 422),
    Bad("stop-deployment-nul-path", "POST", "/api/v1/deployments/bad%00inputs/stop", 422),
    # -- API keys --------------------------------------------------------------------------
    Bad("key-name-nul", "POST", KEYS, 422, {"name": "ci\u0000", "scope": "read"}),
    Bad("key-name-newline", "POST", KEYS, 422, {"name": "ci\nadmin", "scope": "read"}),
    Bad("key-name-long", "POST", KEYS, 422, {"name": LONG, "scope": "read"}),
    Bad("key-predict-unknown-deployment", "POST", KEYS, 404, {"scope": "predict:nowhere"}),
    Bad("key-scope-nul", "POST", KEYS, 422, {"scope": "predict:bad\u0000inputs"}),
    Bad("key-rotate-nul-id", "POST", "/api/v1/api-keys/a%00b/rotate", 422),
    # -- alerts ------------------------------------------------------------------------------
    Bad("rule-description-nul", "POST", RULES, 422, {**RULE, "description": "a\u0000b"}),
    Bad("rule-metric-nul", "POST", RULES, 422, {**RULE, "metric": "drift.column.a\u0000"}),
    Bad("rule-metric-long", "POST", RULES, 422, {**RULE, "metric": "drift.column." + LONG}),
    Bad("rule-secret-nul", "POST", RULES, 422, {**RULE, "webhook_secret": "s\u0000"}),
    Bad("rule-description-huge", "POST", RULES, 422, {**RULE, "description": "d" * 5000}),
    Bad("rule-get-nul-path", "GET", "/api/v1/alerts/rules/{dep}/r%00", 422),
    # -- canary: refused before it starts -----------------------------------------------------
    Bad(
        "canary-metric-nul", "POST", CANARY, 422, {"version": "2", "policy": {"metric": "a\u0000"}}
    ),
    Bad(
        "canary-metric-unknown",
        "POST",
        CANARY,
        422,
        {"version": "2", "policy": {"metric": "nonsense"}},
    ),
    Bad("canary-version-nul", "POST", CANARY, 422, {"version": "2\u0000"}),
    Bad("canary-alias-long", "POST", CANARY, 422, {"alias": LONG}),
    # -- model metrics: the store's column widths ----------------------------------------------
    Bad(
        "predictions-model-version-40",
        "POST",
        PREDICTIONS,
        422,
        {"predictions": [{"metrics": {"input": 1}, "model_version": "v" * 40}]},
    ),
    Bad(
        "predictions-uuid-long",
        "POST",
        PREDICTIONS,
        422,
        {"predictions": [{"metrics": {"input": 1}, "uuid": "u" * 40}]},
    ),
    Bad(
        "aggregate-model-version-40",
        "POST",
        AGGREGATE,
        422,
        {
            "metrics": {"accuracy": 0.9},
            "start_timestamp_ms": 0,
            "end_timestamp_ms": 1,
            "model_version": "v" * 40,
        },
    ),
    Bad(
        "delayed-uuid-nul",
        "POST",
        DELAYED,
        422,
        {"prediction_uuid": "a\u0000b", "metrics": {"actual_result": 1}},
    ),
    Bad("read-version-nul", "GET", READ, 422, params={"version": "1\x00"}),
    Bad("read-uuid-nul", "GET", READ, 422, params={"uuid": "a\x00"}),
    Bad("technical-replica-huge", "GET", TECHNICAL, 422, params={"replica": 2**40}),
    Bad(
        "reference-nul-filename",
        "PUT",
        "/api/v1/deployments/{dep}/reference",
        422,
        b"a,b\n1,2\n",
        params={"filename": "ref\x00.csv"},
        content_type="application/octet-stream",
    ),
    # -- Cloudera ML's API v2 -----------------------------------------------------------------
    Bad("cml-model-name-nul", "POST", CML_MODELS, 422, {"name": "m\u0000"}),
    Bad(
        "cml-model-description-nul", "POST", CML_MODELS, 422, {"name": "m", "description": "\u0000"}
    ),
    Bad(
        "cml-model-project-nul-body",
        "POST",
        CML_MODELS,
        422,
        {"name": "m", "project_id": "p\u0000"},
    ),
    Bad("cml-project-nul-path", "POST", "/api/v2/projects/p%00/models", 422, {"name": "m"}),
    Bad("cml-project-long", "POST", f"/api/v2/projects/{LONG}/models", 422, {"name": "m"}),
    Bad("cml-model-name-long", "POST", CML_MODELS, 422, {"name": LONG}),
    Bad(
        "cml-auto-deploy-env-nul",
        "POST",
        CML_MODELS,
        422,
        {
            "name": "m",
            "registered_model_id": "iris",
            "auto_build_model": True,
            "auto_deploy_model": True,
            "auto_deploy_config": {"environment": {"A": "\u0000"}},
        },
    ),
    Bad(
        "cml-auto-build-comment-nul",
        "POST",
        CML_MODELS,
        422,
        {
            "name": "m",
            "registered_model_id": "iris",
            "auto_build_model": True,
            "auto_build_config": {"comment": "c\u0000"},
        },
    ),
    Bad("cml-list-nul-query", "GET", "/api/v2/models", 422, params={"search_filter": "\x00"}),
    # -- model endpoints -----------------------------------------------------------------------
    Bad("predict-nul-path", "POST", "/deployments/bad%00inputs/predict", 422, {"inputs": [ROW]}),
]


@functools.cache
def reflected(engine: Engine) -> MetaData:
    """The store's tables, reflected once per store (a refused request cannot add a table:
    the schema is the migrations', and ``dump`` would miss a new one only if it were created
    at run time, which nothing does)."""
    metadata = MetaData()
    metadata.reflect(engine)
    return metadata


def dump(engine: Engine) -> dict[str, list[str]]:
    """Every table's rows as sorted reprs (the tables the background does not write)."""
    out: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for name, table in sorted(reflected(engine).tables.items()):
            if name in UNDUMPED:
                continue
            out[name] = sorted(repr(tuple(row)) for row in conn.execute(select(table)))
    return out


@pytest.fixture(scope="module", params=BACKENDS)
def surface(
    request: pytest.FixtureRequest,
    mlflow_registry: Registered,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Surface]:
    data_dir: Path = tmp_path_factory.mktemp(f"bad-inputs-{request.param}")
    with platform_on(
        request,
        request.param,
        data_dir,
        mlflow_registry.tracking_uri,
        MODELDECK_SUMMARY_INTERVAL_SECONDS="0",  # no background writes of drift summaries
        MODELDECK_QUALITY_GAUGES_INTERVAL_SECONDS="0",  # nor through the /metrics gauges' reports
        MODELDECK_ALERT_INTERVAL_SECONDS="3600",
    ) as running:
        engine = create_engine(running.env["MODELDECK_STORE_URL"])
        try:
            client = running.client()
            key = client.deploy(DEPLOYMENT, "iris", version=1)["access_key"]
            client.wait(DEPLOYMENT, timeout=120)
            answer = client.predict(DEPLOYMENT, {"inputs": [ROW]}, access_key=key)
            client.create_alert_rule(**{**RULE, "name": "r1"})
            wait_recorded(engine, answer["uuid"])
            yield Surface(running, engine, key, answer["uuid"], dump(engine))
        finally:
            engine.dispose()


def wait_recorded(engine: Engine, uuid: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(uuid in row for row in dump(engine).get("predictions", [])):
            return
        time.sleep(0.1)
    raise AssertionError(f"prediction {uuid} was not recorded in {timeout} s")


def send(surface: Surface, case: Bad) -> httpx.Response:
    headers = {"Content-Type": case.content_type}
    if case.auth == "api":
        headers["Authorization"] = f"Bearer {surface.platform.api_key}"
    elif case.auth == "access":
        headers["Authorization"] = f"Bearer {surface.access_key}"
    body = case.body
    if body is None:
        content = None
    elif isinstance(body, bytes):
        content = surface.fill(body.decode("utf-8", "surrogateescape")).encode(
            "utf-8", "surrogateescape"
        )
    else:
        content = surface.fill(httpx_json(body)).encode("utf-8")
    return httpx.request(
        case.method,
        surface.platform.url + surface.fill(case.path),
        content=content,
        params=case.params,
        headers=headers,
        timeout=60,
    )


def httpx_json(value: Any) -> str:
    return json.dumps(value)


def test_the_list_is_long_and_covers_every_surface() -> None:
    assert len(CASES) >= 120
    assert len({c.id for c in CASES}) == len(CASES)
    surfaces = (
        PREDICT, "/model", DEPLOYMENTS, SCALE, DELAYED, AGGREGATE, READ, RULES, KEYS, CANARY,
        CML_MODELS,
    )  # fmt: skip
    for surface_path in surfaces:
        assert any(c.path == surface_path for c in CASES), surface_path


def processes(surface: Surface) -> list[tuple[str, int | None]]:
    """What runs: every deployment's replicas (status, pid), and the platform itself."""
    assert surface.platform.proc is not None and surface.platform.proc.poll() is None
    found = []
    for deployment in surface.platform.client().deployments():
        for replica in deployment["replica_states"]:
            found.append((f"{deployment['name']}/{replica['status']}", replica["pid"]))
    return sorted(found, key=str)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_and_changes_nothing(surface: Surface, case: Bad) -> None:
    before = dump(surface.engine)
    running = processes(surface)
    r = send(surface, case)
    after = dump(surface.engine)
    assert processes(surface) == running, "a refused request started or stopped a process"
    if case.status is None:
        assert 400 <= r.status_code < 500, (r.status_code, r.text[:500])
    else:
        assert r.status_code == case.status, (r.status_code, r.text[:500])
    body = r.json()
    if case.path == "/model":
        assert body["success"] is False
        body = {"error": body["error"]}
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    changed = {t for t in set(before) | set(after) if before.get(t) != after.get(t)}
    assert not changed, f"tables changed: {sorted(changed)}"


def test_nothing_lands_later(surface: Surface) -> None:
    """After every case: what a refused request might have queued (the writer) is not there."""
    time.sleep(1.5)
    assert dump(surface.engine) == surface.first
    fresh = MetaData()
    fresh.reflect(surface.engine)
    assert set(fresh.tables) == set(reflected(surface.engine).tables), "a table appeared"


def test_sql_looking_metric_keys_are_data(surface: Surface) -> None:
    """Runs last: the one accepted request here. A SQL-looking key is stored as it is."""
    client = surface.platform.client()
    key = "x'); DROP TABLE predictions; --"
    client.track_delayed_metrics({key: 1}, surface.prediction_uuid, deployment=DEPLOYMENT)
    records = client.read_metrics(DEPLOYMENT, uuids=[surface.prediction_uuid])["metrics"]
    assert records[0]["metrics"][key] == 1
    assert "predictions" in dump(surface.engine)


def test_the_platform_restarts_cleanly_after_the_whole_list(surface: Surface) -> None:
    """Runs last: nothing the list sent (and was refused) can stop the platform starting."""
    platform = surface.platform
    platform.stop()
    platform.start()
    client = platform.client()
    client.wait(DEPLOYMENT, timeout=120)
    answer = client.predict(DEPLOYMENT, {"inputs": [ROW]}, access_key=surface.access_key)
    assert answer["uuid"]
    # Every case was refused with a 4xx: none of them logged an unhandled error.
    assert "Traceback" not in platform.logs(), platform.logs()[-3000:]
