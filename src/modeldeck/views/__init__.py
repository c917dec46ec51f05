"""What the platform answers with, as pydantic models the server's routes and the client share.

The API's routes declare these as their response models and ``modeldeck.Client`` returns them,
so both sides read one definition. They import nothing but pydantic: the client stays free of
the server's machinery (SQLAlchemy, FastAPI, MLflow). Each tolerates fields a newer server
adds, and answers the dict-style access of the client's earlier, dict-returning methods
(:class:`~modeldeck.views.base.View`).
"""

from __future__ import annotations

from modeldeck.views.alerts import AlertEventView, AlertRuleView, ChannelDeliveryView
from modeldeck.views.base import View
from modeldeck.views.builds import BuildView, EnvironmentView, PruneResult
from modeldeck.views.deployments import (
    AccessKeyView,
    AutoscalingView,
    CanaryDecisionView,
    CanaryPolicyView,
    CanaryView,
    DeploymentCreated,
    DeploymentView,
    PredictionView,
    ReplicaView,
    RolloutView,
)
from modeldeck.views.keys import ApiKeyCreated, ApiKeyView
from modeldeck.views.metrics import Accepted, Counted, MetricsPage, Recorded, TechnicalMetrics
from modeldeck.views.monitoring import (
    ColumnOverrideView,
    DriftReport,
    DriftSeries,
    MonitoringConfigView,
    PerformanceReport,
    QualityReport,
    ReferenceView,
    WindowView,
)
from modeldeck.views.registry import AliasView, ModelVersionView, RegisteredModelView

__all__ = [
    "Accepted",
    "AccessKeyView",
    "AlertEventView",
    "AlertRuleView",
    "AliasView",
    "ApiKeyCreated",
    "ApiKeyView",
    "AutoscalingView",
    "BuildView",
    "CanaryDecisionView",
    "CanaryPolicyView",
    "CanaryView",
    "ChannelDeliveryView",
    "ColumnOverrideView",
    "Counted",
    "DeploymentCreated",
    "DeploymentView",
    "DriftReport",
    "DriftSeries",
    "EnvironmentView",
    "MetricsPage",
    "ModelVersionView",
    "MonitoringConfigView",
    "PerformanceReport",
    "PredictionView",
    "PruneResult",
    "QualityReport",
    "Recorded",
    "ReferenceView",
    "RegisteredModelView",
    "ReplicaView",
    "RolloutView",
    "TechnicalMetrics",
    "View",
    "WindowView",
]
