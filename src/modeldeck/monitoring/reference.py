"""Reference data: what a model was trained on, the baseline that drift is measured against.

It comes from one of three places, tried in this order by :func:`from_mlflow`:

1. an artifact of the version's MLflow run named ``reference_data.parquet`` / ``.csv`` or
   ``training_data.parquet`` / ``.csv`` (at the run's root or under ``reference/``);
2. the model's logged input example (a few rows only: good enough to see the columns, too few
   for a meaningful drift test, and the reference says so);

or it is uploaded explicitly (``modeldeck reference set NAME data.parquet``).

:class:`References` keeps each deployment's (and each version's) in the store, as Parquet.
"""

from __future__ import annotations

import io
import logging
import math
import tempfile
import time
import uuid as uuidlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select

from modeldeck.errors import ModeldeckError, NotFound, ValidationFailed
from modeldeck.monitoring.config import find_deployment
from modeldeck.monitoring.drift import stats
from modeldeck.store import Store
from modeldeck.store.schema import (
    AnalysisSummaryRow,
    DeploymentRow,
    ReferenceDataRow,
    VersionScoreRow,
)

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
REFETCH_SECONDS = 600.0
"""How long a deployment whose registry logged no reference data is not asked again."""


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


class References:
    """The reference data of each deployment (and of its versions) in the store.

    Storing a reference scores the version it is for on it, with ``score`` (the version's
    confidence estimator is then ready for the next report).
    """

    def __init__(
        self,
        store: Store,
        registry: Registry,
        score: Callable[[DeploymentRow, str, Reference], dict[str, Any]],
    ) -> None:
        self.store = store
        self.registry = registry
        self._score = score
        self._fetch_failed: dict[tuple[str, str], float] = {}

    def set(
        self,
        name: str,
        frame: pd.DataFrame,
        *,
        source: str,
        model_version: str = "",
        target_column: str | None = None,
        prediction_column: str | None = None,
    ) -> dict[str, Any]:
        """Store ``frame`` as the reference of a deployment (or of one of its versions)."""
        frame = check_frame(frame)
        for what, column in (
            ("target_column", target_column),
            ("prediction_column", prediction_column),
        ):
            if column is not None and column not in frame.columns:
                raise ValidationFailed(
                    f"{what} {column!r} is not a column of the reference data "
                    f"(columns: {', '.join(frame.columns)})",
                    details={"field": what},
                )
        deployment = find_deployment(self.store, name)
        columns = [
            {"name": c, "kind": stats.column_kind(frame[c]), "dtype": str(frame[c].dtype)}
            for c in frame.columns
        ]
        data = to_parquet(frame)
        with self.store.write() as session:
            session.execute(
                delete(ReferenceDataRow).where(
                    ReferenceDataRow.deployment_id == deployment.id,
                    ReferenceDataRow.model_version == model_version,
                )
            )
            row = ReferenceDataRow(
                id=str(uuidlib.uuid4()),
                deployment_id=deployment.id,
                model_version=model_version,
                source=source,
                rows=len(frame),
                columns=columns,
                target_column=target_column,
                prediction_column=prediction_column,
                data=data,
            )
            session.add(row)
            session.execute(
                delete(AnalysisSummaryRow).where(
                    AnalysisSummaryRow.deployment_id == deployment.id,
                    AnalysisSummaryRow.kind.like("drift/%"),
                )
            )
            session.flush()
            session.refresh(row)
        # The version the reference is for is scored on it now (its estimator ready for the
        # next report); other versions are scored in the background (score_versions).
        reference = Reference(frame, row)
        found = self._score(deployment, model_version or deployment.model_version, reference)
        reference.estimator = found.get("estimator") is not None
        return reference.summary()

    def from_registry(self, name: str, model_version: str | None = None) -> dict[str, Any]:
        """Take the reference data from what was logged with the MLflow run or model."""
        deployment = find_deployment(self.store, name)
        if deployment.source != "registry":
            raise ValidationFailed(
                f"deployment {name!r} does not serve a registered model; upload reference data",
                details={"deployment": name},
            )
        version = model_version or deployment.model_version
        frame, source = from_mlflow(self.registry, deployment.model_name, version)
        return self._set_logged(name, deployment, model_version, frame, source)

    def _set_logged(
        self,
        name: str,
        deployment: DeploymentRow,
        model_version: str | None,
        frame: pd.DataFrame,
        source: str,
    ) -> dict[str, Any]:
        """Store reference data logged in MLflow, its label column guessed."""
        target = guess_target(frame, deployment.signature)
        return self.set(
            name,
            frame,
            source=source,
            model_version=model_version or "",
            target_column=target,
        )

    def get(self, name: str, model_version: str | None = None) -> Reference:
        deployment = find_deployment(self.store, name)
        with self.store.read() as session:
            rows = {
                r.model_version: r
                for r in session.scalars(
                    select(ReferenceDataRow).where(ReferenceDataRow.deployment_id == deployment.id)
                )
            }
        row = rows.get(model_version or "") or rows.get("")
        if row is None and model_version is None and len(rows) == 1:
            row = next(iter(rows.values()))
        if row is None and not rows:
            logged = self._logged(deployment, model_version)
            if logged is not None:  # first use: stored (and scored) once, as set() does
                self._set_logged(name, deployment, model_version, *logged)
                return self.get(name, model_version)
        if row is None:
            raise NotFound(
                f"deployment {name!r} has no reference data"
                + (f" for version {model_version}" if model_version else "")
                + "; set it with 'modeldeck reference set' or from the registry",
                details={"deployment": name},
            )
        reference = Reference(from_parquet(row.data), row)
        version = model_version or row.model_version or deployment.model_version
        with self.store.read() as session:
            estimator = session.scalar(
                select(VersionScoreRow.estimator).where(
                    VersionScoreRow.reference_id == row.id,
                    VersionScoreRow.model_version == version,
                )
            )
        reference.estimator = estimator is not None
        return reference

    def _logged(
        self, deployment: DeploymentRow, model_version: str | None
    ) -> tuple[pd.DataFrame, str] | None:
        """The reference data logged in MLflow for a deployment without any, downloaded once;
        ``None`` when there is none (then not looked for again for 10 minutes)."""
        if deployment.source != "registry":
            return None
        key = (deployment.id, model_version or deployment.model_version)
        now = time.monotonic()
        if now - self._fetch_failed.get(key, -math.inf) < REFETCH_SECONDS:
            return None
        try:
            return from_mlflow(self.registry, deployment.model_name, key[1])
        except ModeldeckError:
            self._fetch_failed[key] = now
            return None

    def delete(self, name: str, model_version: str = "") -> None:
        deployment = find_deployment(self.store, name)
        with self.store.write() as session:
            result = session.execute(
                delete(ReferenceDataRow).where(
                    ReferenceDataRow.deployment_id == deployment.id,
                    ReferenceDataRow.model_version == model_version,
                )
            )
            if not getattr(result, "rowcount", 0):
                raise NotFound(f"deployment {name!r} has no such reference data")


@dataclass
class Reference:
    frame: pd.DataFrame
    row: ReferenceDataRow
    estimator: bool = False  # the version it is for has a confidence estimator calibrated on it

    @property
    def features(self) -> list[str]:
        skip = {self.row.target_column, self.row.prediction_column}
        return [c for c in self.frame.columns if c not in skip]

    def summary(self) -> dict[str, Any]:
        return {
            "model_version": self.row.model_version or None,
            "source": self.row.source,
            "rows": self.row.rows,
            "columns": self.row.columns,
            "target_column": self.row.target_column,
            "prediction_column": self.row.prediction_column,
            "estimator": self.estimator,
            "created_at": self.row.created_at.isoformat() if self.row.created_at else None,
        }


def guess_target(frame: pd.DataFrame, signature: Mapping[str, Any] | None) -> str | None:
    """The label column of logged training data: the one column the model does not take; for
    a signature without column names (none, or tensors) a column of a usual label name."""
    inputs = (signature or {}).get("inputs") or []
    names = {
        c.get("name")
        for c in inputs
        if isinstance(c, dict) and c.get("name") and c.get("type") != "tensor"
    }
    if not names:
        for candidate in ("target", "label", "y", "actual_result"):
            if candidate in frame.columns:
                return candidate
        return None
    extra = [c for c in frame.columns if c not in names]
    return extra[0] if len(extra) == 1 else None


def reference_ids(session: Any, deployment_id: str) -> dict[str, str]:
    """A deployment's reference rows: model version ("" for the deployment's) -> id."""
    return {
        version: reference_id
        for version, reference_id in session.execute(
            select(ReferenceDataRow.model_version, ReferenceDataRow.id).where(
                ReferenceDataRow.deployment_id == deployment_id
            )
        )
    }


def resolve_reference(references: Mapping[str, str], version: str) -> str | None:
    """The reference a version is scored on (:meth:`AnalysisService.scoring_reference`): its
    own, else the deployment's, else the only one there is."""
    found = references.get(version) or references.get("")
    if found is None and len(references) == 1:
        found = next(iter(references.values()))
    return found
