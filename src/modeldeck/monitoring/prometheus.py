"""Prometheus metrics of the platform, on a registry the platform passes in.

Request metrics are observed by the gateway as requests pass. Replica CPU and memory, replica
states and deployment facts are produced at scrape time by a collector, from the supervisor's
state and the store, so nothing is kept in sync by hand; so are the autoscaler's wanted and set
replica counts (``AutoscaleCollector``), and drift, performance and label lag
(``QualityCollector``, from a snapshot kept by background work). Labels are bounded: deployment,
model version, replica index, status code, monitoring metric name; never a request or
prediction id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psutil
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from modeldeck.monitoring.gauges import QualityView
from modeldeck.store.schema import LATENCY_BOUNDS_MS

SIZE_BUCKETS = (100, 300, 1_000, 3_000, 10_000, 30_000, 100_000, 1_000_000, 5_242_880)


class RequestMetrics:
    """Counters and histograms of model-endpoint requests."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["deployment", "version", "replica"]
        self.requests = Counter(
            "modeldeck_requests",
            "Requests to model endpoints, by status code.",
            [*labels, "code"],
            registry=registry,
        )
        self.duration = Histogram(
            "modeldeck_request_duration_seconds",
            "Time from receiving a request to answering it.",
            labels,
            buckets=[b / 1000 for b in LATENCY_BOUNDS_MS],
            registry=registry,
        )
        self.request_size = Histogram(
            "modeldeck_request_size_bytes",
            "Size of request bodies.",
            labels,
            buckets=SIZE_BUCKETS,
            registry=registry,
        )
        self.response_size = Histogram(
            "modeldeck_response_size_bytes",
            "Size of response bodies.",
            labels,
            buckets=SIZE_BUCKETS,
            registry=registry,
        )
        self._children: dict[tuple[str, str, str], tuple[Any, Any, Any]] = {}
        self._codes: dict[tuple[str, str, str, int], Any] = {}

    def observe(
        self,
        deployment: str,
        version: str,
        replica: str,
        status: int,
        seconds: float,
        request_bytes: int,
        response_bytes: int,
    ) -> None:
        key = (deployment, version, replica)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.duration.labels(*key),
                self.request_size.labels(*key),
                self.response_size.labels(*key),
            )
        counter = self._codes.get((*key, status))
        if counter is None:
            counter = self._codes[(*key, status)] = self.requests.labels(*key, str(status))
        counter.inc()
        children[0].observe(seconds)
        children[1].observe(request_bytes)
        children[2].observe(response_bytes)


@dataclass
class ReplicaView:
    deployment: str
    version: str
    replica: int
    state: str
    pid: int | None


class PlatformCollector(Collector):
    """Replica resources and states, read from the supervisor when Prometheus scrapes."""

    def __init__(self, replicas: Callable[[], list[ReplicaView]]) -> None:
        self._replicas = replicas

    def collect(self) -> Iterator[Metric]:
        cpu = CounterMetricFamily(
            "modeldeck_replica_cpu_seconds",
            "CPU time (user + system) used by a replica process.",
            labels=["deployment", "version", "replica"],
        )
        rss = GaugeMetricFamily(
            "modeldeck_replica_resident_memory_bytes",
            "Resident memory of a replica process.",
            labels=["deployment", "version", "replica"],
        )
        states = GaugeMetricFamily(
            "modeldeck_replicas",
            "Replicas of a deployment by state.",
            labels=["deployment", "state"],
        )
        counts: dict[tuple[str, str], int] = {}
        for view in self._replicas():
            counts[(view.deployment, view.state)] = counts.get((view.deployment, view.state), 0) + 1
            if view.pid is None:
                continue
            try:
                proc = psutil.Process(view.pid)
                times = proc.cpu_times()
                memory = proc.memory_info().rss
            except psutil.Error:
                continue
            labels = [view.deployment, view.version, str(view.replica)]
            cpu.add_metric(labels, times.user + times.system)
            rss.add_metric(labels, memory)
        for (deployment, state), n in sorted(counts.items()):
            states.add_metric([deployment, state], n)
        yield cpu
        yield rss
        yield states


@dataclass
class AutoscaleView:
    deployment: str
    wanted: int  # the replicas the latest load wants, within the policy's bounds
    replicas: int  # the count the deployment is set to
    inflight: float  # mean requests in flight over the autoscaler's last interval


class AutoscaleCollector(Collector):
    """What the autoscaler wants and has set for each autoscaled deployment, at scrape time."""

    def __init__(self, views: Callable[[], list[AutoscaleView]]) -> None:
        self._views = views

    def collect(self) -> Iterator[Metric]:
        wanted = GaugeMetricFamily(
            "modeldeck_autoscaler_desired_replicas",
            "Replicas the latest load of an autoscaled deployment wants (within its bounds).",
            labels=["deployment"],
        )
        replicas = GaugeMetricFamily(
            "modeldeck_autoscaler_replicas",
            "Replicas an autoscaled deployment is set to (modeldeck_replicas: by state).",
            labels=["deployment"],
        )
        inflight = GaugeMetricFamily(
            "modeldeck_autoscaler_inflight_requests",
            "Mean requests in flight (queued included) over the autoscaler's last interval.",
            labels=["deployment"],
        )
        for view in self._views():
            wanted.add_metric([view.deployment], view.wanted)
            replicas.add_metric([view.deployment], view.replicas)
            inflight.add_metric([view.deployment], view.inflight)
        yield wanted
        yield replicas
        yield inflight


class QualityCollector(Collector):
    """Drift, data quality, performance and label lag of each deployment, from the snapshot
    the platform refreshes in the background (:class:`~modeldeck.monitoring.gauges.QualityGauges`):
    a scrape reads it and computes nothing."""

    def __init__(self, views: Callable[[], list[QualityView]]) -> None:
        self._views = views

    def collect(self) -> Iterator[Metric]:
        def gauge(name: str, doc: str, *extra: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=["deployment", *extra])

        window = gauge(
            "modeldeck_monitoring_window_seconds",
            "The trailing window the drift, performance and label gauges are computed over.",
        )
        updated = gauge(
            "modeldeck_monitoring_updated_timestamp_seconds",
            "When the drift, performance and label gauges were last computed (Unix seconds).",
        )
        predictions = gauge(
            "modeldeck_monitoring_predictions",
            "Predictions recorded in the monitoring window.",
        )
        labelled = gauge(
            "modeldeck_monitoring_labelled_predictions",
            "Predictions in the monitoring window that have their ground truth.",
        )
        share = gauge(
            "modeldeck_drift_columns_drifted_ratio",
            "Share of the monitored input columns that drifted from the reference data.",
        )
        dataset = gauge(
            "modeldeck_drift_dataset_drifted",
            "1 if the inputs drifted as a whole (share of drifted columns over the threshold).",
        )
        prediction = gauge(
            "modeldeck_drift_prediction_drifted",
            "1 if the model's output drifted from the reference data's target.",
        )
        realised = gauge(
            "modeldeck_model_performance",
            "Realised performance against ground truth (accuracy, f1_macro, rmse...).",
            "metric",
        )
        estimated = gauge(
            "modeldeck_model_estimated_performance",
            "Performance estimated from the model's confidence, before labels arrive.",
            "metric",
        )
        coverage = gauge(
            "modeldeck_label_coverage_ratio",
            "Share of the window's predictions that have their ground truth.",
        )
        lag = gauge(
            "modeldeck_label_lag_seconds",
            "Mean time from a prediction to its ground truth, over the window's labels.",
        )
        quality = gauge(
            "modeldeck_data_quality_ratio",
            "Share of the window's rows with a data-quality problem in an input column "
            "(problem: missing, type_violation, out_of_range, new_category).",
            "column",
            "problem",
        )
        unexpected = gauge(
            "modeldeck_data_quality_unexpected_columns",
            "Input columns seen in the window that the reference data does not have.",
        )
        for view in self._views():
            name = [view.deployment]
            window.add_metric(name, view.window_ms / 1000)
            updated.add_metric(name, view.computed_at_ms / 1000)
            predictions.add_metric(name, view.predictions)
            labelled.add_metric(name, view.labelled)
            if view.drifted_share is not None:
                share.add_metric(name, view.drifted_share)
            if view.dataset_drifted is not None:
                dataset.add_metric(name, float(view.dataset_drifted))
            if view.prediction_drifted is not None:
                prediction.add_metric(name, float(view.prediction_drifted))
            for metric, value in sorted(view.performance.items()):
                realised.add_metric([view.deployment, metric], value)
            for metric, value in sorted(view.estimated.items()):
                estimated.add_metric([view.deployment, metric], value)
            if view.label_coverage is not None:
                coverage.add_metric(name, view.label_coverage)
            if view.label_lag_seconds is not None:
                lag.add_metric(name, view.label_lag_seconds)
            for (column, problem), value in sorted(view.quality.items()):
                quality.add_metric([view.deployment, column, problem], value)
            if view.unexpected_columns is not None:
                unexpected.add_metric(name, view.unexpected_columns)
        yield from (window, updated, predictions, labelled, share, dataset, prediction)
        yield from (realised, estimated, coverage, lag, quality, unexpected)
