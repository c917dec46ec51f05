"""Each model version scored on the labelled reference data, and stored.

Scoring runs the version's model on its reference
(:mod:`modeldeck.monitoring.performance.scoring`), once per reference and version: it gives
the version's realised metrics on the reference and its own confidence estimator, which
estimated performance needs. It is work for
the background (the platform's summaries, a canary's start) and for storing a reference:
reports only read stored scores (but for the reference taken from MLflow on first use, see
:mod:`modeldeck.monitoring.analysis`).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from modeldeck.monitoring.config import find_deployment
from modeldeck.monitoring.performance import scoring
from modeldeck.monitoring.reference import reference_ids, resolve_reference
from modeldeck.records.model_metrics import now_ms
from modeldeck.store import Store
from modeldeck.store.schema import DeploymentRow, VersionScoreRow

if TYPE_CHECKING:
    from modeldeck.monitoring.reference import Reference
    from modeldeck.registry import Registry

log = logging.getLogger(__name__)


class VersionScores:
    """The scores of a store's deployments' versions on their references."""

    def __init__(self, store: Store, registry: Registry) -> None:
        self.store = store
        self.registry = registry
        self._scoring = threading.Lock()

    def stored(
        self, name: str, version: str, *, on_version: str | None = None
    ) -> dict[str, Any] | None:
        """The stored score of ``version`` on the reference of ``on_version`` (default: its
        own); ``None`` while it is not scored (or there is no reference data)."""
        deployment = find_deployment(self.store, name)
        with self.store.read() as session:
            references = reference_ids(session, deployment.id)
            reference_id = resolve_reference(references, on_version or version)
            if reference_id is None:
                return None
            row = session.get(VersionScoreRow, (reference_id, version))
            return None if row is None else score_view(row)

    def score(
        self, deployment: DeploymentRow, version: str, reference: Reference
    ) -> dict[str, Any]:
        key = (reference.row.id, version)
        with self._scoring:  # one at a time: each loads a model
            with self.store.read() as session:
                row = session.get(VersionScoreRow, key)
                if row is not None:
                    return score_view(row)
            found = self._compute(deployment, version, reference)
            for note in found.notes:
                log.info("version %s of %s: %s", version, deployment.name, note)
            row = VersionScoreRow(
                reference_id=reference.row.id,
                model_version=version,
                deployment_id=deployment.id,
                status=found.status,
                reason=found.reason or "; ".join(found.notes),
                estimator=found.estimator,
                metrics=found.metrics,
                rows=found.rows,
                scored_ms=now_ms(),
            )
            view = score_view(row)
            try:
                with self.store.write() as session:
                    session.merge(row)
            except Exception as exc:  # the reference replaced meanwhile: scored again later
                log.warning("could not store the score of version %s: %s", version, exc)
            return view

    def _compute(
        self, deployment: DeploymentRow, version: str, reference: Reference
    ) -> scoring.Score:
        """Run ``version``'s model (scikit-learn models only: no user code runs in the control
        plane) on the reference and score it against the reference's labels."""
        if deployment.source != "registry":
            return scoring.Score.unavailable("the deployment does not serve a registered model")
        if reference.row.target_column is None:
            return scoring.Score.unavailable("the reference data has no label column")
        try:
            import mlflow

            mlflow.set_tracking_uri(self.registry.tracking_uri)  # for the artifact store
            source = self.registry.model_source(deployment.model_name, version)
            model = mlflow.sklearn.load_model(source)
        except Exception as exc:  # not an sklearn model, or gone from the registry
            return scoring.Score.unavailable(
                f"version {version} cannot be loaded as a scikit-learn model: {exc}"
            )
        return scoring.score(
            model, reference.frame, reference.features, reference.row.target_column
        )


def score_view(row: VersionScoreRow) -> dict[str, Any]:
    return {
        "model_version": row.model_version,
        "reference_id": row.reference_id,
        "status": row.status,
        "reason": row.reason,
        "estimator": row.estimator or None,
        "metrics": row.metrics or None,
        "rows": row.rows,
    }
