"""modeldeck's stand-in for Cloudera ML's ``cdsw`` module (see ``modeldeck.compat``)."""

from modeldeck.compat.cml import (
    call_model,
    model_metrics,
    read_metrics,
    track_aggregate_metrics,
    track_delayed_metrics,
    track_metric,
)

# Cloudera's cdsw functions for sessions and experiments, which modeldeck does not have.
UNSUPPORTED = {
    "launch_workers": "it has no sessions to launch workers from",
    "list_workers": "it has no sessions to launch workers from",
    "stop_workers": "it has no sessions to launch workers from",
    "await_workers": "it has no sessions to launch workers from",
    "track_file": "experiments are MLflow's: use mlflow.log_artifact",
    "html": "it has no session output to render HTML in",
}


def __getattr__(name: str) -> object:
    if name in UNSUPPORTED:
        raise NotImplementedError(
            f"cdsw.{name} is not supported by modeldeck: {UNSUPPORTED[name]} "
            "(docs/cml-compatibility.md lists what is)"
        )
    raise AttributeError(f"module 'cdsw' has no attribute {name!r}")


__all__ = [
    "call_model",
    "model_metrics",
    "read_metrics",
    "track_aggregate_metrics",
    "track_delayed_metrics",
    "track_metric",
]
