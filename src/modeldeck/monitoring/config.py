"""A deployment's monitoring settings: where its tracked metrics hold features, predictions,
labels and probabilities, and how drift is tested (the API's ``MonitoringConfig``).

The settings are stored with the deployment (``deployments.monitoring``, only what differs
from the defaults). :func:`drift_inputs` and :func:`performance_signature` name the settings a
stored summary depends on, so that changing any other setting keeps the summaries.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from modeldeck.errors import NotFound
from modeldeck.monitoring.drift import stats
from modeldeck.monitoring.summaries import parts
from modeldeck.store import Store
from modeldeck.store.schema import DeploymentRow


class ColumnOverride(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: str | None = Field(default=None, description="One of " + ", ".join(stats.METHODS))
    threshold: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    kind: Literal["numeric", "categorical"] | None = None


KEY_PATTERN = r'^[^"\\\x00-\x1f]{1,255}$'
"""A tracked-metric key usable in a JSON path: no quotes, backslashes or control characters."""


class MonitoringConfig(BaseModel):
    """How a deployment's tracked metrics map onto features, predictions and labels."""

    model_config = ConfigDict(extra="forbid")

    input_key: str = Field(
        pattern=KEY_PATTERN,
        default="input",
        description="Tracked key holding the features (a record or a list).",
    )
    output_key: str = Field(
        pattern=KEY_PATTERN, default="output", description="Tracked key holding the prediction."
    )
    output_column: str | None = Field(
        pattern=KEY_PATTERN,
        default=None,
        description="For a model that answers several columns (a record per row): the column "
        "that is the prediction, compared with labels and the reference's target.",
    )
    label_key: str = Field(
        pattern=KEY_PATTERN,
        default="actual_result",
        description="Delayed-metric key holding the ground truth.",
    )
    probability_key: str | None = Field(
        pattern=KEY_PATTERN,
        default="probabilities",
        description="Tracked key holding class probabilities as {class: p} (classifiers).",
    )
    task: Literal["classification", "regression"] | None = Field(
        default=None, description="Default: inferred from the labels."
    )
    columns: list[str] | None = Field(
        default=None, description="Features to test for drift (default: the reference's)."
    )
    overrides: dict[str, ColumnOverride] = Field(
        default_factory=dict, description="Per-column drift method, threshold or kind."
    )
    drift_share: float = Field(
        default=0.5, gt=0, le=1, description="Share of drifted columns that is dataset drift."
    )
    min_samples: int = Field(
        default=30,
        ge=1,
        le=1_000_000,
        description="Current rows below which a drift verdict is 'not enough data'.",
    )
    top_k: int = Field(default=20, ge=1, le=1000, description="Categories kept per column.")
    max_rows: int = Field(
        default=50_000,
        ge=1000,
        le=10_000_000,
        description="Windows with more predictions are tested on five-minute summaries.",
    )

    @classmethod
    def of(cls, deployment: DeploymentRow) -> MonitoringConfig:
        """The settings stored with ``deployment`` (defaults for what it does not set)."""
        return cls.model_validate(deployment.monitoring or {})


def drift_inputs(config: MonitoringConfig) -> tuple[Any, ...]:
    """The settings a drift summary depends on (with the reference): where the features and the
    output are tracked, which columns are summarised and the kinds forced on them."""
    kinds = {c: o.kind for c, o in sorted(config.overrides.items()) if o.kind is not None}
    columns = None if config.columns is None else sorted(set(config.columns))
    output = (
        config.output_key
        if config.output_column is None
        else (
            config.output_key,
            config.output_column,
        )
    )
    return config.input_key, output, columns, kinds


def performance_signature(config: MonitoringConfig) -> str:
    """What a performance summary depends on: where predictions, labels and probabilities
    are tracked, and the task."""
    output = config.output_key
    if config.output_column is not None:  # unset: the signature summaries were stored under
        output = f"{output}\x00{config.output_column}"
    return parts.signature(output, config.label_key, config.probability_key, config.task, 1)


def find_deployment(store: Store, name: str) -> DeploymentRow:
    """The deployment named ``name``; 404 when there is none."""
    with store.read() as session:
        return deployment_in(session, name)


def deployment_in(session: Any, name: str) -> DeploymentRow:
    """The deployment named ``name`` as ``session`` sees it; 404 when there is none."""
    row = session.scalars(select(DeploymentRow).where(DeploymentRow.name == name)).one_or_none()
    if row is None:
        raise NotFound(f"deployment {name!r} not found", details={"deployment": name})
    return row  # type: ignore[no-any-return]
