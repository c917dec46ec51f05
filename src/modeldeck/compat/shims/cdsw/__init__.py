"""modeldeck's stand-in for Cloudera ML's ``cdsw`` module (see ``modeldeck.compat``)."""

from modeldeck.compat.cml import (
    call_model,
    model_metrics,
    read_metrics,
    track_aggregate_metrics,
    track_delayed_metrics,
    track_metric,
)

__all__ = [
    "call_model",
    "model_metrics",
    "read_metrics",
    "track_aggregate_metrics",
    "track_delayed_metrics",
    "track_metric",
]
