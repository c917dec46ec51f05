"""Drift, performance and data quality of a deployment over a time window: the one entry
point the API, the CLI (through the client), alerts, the HTML report, the gauges and canaries
call. :class:`AnalysisService` only composes the modules that do the work:

* :mod:`modeldeck.monitoring.config`: the settings (``MonitoringConfig``);
* :mod:`modeldeck.monitoring.reference`: the reference data, uploaded or logged in MLflow;
* :mod:`modeldeck.monitoring.drift.service`: data and prediction drift
  (:mod:`~modeldeck.monitoring.drift.plan` summarises records,
  :mod:`~modeldeck.monitoring.drift.stats` tests them);
* :mod:`modeldeck.monitoring.quality_service`: data quality, read off the drift summaries
  (:mod:`modeldeck.monitoring.quality` checks them);
* :mod:`modeldeck.monitoring.performance.service`: realised and estimated performance, from
  the SQL of :mod:`~modeldeck.monitoring.performance.queries`;
* :mod:`modeldeck.monitoring.performance.versions`: each version scored on the reference;
* :mod:`modeldeck.monitoring.summaries.store`: the stored five-minute and hourly summaries
  reports are assembled from, which :meth:`AnalysisService.refresh_summaries` keeps current
  in the background.

Shadow copies are linked to the stable prediction they copy (``shadow_links``): ground truth
for the stable prediction labels its copy too.

What a report writes, and why it still does. The statistics are pure and the reports read
their windows from the store, but three writes stay on the read path, each because moving it
would make reports wrong or slower:

* **Journal absorption** (:func:`modeldeck.records.journal.absorb`, SQLite only): predictions
  replicas acknowledged and journaled but not committed yet are inserted before a report reads
  (idempotent, by UUID). Reports aggregate in SQL, so the rows must be in the store; without it
  a report would miss up to a group interval of answered predictions. The background loop only
  absorbs the journals of stopped replicas.
* **Reference data on first use** (:meth:`References.get
  <modeldeck.monitoring.reference.References.get>`): a registry deployment without reference
  data takes what was logged with its MLflow run (downloaded once; a miss is not looked for
  again for 10 minutes), stores it and scores its version on it, as an upload does. The
  background round (:meth:`AnalysisService.refresh_summaries`) does the same; left to it
  alone, a new deployment's first reports would answer 404, then have no estimated
  performance, for up to a round (``summary_interval_seconds``).
* **Summaries** (:mod:`modeldeck.monitoring.summaries.store`): a stale or missing five-minute
  or hourly summary that a report needs is built from the records and stored. The background
  round keeps the last day and a stretch of the retention current; left to it alone, every
  report over a window it has not reached (or whose buckets late labels made stale) would
  build the same buckets from the records again, call after call.

Everything else a report calls only reads: drift, quality and performance of a window, stored
version scores and estimators. Versions are scored by :meth:`AnalysisService.score_version`
and :meth:`AnalysisService.refresh_summaries` (background work, a canary's start, storing a
reference), never by a report but for a reference's own version on first use (above).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select

from modeldeck.errors import NotFound, ValidationFailed
from modeldeck.monitoring.config import (
    MonitoringConfig,
    deployment_in,
    drift_inputs,
    find_deployment,
    performance_signature,
)
from modeldeck.monitoring.drift import stats
from modeldeck.monitoring.drift.plan import drift_plan
from modeldeck.monitoring.drift.service import DriftService
from modeldeck.monitoring.performance.queries import PerformanceQueries
from modeldeck.monitoring.performance.service import PerformanceService
from modeldeck.monitoring.performance.versions import VersionScores
from modeldeck.monitoring.quality_service import QualityService
from modeldeck.monitoring.reference import Reference, References
from modeldeck.monitoring.summaries import parts
from modeldeck.monitoring.summaries.store import SummaryStore
from modeldeck.monitoring.windows import PRESETS, Window, fit_window
from modeldeck.records.journal import absorb
from modeldeck.records.model_metrics import now_ms
from modeldeck.store import Store
from modeldeck.store.schema import AnalysisSummaryRow, PredictionRow

if TYPE_CHECKING:
    from modeldeck.registry import Registry


class AnalysisService:
    """Drift, quality and performance reports, reference data, version scores and the
    background summaries of one store's deployments: the concern modules, composed."""

    def __init__(
        self, store: Store, registry: Registry, *, summaries: bool = True, hourly: bool = True
    ) -> None:
        """``summaries=False`` computes every report from the raw records, ``hourly=False``
        from five-minute summaries only (for comparisons)."""
        self.store = store
        self.registry = registry
        self.summary_store = SummaryStore(store, summaries=summaries, hourly=hourly)
        self.scores = VersionScores(store, registry)
        self.references = References(store, registry, self.scores.score)
        self._drift = DriftService(store, self.references, self.summary_store)
        self._quality = QualityService(store, self.references, self._drift)
        self._performance = PerformanceService(store, self.summary_store, PerformanceQueries(store))
        self._backfill: dict[str, int] = {}  # deployment id: the oldest hour summarised lately
        # The reports and the reference data, as their modules give them.
        self.drift = self._drift.drift
        self.quality = self._quality.quality
        self.performance = self._performance.performance
        self.set_reference = self.references.set
        self.reference_from_registry = self.references.from_registry
        self.reference = self.references.get
        self.delete_reference = self.references.delete
        self.version_score = self.scores.stored

    # -- configuration ------------------------------------------------------------------------

    def config(self, name: str) -> MonitoringConfig:
        return MonitoringConfig.of(find_deployment(self.store, name))

    def set_config(self, name: str, config: MonitoringConfig) -> MonitoringConfig:
        for column, override in config.overrides.items():
            if override.method is not None and override.method not in stats.METHODS:
                raise ValidationFailed(
                    f"unknown drift method {override.method!r} for column {column!r}; "
                    f"methods: {', '.join(stats.METHODS)}",
                    details={"field": f"overrides.{column}.method"},
                )
        with self.store.write() as session:
            row = deployment_in(session, name)
            before = MonitoringConfig.of(row)
            row.monitoring = config.model_dump(exclude_defaults=True)
            # Summaries hold what the settings make of the records, not verdicts: methods,
            # thresholds, drift_share, top_k and max_rows apply when a report is read. Only
            # the summaries whose inputs changed are dropped (they would never match again).
            stale = []
            if performance_signature(before) != performance_signature(config):
                stale.append(AnalysisSummaryRow.kind.in_(("performance", "performance/h")))
            if drift_inputs(before) != drift_inputs(config):
                stale.append(AnalysisSummaryRow.kind.like("drift/%"))
            for kinds in stale:
                session.execute(
                    delete(AnalysisSummaryRow).where(
                        AnalysisSummaryRow.deployment_id == row.id, kinds
                    )
                )
        return config

    # -- summaries ----------------------------------------------------------------------------

    def refresh_summaries(
        self,
        name: str,
        *,
        hours: int = 24,
        backfill_hours: int = 0,
        oldest_ms: int | None = None,
    ) -> None:
        """Build the summaries of the last ``hours`` that are missing or stale, and score each
        version seen in them that has no score on its reference yet.

        With ``backfill_hours``, also those of that many whole hours further back: each call
        takes the stretch below the one the previous call took, down to ``oldest_ms`` (the
        retention), then starts again below the last ``hours`` (so that late labels for an old
        hour are taken in on the next round). The work per call stays bounded while the
        summaries of the whole retention become, and stay, current.

        The platform calls this in the background, so that reports find them ready.
        """
        end = now_ms() // parts.BUCKET_MS * parts.BUCKET_MS
        start = end - hours * 3_600_000
        deployment = find_deployment(self.store, name)
        windows = [(start, end)]
        if backfill_hours > 0 and oldest_ms is not None:
            older = self._backfill_stretch(deployment.id, start, oldest_ms, backfill_hours)
            if older is not None:
                windows.append(older)
        report = self.performance(name, start_ms=start, end_ms=end)
        for lo, hi in windows[1:]:
            self.performance(name, start_ms=lo, end_ms=hi)
        config = MonitoringConfig.of(deployment)
        try:
            reference = self.references.get(name)
        except NotFound:
            return  # no reference data: no drift to summarise, no version to score
        plan = drift_plan(reference, config)
        for lo, hi in windows:
            self._drift.merged_part(deployment, config, plan, lo, hi, None)
        # Each version that served lately gets its own estimator (scored once).
        versions = {deployment.model_version, *(w["model_version"] for w in report["windows"])}
        self.score_versions(name, versions)

    def _backfill_stretch(
        self, deployment_id: str, recent_ms: int, oldest_ms: int, hours: int
    ) -> tuple[int, int] | None:
        """The next ``hours`` whole hours to summarise below ``recent_ms``, going down to
        ``oldest_ms`` and then from the top again; None when there is nothing older."""
        hour = parts.HOUR_MS
        top = -(-recent_ms // hour) * hour  # the hour the recent window is whole from
        bottom = -(-oldest_ms // hour) * hour
        if top <= bottom:
            return None
        cursor = self._backfill.get(deployment_id, top)
        if cursor <= bottom or cursor > top:
            cursor = top  # a round is over (or the retention moved): start again
        low = max(cursor - hours * hour, bottom)
        self._backfill[deployment_id] = low
        return low, cursor

    # -- the window a view shows ------------------------------------------------------------

    def window(
        self, name: str, *, span_ms: int | None = None, step_ms: int | None = None
    ) -> Window:
        """The range and step to show ``name`` over when the caller names neither: from its
        first prediction (in the longest preset) to now, rounded up to a preset, in about 12
        to 60 windows that start on whole steps (:func:`~modeldeck.monitoring.windows.fit_window`).
        A given ``span_ms`` or ``step_ms`` wins."""
        absorb(self.store)  # predictions replicas journaled and not committed yet
        deployment = find_deployment(self.store, name)
        now = now_ms()
        oldest = now - PRESETS[-1][1] * 1000
        query = select(func.min(PredictionRow.end_ms)).where(
            PredictionRow.deployment_id == deployment.id, PredictionRow.end_ms >= oldest
        )
        with self.store.read() as session:
            first = session.scalar(query)
        return fit_window(
            now, None if first is None else int(first), span_ms=span_ms, step_ms=step_ms
        )

    # -- versions scored on the reference -----------------------------------------------------

    def scoring_reference(self, name: str, version: str) -> Reference:
        """The reference a version is scored on: its own, else the deployment's."""
        try:
            return self.references.get(name, version)
        except NotFound:
            return self.references.get(name)

    def score_version(
        self, name: str, version: str, *, on_version: str | None = None
    ) -> dict[str, Any]:
        """``version``'s score on the reference of ``on_version`` (default: its own): the stored
        one, else computed now (the model loaded and run on the reference) and stored.

        Background work (the platform's summaries, a canary's start): reports only read stored
        scores. Raises 404 when there is no reference data.
        """
        deployment = find_deployment(self.store, name)
        reference = self.scoring_reference(name, on_version or version)
        return self.scores.score(deployment, version, reference)

    def score_versions(self, name: str, versions: Iterable[str]) -> None:
        """Score each of ``versions`` that has no stored score on its reference yet."""
        for version in sorted(set(versions)):
            if version and self.version_score(name, version) is None:
                try:
                    self.score_version(name, version)
                except NotFound:
                    return  # no reference data (yet)
