"""The load driver: :func:`run` sends a generator's records to a deployment's endpoint over
HTTP (threads, a target rate, a concurrency limit, a number of requests or a duration) and
each answered prediction's label as a delayed metric ``label_delay`` seconds after its answer."""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from modeldeck.errors import ModeldeckError, ValidationFailed
from modeldeck.simulate.generator import Generator, Sample
from modeldeck.simulate.options import planned_requests

if TYPE_CHECKING:
    import httpx

    from modeldeck.client import Client
    from modeldeck.views import DeploymentView

LABEL_BATCH = 1000
ERRORS_KEPT = 10


@dataclass
class Prediction:
    """One request as sent and answered, and its label as delivered."""

    index: int
    record: dict[str, Any]
    label: Any
    status: int | None = None
    """HTTP status; None when no answer came (connection error, timeout)."""
    uuid: str | None = None
    latency_ms: float | None = None
    answered_at: float | None = None
    """When the answer arrived, seconds since the epoch."""
    error: str | None = None
    label_sent_at: float | None = None
    """When the label was delivered as a delayed metric, seconds since the epoch."""


@dataclass(frozen=True)
class Progress:
    """A run's state, handed to ``on_progress`` about ten times a second."""

    phase: Literal["traffic", "labels", "done"]
    sent: int
    ok: int
    failed: int
    planned: int | None
    elapsed: float
    duration: float | None
    labels_sent: int
    labels_pending: int
    next_label_in: float | None


@dataclass
class Result:
    """What a run sent and how the deployment answered."""

    deployment: str
    seed: int
    source: str
    sent: int
    ok: int
    failed: int
    failures: dict[str, int]
    """Failed requests by HTTP status, or by error type when no answer came."""
    seconds: float
    rps: float
    latency_ms: dict[str, float | None]
    """p50, p95 and p99 over every answered request, in milliseconds."""
    drift_start: int | None
    flip_after: int | None
    labels_sent: int
    labels_failed: int
    label_delay: float
    label_key: str
    errors: list[str] = field(default_factory=list)
    """The first distinct error messages."""
    predictions: list[Prediction] = field(default_factory=list)
    """Every request in index order: record, label, status, UUID, latency."""

    def to_dict(self, *, predictions: bool = False) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "predictions"}
        if predictions:
            out["predictions"] = [asdict(p) for p in self.predictions]
        return out


class _LabelSender:
    """Sends each queued label once its time has come, in batches, from a thread of its own."""

    def __init__(self, client: Client, deployment: str, label_key: str, delay: float) -> None:
        self.client = client
        self.deployment = deployment
        self.label_key = label_key
        self.delay = delay
        self.sent = 0
        self.failed = 0
        self.errors: list[str] = []
        self.failure: BaseException | None = None
        self._heap: list[tuple[float, int, Prediction]] = []
        self._in_flight = 0
        self._closed = False
        self._aborted = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="simulate-labels", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, prediction: Prediction, answered: float) -> None:
        with self._cond:
            heapq.heappush(self._heap, (answered + self.delay, prediction.index, prediction))
            self._cond.notify()

    def close(self) -> None:
        """No more labels: send what is queued when its time comes, then stop."""
        with self._cond:
            self._closed = True
            self._cond.notify()

    def abort(self) -> None:
        with self._cond:
            self._aborted = True
            self._cond.notify()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def pending(self) -> tuple[int, float | None]:
        """Labels not delivered yet, and seconds until the next is due."""
        with self._cond:
            due = self._heap[0][0] - time.monotonic() if self._heap else None
            return len(self._heap) + self._in_flight, None if due is None else max(0.0, due)

    def _loop(self) -> None:
        try:
            while True:
                with self._cond:
                    while True:
                        if self._aborted:
                            return
                        if self._heap:
                            wait = self._heap[0][0] - time.monotonic()
                            if wait <= 0:
                                break
                            self._cond.wait(wait)
                        elif self._closed:
                            return
                        else:
                            self._cond.wait()
                    now = time.monotonic()
                    batch: list[Prediction] = []
                    while self._heap and self._heap[0][0] <= now and len(batch) < LABEL_BATCH:
                        batch.append(heapq.heappop(self._heap)[2])
                    self._in_flight = len(batch)
                try:
                    self._send(batch)
                finally:
                    with self._cond:
                        self._in_flight = 0
        except BaseException as exc:  # re-raised by run() in the caller's thread
            self.failure = exc

    def _send(self, batch: list[Prediction]) -> None:
        items = [(p.uuid or "", {self.label_key: p.label}) for p in batch]
        try:
            self.client.track_delayed_metrics_batch(self.deployment, items)
        except ModeldeckError as exc:
            self.failed += len(batch)
            if len(self.errors) < ERRORS_KEPT:
                self.errors.append(f"ground truth: {exc}")
            return
        delivered = time.time()
        for p in batch:
            p.label_sent_at = delivered
        self.sent += len(batch)


class _Traffic:
    """Worker threads share one request counter; request ``i`` leaves at ``t0 + i / rate``."""

    def __init__(
        self,
        generator: Generator,
        http: httpx.Client,
        path: str,
        labels: _LabelSender | None,
        requests: int | None,
        duration: float | None,
        rate: float | None,
    ) -> None:
        self.generator = generator
        self.http = http
        self.path = path
        self.labels = labels
        self.requests = requests
        self.rate = rate
        self.t0 = time.monotonic()
        self.deadline = None if duration is None else self.t0 + duration
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.next_index = 0
        self.predictions: list[Prediction] = []
        self.ok = 0
        self.failed = 0
        self.last_answer = self.t0
        self.failure: BaseException | None = None

    def worker(self) -> None:
        try:
            while not self.stop.is_set():
                claimed = self._claim()
                if claimed is None:
                    return
                at, sample = claimed
                wait = at - time.monotonic()
                if wait > 0 and self.stop.wait(wait):
                    return
                self._send(sample)
        except BaseException as exc:  # re-raised by run() in the caller's thread
            self.failure = exc
            self.stop.set()

    def _claim(self) -> tuple[float, Sample] | None:
        with self.lock:
            index = self.next_index
            if self.requests is not None and index >= self.requests:
                return None
            at = self.t0 + index / self.rate if self.rate else time.monotonic()
            if self.deadline is not None and max(at, time.monotonic()) >= self.deadline:
                return None
            sample = self.generator.sample(index)
            self.next_index += 1
            return at, sample

    def _send(self, sample: Sample) -> None:
        import httpx

        prediction = Prediction(sample.index, sample.record, sample.label)
        started = time.perf_counter()
        try:
            response = self.http.post(self.path, json={"dataframe_records": [sample.record]})
        except httpx.HTTPError as exc:
            prediction.error = f"{type(exc).__name__}: {exc}"
        else:
            prediction.status = response.status_code
            if response.status_code == 200:
                prediction.uuid = str(response.json()["uuid"])
            else:
                prediction.error = _error_message(response)
        answered = time.monotonic()
        if prediction.status is not None:
            prediction.latency_ms = (time.perf_counter() - started) * 1000
        prediction.answered_at = time.time()
        with self.lock:
            self.predictions.append(prediction)
            self.last_answer = max(self.last_answer, answered)
            if prediction.uuid is not None:
                self.ok += 1
            else:
                self.failed += 1
        if prediction.uuid is not None and prediction.label is not None and self.labels:
            self.labels.put(prediction, answered)


def _error_message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error") or {}
        message = str(error.get("message") or response.text[:200])
    except (ValueError, AttributeError):
        message = response.text[:200]
    return f"{response.status_code}: {message}"


def run(
    client: Client,
    deployment: str | DeploymentView,
    generator: Generator,
    *,
    requests: int | None = None,
    duration: float | None = None,
    rate: float | None = None,
    concurrency: int = 4,
    access_key: str | None = None,
    label_delay: float = 0.0,
    label_key: str = "actual_result",
    timeout: float = 30.0,
    on_progress: Callable[[Progress], None] | None = None,
    source: str | None = None,
) -> Result:
    """Send ``generator``'s requests to ``deployment`` and, ``label_delay`` seconds after each
    answered prediction, its label as the delayed metric ``label_key``.

    Stops after ``requests`` requests or ``duration`` seconds, whichever comes first. With a
    ``rate``, request ``i`` leaves ``i / rate`` seconds after the start (never earlier; later
    when ``concurrency`` requests are already waiting for answers); without one, each of the
    ``concurrency`` workers sends its next request as soon as its last is answered. Returns
    once every label is delivered, so the call lasts at least ``label_delay`` longer than the
    traffic. ``on_progress`` is called from the calling thread. ``deployment`` is a name or
    the deployment as :meth:`Client.deployment` returns it; ``source`` is the name the result
    gives the source (default: the generator's).
    """
    import httpx

    if requests is None and duration is None:
        raise ValidationFailed("give a number of requests or a duration")
    if requests is not None and requests < 0:
        raise ValidationFailed("the number of requests must not be negative")
    if duration is not None and duration <= 0:
        raise ValidationFailed("the duration must be positive")
    if rate is not None and rate <= 0:
        raise ValidationFailed("the rate must be positive")
    if concurrency < 1:
        raise ValidationFailed("concurrency must be at least 1")
    if label_delay < 0:
        raise ValidationFailed("the label delay must not be negative")
    info = client.deployment(deployment) if isinstance(deployment, str) else deployment
    name = info.name
    if info.kind == "batch":
        raise ValidationFailed(f"deployment {name!r} is a batch deployment: it has no endpoint")
    if info.status != "deployed":
        raise ValidationFailed(
            f"deployment {name!r} is {info.status}, not deployed",
            details={"deployment": name},
        )
    if info.auth_enabled and not access_key:
        raise ValidationFailed(
            f"deployment {name!r} requires its access key (--access-key or MODELDECK_ACCESS_KEY)",
            details={"deployment": name},
        )
    generator.sample(0)  # a rule or a labeler that cannot work fails here, before any traffic
    planned = planned_requests(requests, duration, rate)
    headers = {"Authorization": f"Bearer {access_key}"} if access_key else {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    labels = _LabelSender(client, name, label_key, label_delay) if generator.has_labels else None
    with httpx.Client(base_url=client.url, headers=headers, timeout=timeout, limits=limits) as http:
        traffic = _Traffic(
            generator, http, f"/deployments/{name}/predict", labels, requests, duration, rate
        )

        def report(phase: Literal["traffic", "labels", "done"]) -> None:
            if on_progress is None:
                return
            pending, due = labels.pending() if labels else (0, None)
            with traffic.lock:
                ok, failed = traffic.ok, traffic.failed
            on_progress(
                Progress(
                    phase=phase,
                    sent=ok + failed,
                    ok=ok,
                    failed=failed,
                    planned=planned,
                    elapsed=time.monotonic() - traffic.t0,
                    duration=duration,
                    labels_sent=labels.sent if labels else 0,
                    labels_pending=pending,
                    next_label_in=due,
                )
            )

        workers = [
            threading.Thread(target=traffic.worker, name=f"simulate-{i}", daemon=True)
            for i in range(concurrency)
        ]
        try:
            if labels:
                labels.start()
            for worker in workers:
                worker.start()
            for worker in workers:
                while worker.is_alive():
                    report("traffic")
                    worker.join(0.1)
            if traffic.failure is not None:
                raise traffic.failure
            if labels:
                labels.close()
                while labels.is_alive():
                    report("labels")
                    labels.join(0.1)
                if labels.failure is not None:
                    raise labels.failure
            report("done")
        finally:
            traffic.stop.set()
            if labels:
                labels.abort()
            for worker in workers:
                worker.join(timeout + 1)
            if labels:
                labels.join(timeout + 1)
    predictions = sorted(traffic.predictions, key=lambda p: p.index)
    seconds = max(traffic.last_answer - traffic.t0, 1e-9)
    latencies = [p.latency_ms for p in predictions if p.status is not None]
    failures: dict[str, int] = {}
    errors: list[str] = []
    for p in predictions:
        if p.uuid is None:
            key = str(p.status) if p.status is not None else (p.error or "error").split(":")[0]
            failures[key] = failures.get(key, 0) + 1
            if p.error and p.error not in errors and len(errors) < ERRORS_KEPT:
                errors.append(p.error)
    if labels:
        errors.extend(labels.errors)
    return Result(
        deployment=name,
        seed=generator.seed,
        source=source or generator.source,
        sent=len(predictions),
        ok=traffic.ok,
        failed=traffic.failed,
        failures=failures,
        seconds=round(seconds, 3),
        rps=round(len(predictions) / seconds, 2) if predictions else 0.0,
        latency_ms=_percentiles([x for x in latencies if x is not None]),
        drift_start=generator.drift_start,
        flip_after=generator.flip_after,
        labels_sent=labels.sent if labels else 0,
        labels_failed=labels.failed if labels else 0,
        label_delay=label_delay,
        label_key=label_key,
        errors=errors,
        predictions=predictions,
    )


def _percentiles(latencies: list[float]) -> dict[str, float | None]:
    if not latencies:
        return {"p50": None, "p95": None, "p99": None}
    values = np.percentile(np.asarray(latencies), [50, 95, 99])
    return {name: round(float(v), 2) for name, v in zip(("p50", "p95", "p99"), values, strict=True)}
