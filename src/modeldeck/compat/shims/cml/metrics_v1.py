"""``cml.metrics_v1`` on modeldeck."""

from modeldeck.compat.cml import (
    read_metrics,
    track_aggregate_metrics,
    track_delayed_metrics,
    track_metric,
)

__all__ = ["read_metrics", "track_aggregate_metrics", "track_delayed_metrics", "track_metric"]
