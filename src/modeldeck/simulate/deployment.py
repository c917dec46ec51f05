""":func:`simulate`: traffic and ground truth for one deployment of a platform, the data taken
from the deployment's reference data or a file and the labels named by a string; a
:class:`~modeldeck.simulate.generator.Generator` and :func:`~modeldeck.simulate.driver.run`
put together."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pandas as pd

from modeldeck.errors import ValidationFailed
from modeldeck.simulate.driver import Progress, Result, run
from modeldeck.simulate.expressions import Rule
from modeldeck.simulate.generator import Generator
from modeldeck.simulate.labels import Labeler, LabelOption, model_labeler
from modeldeck.simulate.options import FeatureDrift, Position, planned_requests

if TYPE_CHECKING:
    from modeldeck.client import Client

REFERENCE_ROWS = 10_000
"""Rows of the reference data that :func:`simulate` fetches (a random sample when larger)."""


def simulate(
    client: Client,
    deployment: str,
    *,
    requests: int | None = None,
    duration: float | None = None,
    rate: float | None = None,
    concurrency: int = 4,
    seed: int | None = None,
    source: Literal["uniform", "reference", "file"] = "uniform",
    file: str | Path | pd.DataFrame | None = None,
    drifts: Sequence[FeatureDrift] = (),
    drift_start: Position = 0,
    labels: str | Rule | Labeler | None = None,
    label_noise: float = 0.0,
    flip_after: Position | None = None,
    label_delay: float = 0.0,
    label_key: str = "actual_result",
    access_key: str | None = None,
    timeout: float = 30.0,
    on_progress: Callable[[Progress], None] | None = None,
) -> Result:
    """Synthetic traffic against ``deployment`` and, with ``labels``, delayed ground truth.

    ``source``: ``"uniform"`` (each feature uniform within its range in the reference data, as
    the lab does), ``"reference"`` (reference rows drawn with replacement) or ``"file"``
    (``file``'s rows in order, cycling; a CSV or Parquet path, or a DataFrame). The reference is
    the deployment's (at most 10,000 of its rows, sampled with the seed).

    ``labels``: ``"reference"`` (the drawn reference row's target), ``"model"`` (the
    deployment's registered model, loaded here: :func:`model_labeler`), ``"file:COLUMN"``,
    ``"rule:EXPR"`` (:class:`Rule`), a :class:`Rule` or function, or None for no ground truth.

    ``seed`` (default: a random one, reported in the result) makes the requests and labels
    reproducible; the rest is as :class:`Generator` and :func:`run` describe.
    """
    if seed is None:
        seed = secrets.randbelow(2**31)
    info = client.deployment(deployment)
    total = planned_requests(requests, duration, rate)
    kinds = {"uniform": "uniform", "reference": "sample", "file": "cycle"}
    if source not in kinds:
        raise ValidationFailed(f"unknown source {source!r}: uniform, reference or file")
    label_option: LabelOption
    target: str | None = None
    features: list[str] | None = None
    if source == "file":
        if file is None:
            raise ValidationFailed("the file source needs a file", details={"field": "file"})
        data = file if isinstance(file, pd.DataFrame) else _read_file(Path(file))
    else:
        if file is not None:
            raise ValidationFailed("a file is read only by the file source (source='file')")
        data, target, features = _reference(client, deployment, seed)
    if isinstance(labels, str):
        kind, _, argument = labels.partition(":")
        if labels == "reference":
            if source != "reference":
                raise ValidationFailed(
                    "labels from the reference come with its rows: use the reference source",
                    details={"field": "labels"},
                )
            if target is None:
                raise ValidationFailed(
                    f"the reference data of {deployment!r} has no target column; set one with "
                    "'modeldeck reference set NAME FILE --target-column COLUMN'",
                    details={"field": "labels"},
                )
            label_option = "target"
        elif kind == "file" and argument:
            if source != "file":
                raise ValidationFailed(
                    "labels from a file column come with the file's rows: use the file source",
                    details={"field": "labels"},
                )
            target = argument
            label_option = "target"
        elif labels == "model":
            if info.source != "registry":
                raise ValidationFailed(
                    f"deployment {deployment!r} does not serve a registered model",
                    details={"field": "labels"},
                )
            label_option = model_labeler(info.model_uri)
        elif kind == "rule" and argument:
            label_option = Rule(argument)
        else:
            raise ValidationFailed(
                f"unknown labels {labels!r}: reference, model, file:COLUMN or rule:EXPR",
                details={"field": "labels"},
            )
    else:
        label_option = labels
    generator = Generator(
        data,
        source=kinds[source],  # type: ignore[arg-type]
        seed=seed,
        features=features if source != "file" else None,
        target=target,
        drifts=drifts,
        drift_start=drift_start,
        labels=label_option,
        label_noise=label_noise,
        flip_after=flip_after,
        total=total,
    )
    return run(
        client,
        info,
        generator,
        requests=requests,
        duration=duration,
        rate=rate,
        concurrency=concurrency,
        access_key=access_key,
        label_delay=label_delay,
        label_key=label_key,
        timeout=timeout,
        on_progress=on_progress,
        source=source,
    )


def _reference(
    client: Client, deployment: str, seed: int
) -> tuple[pd.DataFrame, str | None, list[str]]:
    """The deployment's reference data (a sample of at most 10,000 rows), its target column
    and its features."""
    summary = client.reference(deployment, rows=REFERENCE_ROWS, sample=True, seed=seed % 2**32)
    columns = [c["name"] for c in summary.columns]
    frame = pd.DataFrame.from_records(summary.sample or [], columns=columns)
    for column in summary.columns:
        if column["kind"] == "numeric":
            frame[column["name"]] = pd.to_numeric(frame[column["name"]])
    skip = {summary.target_column, summary.prediction_column}
    return frame, summary.target_column, [c for c in columns if c not in skip]


def _read_file(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix == ".csv":
            return pd.read_csv(path)
    except Exception as exc:  # the readers raise many types for malformed files
        raise ValidationFailed(f"could not read {path}: {exc}", details={"field": "file"}) from exc
    raise ValidationFailed(
        f"the file must be .csv or .parquet, not {path.name!r}", details={"field": "file"}
    )
