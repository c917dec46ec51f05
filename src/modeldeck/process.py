"""Process-level tuning shared by the platform and its replicas."""

from __future__ import annotations

import gc

GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Keep the cyclic garbage collector off the request path of a long-lived server.

    After start-up (MLflow, pandas, the model: millions of objects) everything alive is frozen
    out of the collector's sight, and the young generation is collected every 50,000
    allocations instead of 700: per-request objects (records, futures, dicts) otherwise trigger
    collections that cost more than the requests themselves.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
