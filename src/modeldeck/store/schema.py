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
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

JSONType = JSON().with_variant(JSONB(), "postgresql")


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
    desired_state: Mapped[str] = mapped_column(String(16), default="running")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    status_message: Mapped[str] = mapped_column(Text, default="")
    signature: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    kind: Mapped[str] = mapped_column(String(16), default="endpoint")  # endpoint | batch
    source: Mapped[str] = mapped_column(String(16), default="registry")  # registry | file
    file_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    function_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    track_metrics: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

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
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    deployment: Mapped[DeploymentRow] = relationship(back_populates="replica_rows")


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PredictionRow(Base):
    """One prediction: what its predict function tracked (inputs, outputs, custom metrics)."""

    __tablename__ = "predictions"
    __table_args__ = (Index("ix_predictions_deployment_end", "deployment_id", "end_ms"),)

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

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    prediction_uuid: Mapped[str] = mapped_column(
        String(36), ForeignKey("predictions.uuid", ondelete="CASCADE"), index=True
    )
    deployment_id: Mapped[str] = mapped_column(String(36), index=True)
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType)


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
