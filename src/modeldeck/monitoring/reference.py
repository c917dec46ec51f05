"""Reference data: what a model was trained on, the baseline that drift is measured against.

It comes from one of three places, tried in this order by :func:`from_mlflow`:

1. an artifact of the version's MLflow run named ``reference_data.parquet`` / ``.csv`` or
   ``training_data.parquet`` / ``.csv`` (at the run's root or under ``reference/``);
2. the model's logged input example (a few rows only: good enough to see the columns, too few
   for a meaningful drift test, and the reference says so);

or it is uploaded explicitly (``modeldeck reference set NAME data.parquet``).
"""

from __future__ import annotations

import io
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modeldeck.errors import NotFound, ValidationFailed

if TYPE_CHECKING:
    import pandas as pd

    from modeldeck.registry import Registry

log = logging.getLogger(__name__)

ARTIFACT_NAMES = (
    "reference_data.parquet",
    "reference_data.csv",
    "training_data.parquet",
    "training_data.csv",
)
MAX_REFERENCE_ROWS = 1_000_000


def read_table(data: bytes, filename: str) -> pd.DataFrame:
    """A CSV or Parquet file's bytes as a DataFrame; the suffix of ``filename`` decides."""
    import pandas as pd

    suffix = Path(filename).suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(io.BytesIO(data))
        elif suffix == ".csv":
            frame = pd.read_csv(io.BytesIO(data))
        else:
            raise ValidationFailed(
                f"reference data must be a .parquet or .csv file, not {filename!r}",
                details={"field": "file"},
            )
    except ValidationFailed:
        raise
    except Exception as exc:  # the readers raise many types for malformed files
        raise ValidationFailed(
            f"could not read {filename!r} as {suffix[1:]}: {exc}", details={"field": "file"}
        ) from exc
    return check_frame(frame)


def check_frame(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty or len(frame.columns) == 0:
        raise ValidationFailed("reference data has no rows", details={"field": "file"})
    if len(frame) > MAX_REFERENCE_ROWS:
        raise ValidationFailed(
            f"reference data has {len(frame):,} rows; at most {MAX_REFERENCE_ROWS:,} are kept "
            "(sample it first)",
            details={"field": "file"},
        )
    frame = frame.copy()
    frame.columns = [str(c) for c in frame.columns]
    if len(set(frame.columns)) != len(frame.columns):
        raise ValidationFailed("reference data has duplicate column names")
    return frame


def to_parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def from_parquet(data: bytes) -> pd.DataFrame:
    import pandas as pd

    return pd.read_parquet(io.BytesIO(data))


def from_mlflow(registry: Registry, model_name: str, version: str) -> tuple[pd.DataFrame, str]:
    """The version's reference data and where it came from; NotFound when none was logged."""
    import mlflow

    mv = registry._call(lambda: registry.client.get_model_version(model_name, version))
    run_id = getattr(mv, "run_id", None)
    with tempfile.TemporaryDirectory() as tmp:
        if run_id:
            artifacts: list[str] = []
            for folder in (None, "reference"):
                try:
                    artifacts += [a.path for a in registry.client.list_artifacts(run_id, folder)]
                except Exception:
                    continue
            for name in ARTIFACT_NAMES:
                for path in (name, f"reference/{name}"):
                    if path in artifacts:
                        local = mlflow.artifacts.download_artifacts(
                            run_id=run_id,
                            artifact_path=path,
                            dst_path=tmp,
                            tracking_uri=registry.tracking_uri,
                        )
                        frame = read_table(Path(local).read_bytes(), name)
                        return frame, f"mlflow run {run_id} artifact {path}"
        frame = _input_example(registry, model_name, version, tmp)
        if frame is not None:
            return frame, f"input example of models:/{model_name}/{version}"
    raise NotFound(
        f"models:/{model_name}/{version} has no logged reference data: log a "
        f"{ARTIFACT_NAMES[0]!r} artifact with the run, or upload one with "
        "'modeldeck reference set'",
        details={"model": model_name, "version": version},
    )


def _input_example(registry: Registry, model_name: str, version: str, tmp: str) -> Any:
    import mlflow
    from mlflow.models import Model

    try:
        root = registry.client.get_model_version_download_uri(model_name, version)
        local = mlflow.artifacts.download_artifacts(artifact_uri=root, dst_path=tmp)
        example = Model.load(local).load_input_example(local)
    except Exception as exc:  # no example, or one MLflow cannot read back
        log.info("no input example for %s/%s: %s", model_name, version, exc)
        return None
    import pandas as pd

    if isinstance(example, pd.DataFrame) and not example.empty:
        return check_frame(example)
    return None
