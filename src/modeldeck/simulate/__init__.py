"""Synthetic traffic and delayed ground truth against a deployment, to watch monitoring move.

Two halves, kept apart:

* :class:`Generator` (``generator``) makes each request's feature record and label. It does no
  I/O: record ``i`` is a pure function of the data, the options, the seed and ``i``. Every
  random draw comes from its own stream, keyed by (seed, purpose, column, block of 1,024
  requests), so drifting one column changes no other column's values, and asking for records
  0-99 or 0-9,999 gives the same first hundred. Its parts: the options that come as text
  (``options``: drifts, positions in the run), labels from an expression (``expressions``:
  :class:`Rule`), label spaces and labels from a model (``labels``).
* :func:`run` (``driver``) sends a generator's records to a deployment's endpoint over HTTP
  (threads, a target rate, a concurrency limit, a number of requests or a duration) and sends
  each answered prediction's label as a delayed metric ``label_delay`` seconds after its answer.

:func:`simulate` does both for a deployment on a platform, taking the data from its reference
data or a file; the ``modeldeck simulate`` command is a thin layer over it::

    from modeldeck import Client
    from modeldeck.simulate import FeatureDrift, simulate

    with Client() as client:
        result = simulate(
            client, "iris", requests=500, seed=7, source="reference", labels="reference",
            drifts=[FeatureDrift("petal_length", shift=2.0)], drift_start=0.5, flip_after=0.5,
            label_delay=5.0, access_key="...",
        )
    print(result.to_dict())
"""

from modeldeck.simulate.deployment import simulate
from modeldeck.simulate.driver import Prediction, Progress, Result, run
from modeldeck.simulate.expressions import Rule
from modeldeck.simulate.generator import Generator, Sample
from modeldeck.simulate.labels import LabelSpace, model_labeler
from modeldeck.simulate.options import FeatureDrift, parse_position, planned_requests

__all__ = [
    "FeatureDrift",
    "Generator",
    "LabelSpace",
    "Prediction",
    "Progress",
    "Result",
    "Rule",
    "Sample",
    "model_labeler",
    "parse_position",
    "planned_requests",
    "run",
    "simulate",
]
