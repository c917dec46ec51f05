"""A predict function that misbehaves on request, for tests/integration/test_faults.py.

``{"hang": true}`` never returns, ``{"sleep": s}`` takes ``s`` seconds, ``{"allocate_mb": n}``
keeps ``n`` more MB for good (a leak), ``{"crash": true}`` kills its process (a "poison"
request), ``{"output": kind}`` answers what JSON cannot carry (``object``, ``bytes``, ``nan``,
``inf``) and ``{"output_mb": n}`` an answer of ``n`` MB; anything else answers at once. Every
answer names the replica's process, so a test can tell a restarted replica from the old one.
"""

import os
import time
from typing import Any

_leaked: list[bytes] = []


def predict(args: dict[str, Any]) -> Any:
    if args.get("crash"):
        os._exit(70)  # as a segfault in native code would: no answer, no clean-up
    if args.get("output"):
        return {
            "object": object(),
            "bytes": b"\x00\x01",
            "nan": float("nan"),
            "inf": [1.0, float("inf")],
        }[args["output"]]
    if args.get("output_mb"):
        return "x" * (int(args["output_mb"]) * 1024 * 1024)
    if args.get("hang"):
        time.sleep(3600)
    if args.get("sleep"):
        time.sleep(float(args["sleep"]))
    if args.get("allocate_mb"):
        # Filled, not zeroed: zero pages from calloc would not count towards resident memory.
        _leaked.append(b"\x01" * (int(args["allocate_mb"]) * 1024 * 1024))
    return {"pid": os.getpid(), "leaked_mb": sum(len(b) for b in _leaked) // (1024 * 1024)}
