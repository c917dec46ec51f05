"""The store's schema (SQLAlchemy 2). Changes go through an Alembic migration in ``migrations/``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

JSONType = JSON().with_variant(JSONB(), "postgresql")


class UtcDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that reads back aware (UTC) on SQLite too, which drops the
    offset: answers then carry RFC 3339 date-times, as the OpenAPI spec says."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class DeploymentRow(Base):
    __tablename__ = "deployments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True, index=True)
    crn: Mapped[str] = mapped_column(String(255))
    model_name: Mapped[str] = mapped_column(String(255))
    model_version: Mapped[str] = mapped_column(String(32))
    version_spec: Mapped[str] = mapped_column(String(255))
    model_uri: Mapped[str] = mapped_column(String(1024))
    runtime: Mapped[str] = mapped_column(String(16), default="local")
    replicas: Mapped[int] = mapped_column(Integer, default=1)
    cpu: Mapped[float | None] = mapped_column(Float, nullable=True)
    memory_mb: Mapped[int | None] = mapped_column(Integer, nullable=True)
    environment: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    auth_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    access_key_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    access_key_prefix: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # The key encrypted with the platform's secret (modeldeck.auth.vault); null for keys made
    # before keys were kept encrypted.
    access_key_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    desired_state: Mapped[str] = mapped_column(String(16), default="running")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    status_message: Mapped[str] = mapped_column(Text, default="")
    signature: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    kind: Mapped[str] = mapped_column(String(16), default="endpoint")  # endpoint | batch
    source: Mapped[str] = mapped_column(String(16), default="registry")  # registry | file
    file_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    function_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    track_metrics: Mapped[bool] = mapped_column(Boolean, default=True)
    monitoring: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    env_manager: Mapped[str] = mapped_column(String(16), default="local")  # local | uv | virtualenv
    # Follow the alias in version_spec (when it is one): a move in MLflow rolls out its version.
    track_alias: Mapped[bool] = mapped_column(Boolean, default=True, server_default=false())
    # A version the alias points at that the deployment does not follow to (it failed to roll
    # out, or was rolled back from); released when the alias points elsewhere.
    alias_held_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Autoscaling policy (min/max replicas, target in-flight per replica, delays); null: fixed.
    autoscaling: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)

    replica_rows: Mapped[list[ReplicaRow]] = relationship(
        back_populates="deployment",
        cascade="all, delete-orphan",
        order_by="ReplicaRow.index",
        passive_deletes=True,
    )


class ReplicaRow(Base):
    __tablename__ = "replicas"

    deployment_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("deployments.id", ondelete="CASCADE"), primary_key=True
    )
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="starting")
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    restarts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    version: Mapped[str] = mapped_column(String(32), default="")  # the model version it runs
    # The process's start time (with ``pid``, its identity: a pid may be reused) and the
    # fingerprint of what it was started with: a restarted control plane adopts the process
    # when both still match.
    process_started: Mapped[float | None] = mapped_column(Float, nullable=True)
    fingerprint: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)

    deployment: Mapped[DeploymentRow] = relationship(back_populates="replica_rows")


class DeploymentHistoryRow(Base):
    """One version a deployment was set to serve: what a rollback returns to.

    ``status``: ``rolling out`` (starting beside the serving version), ``serving`` (the one the
    deployment row describes), ``retired`` (replaced by a redeploy: a rollback target),
    ``rolled back`` (replaced by a rollback: not a target again), ``failed`` (never took
    traffic; ``message`` says why).
    """

    __tablename__ = "deployment_history"
    __table_args__ = (Index("ix_deployment_history_deployment_id", "deployment_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    deployment_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("deployments.id", ondelete="CASCADE")
    )
    reason: Mapped[str] = mapped_column(String(16))  # deploy | redeploy | rollback
    status: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text, default="")
    model_name: Mapped[str] = mapped_column(String(255))
    model_version: Mapped[str] = mapped_column(String(32))
    version_spec: Mapped[str] = mapped_column(String(255))
    model_uri: Mapped[str] = mapped_column(String(1024))
    signature: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    source: Mapped[str] = mapped_column(String(16))
    file_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    function_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    env_manager: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    served_from: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    served_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    # admin | deploy | read | predict:<deployment> (modeldeck.auth.api_keys.SCOPE_PATTERN)
    scope: Mapped[str] = mapped_column(String(80), default="admin", server_default="admin")
    # The deployment a ``predict:<deployment>`` key opens; the key goes with it.
    deployment_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("deployments.id", ondelete="CASCADE"), nullable=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    # Written at most once a minute per key, so that using a key costs no write per request.
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class PredictionRow(Base):
    """One prediction: what its predict function tracked (inputs, outputs, custom metrics)."""

    __tablename__ = "predictions"
    __table_args__ = (
        Index("ix_predictions_deployment_end_version", "deployment_id", "end_ms", "model_version"),
    )

    uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    deployment_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("deployments.id", ondelete="CASCADE")
    )
    model_version: Mapped[str] = mapped_column(String(32), default="")
    replica: Mapped[int | None] = mapped_column(Integer, nullable=True)
    start_ms: Mapped[int] = mapped_column(BigInteger)
    end_ms: Mapped[int] = mapped_column(BigInteger)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType)


class DelayedMetricRow(Base):
    """Metrics that arrived later for a prediction (ground truth), joined by its UUID."""

    __tablename__ = "delayed_metrics"
    __table_args__ = (
        Index("ix_delayed_deployment_prediction_end", "deployment_id", "prediction_end_ms", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    prediction_uuid: Mapped[str] = mapped_column(
        String(36), ForeignKey("predictions.uuid", ondelete="CASCADE"), index=True
    )
    deployment_id: Mapped[str] = mapped_column(String(36), index=True)
    # The labelled prediction's end_ms: a time range's labels are found without joining predictions.
    prediction_end_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType)


class ShadowLinkRow(Base):
    """A shadow copy's prediction and the stable prediction it copies: ground truth for the
    stable one labels the copy too (realised performance, read-back)."""

    __tablename__ = "shadow_links"
    __table_args__ = (Index("ix_shadow_links_deployment_end", "deployment_id", "shadow_end_ms"),)

    shadow_uuid: Mapped[str] = mapped_column(
        String(36), ForeignKey("predictions.uuid", ondelete="CASCADE"), primary_key=True
    )
    stable_uuid: Mapped[str] = mapped_column(String(36), index=True)
    deployment_id: Mapped[str] = mapped_column(String(36))
    # The shadow prediction's end_ms: a time range's links are found without joining predictions.
    shadow_end_ms: Mapped[int] = mapped_column(BigInteger)


class AggregateMetricRow(Base):
    """Window-level metrics (``track_aggregate_metrics``)."""

    __tablename__ = "aggregate_metrics"
    __table_args__ = (Index("ix_aggregate_deployment_end", "deployment_id", "end_ms"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    deployment_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("deployments.id", ondelete="CASCADE")
    )
    model_version: Mapped[str] = mapped_column(String(32), default="")
    start_ms: Mapped[int] = mapped_column(BigInteger)
    end_ms: Mapped[int] = mapped_column(BigInteger)
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType)


LATENCY_BOUNDS_MS = [
    0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 50.0, 75.0, 100.0, 150.0,
    250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
]  # fmt: skip
"""Upper bounds of the latency histogram's buckets; one more bucket holds the rest."""


class RollupRow(Base):
    """Requests to one replica of one deployment in one 5-second bucket."""

    __tablename__ = "technical_rollups"
    __table_args__ = (Index("ix_rollups_deployment_bucket", "deployment_id", "bucket_ms"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    deployment_id: Mapped[str] = mapped_column(String(36))
    version: Mapped[str] = mapped_column(String(32), default="")
    replica: Mapped[int] = mapped_column(Integer)  # -1: refused before reaching a replica
    bucket_ms: Mapped[int] = mapped_column(BigInteger)
    requests: Mapped[int] = mapped_column(Integer)
    status_2xx: Mapped[int] = mapped_column(Integer)
    status_4xx: Mapped[int] = mapped_column(Integer)
    status_5xx: Mapped[int] = mapped_column(Integer)
    status_other: Mapped[int] = mapped_column(Integer)
    latency_sum_ms: Mapped[float] = mapped_column(Float)
    latency_max_ms: Mapped[float] = mapped_column(Float)
    req_bytes_sum: Mapped[int] = mapped_column(BigInteger)
    req_bytes_max: Mapped[int] = mapped_column(BigInteger)
    resp_bytes_sum: Mapped[int] = mapped_column(BigInteger)
    resp_bytes_max: Mapped[int] = mapped_column(BigInteger)
    # The latency histogram, one integer column per bucket (lat_00 ... lat_22), so that SQL can
    # sum histograms across rows.
    for _i in range(len(LATENCY_BOUNDS_MS) + 1):
        locals()[f"lat_{_i:02d}"] = mapped_column(Integer, default=0)
    del _i


class ReplicaSampleRow(Base):
    """CPU and resident memory of one replica process, sampled at each flush."""

    __tablename__ = "replica_samples"
    __table_args__ = (Index("ix_samples_deployment_ts", "deployment_id", "ts_ms"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    deployment_id: Mapped[str] = mapped_column(String(36))
    version: Mapped[str] = mapped_column(String(32), default="")
    replica: Mapped[int] = mapped_column(Integer)
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    cpu_percent: Mapped[float] = mapped_column(Float)
    rss_bytes: Mapped[int] = mapped_column(BigInteger)
    cpu_seconds: Mapped[float] = mapped_column(Float)


class ReferenceDataRow(Base):
    """The data drift is measured against: a deployment's training data, per model version.

    ``model_version == ""`` is the deployment's default reference, used for versions that have
    none of their own. The data is kept as Parquet bytes.
    """

    __tablename__ = "reference_data"
    __table_args__ = (UniqueConstraint("deployment_id", "model_version"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    deployment_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("deployments.id", ondelete="CASCADE")
    )
    model_version: Mapped[str] = mapped_column(String(32), default="")
    source: Mapped[str] = mapped_column(Text)
    rows: Mapped[int] = mapped_column(Integer)
    columns: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    target_column: Mapped[str | None] = mapped_column(String(255), nullable=True)
    prediction_column: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # No longer written (estimators are per version: ``version_scores``); kept for old rows.
    estimator: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class VersionScoreRow(Base):
    """One model version's predictions on one reference, scored once: the version's own
    confidence estimator (calibrated on them) and its metrics against the reference labels.

    ``status`` is ``scored`` or ``unavailable`` (``reason`` says why: no label column, a
    model that cannot be loaded or gives no probabilities...). Replacing the reference deletes
    its scores (a foreign key).
    """

    __tablename__ = "version_scores"

    reference_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("reference_data.id", ondelete="CASCADE"), primary_key=True
    )
    model_version: Mapped[str] = mapped_column(String(32), primary_key=True)
    deployment_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("deployments.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    estimator: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    rows: Mapped[int] = mapped_column(Integer, default=0)
    scored_ms: Mapped[int] = mapped_column(BigInteger)


class AnalysisSummaryRow(Base):
    """Five minutes of one model version's additive aggregates for drift or performance reports.

    Valid while ``signature`` matches the settings and reference it was built with and the
    bucket still holds ``predictions`` predictions (of this version) and ``labels`` delayed
    metrics, the last one ``label_max_id`` (all versions); anything else rebuilds it.
    """

    __tablename__ = "analysis_summaries"

    deployment_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("deployments.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # drift | performance
    bucket_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    model_version: Mapped[str] = mapped_column(String(32), primary_key=True)
    signature: Mapped[str] = mapped_column(String(64))
    predictions: Mapped[int] = mapped_column(Integer)
    labels: Mapped[int] = mapped_column(Integer)
    label_max_id: Mapped[int] = mapped_column(BigInteger)
    built_ms: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class AlertRuleRow(Base):
    """An alert rule (``modeldeck.monitoring.alerts.rules.AlertRuleSpec``) and its evaluation
    state."""

    __tablename__ = "alert_rules"
    __table_args__ = (UniqueConstraint("deployment_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    deployment_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("deployments.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(100))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    state: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class AlertEventRow(Base):
    """A rule that started firing or resolved, and how its webhook delivery went."""

    __tablename__ = "alert_events"
    __table_args__ = (Index("ix_alert_events_deployment_ts", "deployment_id", "ts_ms"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    rule_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("alert_rules.id", ondelete="CASCADE"), index=True
    )
    deployment_id: Mapped[str] = mapped_column(String(36))
    rule_name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))  # firing | resolved
    metric: Mapped[str] = mapped_column(String(255))
    value: Mapped[float] = mapped_column(Float)
    samples: Mapped[int] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(Text)
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    delivery: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)


class CanaryDecisionRow(Base):
    """A canary's start, each change of its policy's verdict and its end, with the reasons."""

    __tablename__ = "canary_decisions"
    __table_args__ = (Index("ix_canary_decisions_deployment_ts", "deployment_id", "ts_ms"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    deployment_id: Mapped[str] = mapped_column(String(36))
    stable_version: Mapped[str] = mapped_column(String(32))
    candidate_version: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(16))  # canary | shadow
    # started | resumed (after a restart) | wait | promote | rollback | stopped
    decision: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list[str]] = mapped_column(JSONType)
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    ts_ms: Mapped[int] = mapped_column(BigInteger)


class CanaryRow(Base):
    """The canary (or shadow) a deployment runs now: kept so that a restart resumes it."""

    __tablename__ = "canaries"

    deployment_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("deployments.id", ondelete="CASCADE"), primary_key=True
    )
    stable_version: Mapped[str] = mapped_column(String(32))
    candidate_version: Mapped[str] = mapped_column(String(32))
    request: Mapped[dict[str, Any]] = mapped_column(JSONType)  # the CanaryRequest, as JSON
    started_ms: Mapped[int] = mapped_column(BigInteger)


class ReplicaEventRow(Base):
    """Something that happened to a deployment's replicas (the autoscaler scaled them)."""

    __tablename__ = "replica_events"
    __table_args__ = (Index("ix_replica_events_deployment_ts", "deployment_id", "ts_ms"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    deployment_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("deployments.id", ondelete="CASCADE")
    )
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))  # scaled_up | scaled_down
    message: Mapped[str] = mapped_column(Text)
    # The event's other keys (replicas_before, replicas_after, inflight...), flattened back
    # into the event when read.
    details: Mapped[dict[str, Any]] = mapped_column(JSONType)


class CmlModelRow(Base):
    """A Cloudera ML API v2 model (``cmlapi``): a name in a project, served as one deployment.

    ``deployment_name`` is the modeldeck deployment its builds are deployed as; the access key
    belongs to the model and is carried over to every deployment of it, as CML does.
    """

    __tablename__ = "cml_models"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    deployment_name: Mapped[str] = mapped_column(String(63), unique=True)
    registered_model_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    auth_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    access_key_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    access_key_prefix: Mapped[str | None] = mapped_column(String(16), nullable=True)
    access_key_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class CmlModelBuildRow(Base):
    """A build of a CML model: a registered version (or a Python file), checked and loaded."""

    __tablename__ = "cml_model_builds"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    model_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("cml_models.id", ondelete="CASCADE"), index=True
    )
    project_id: Mapped[str] = mapped_column(String(255))
    registered_model_version_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    model_name: Mapped[str] = mapped_column(String(255))
    model_version: Mapped[str] = mapped_column(String(255))  # as asked, then the resolved number
    model_uri: Mapped[str] = mapped_column(String(1024))
    file_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    function_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    comment: Mapped[str] = mapped_column(Text, default="")
    runtime_identifier: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    status: Mapped[str] = mapped_column(String(32))
    status_message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class CmlModelDeploymentRow(Base):
    """A deployment of a CML model build, run by the deployments service as its model's
    modeldeck deployment (``deployment_id``); ``crn`` is its own, the one its records carry.

    ``status`` is what this table knows by itself (``deploying``, ``stopped``, ``failed``); while
    the deployment is the model's current one its live status comes from the modeldeck deployment.
    """

    __tablename__ = "cml_model_deployments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    model_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("cml_models.id", ondelete="CASCADE"), index=True
    )
    build_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("cml_model_builds.id", ondelete="CASCADE"), index=True
    )
    project_id: Mapped[str] = mapped_column(String(255))
    crn: Mapped[str] = mapped_column(String(255))  # its own: .../model-deployment/<id>
    # The modeldeck deployment it runs as (null: it never ran, e.g. a failed automatic deploy).
    deployment_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # When it became its model's live deployment (ms since the epoch), once per deploy or
    # restart: which CML deployment a stored prediction belongs to (compat.cml_records).
    live_since_ms: Mapped[list[int] | None] = mapped_column(JSONType, nullable=True)
    cpu: Mapped[float | None] = mapped_column(Float, nullable=True)
    memory: Mapped[float | None] = mapped_column(Float, nullable=True)  # GiB, as Cloudera
    replicas: Mapped[int] = mapped_column(Integer, default=1)
    environment: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(String(32))
    status_message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class BuildRow(Base):
    """A build: the isolated environment a deployment's replicas run in, made or found cached.

    ``queued`` -> ``building`` -> ``built`` | ``build failed``; ``packages`` is the environment's
    ``pip freeze``, ``model_packages`` the versions of the model's own requirements inside it.
    """

    __tablename__ = "builds"
    __table_args__ = (Index("ix_builds_deployment_created", "deployment_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    deployment_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("deployments.id", ondelete="CASCADE")
    )
    reason: Mapped[str] = mapped_column(String(16), default="deploy")
    model_name: Mapped[str] = mapped_column(String(255))
    model_version: Mapped[str] = mapped_column(String(32))
    model_uri: Mapped[str] = mapped_column(String(1024))
    env_manager: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    status_message: Mapped[str] = mapped_column(Text, default="")
    cache_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    cache_hit: Mapped[bool] = mapped_column(Boolean, default=False)
    python_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    environment_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    model_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    packages: Mapped[list[str] | None] = mapped_column(JSONType, nullable=True)
    model_packages: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    log: Mapped[str] = mapped_column(Text, default="")
    duration_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
