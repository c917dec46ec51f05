"""JSON answers of reports computed by numeric code.

Drift and performance reports come out of numpy, scipy and pandas. The statistics hand back
plain Python numbers, but one NumPy scalar left anywhere in a report (``numpy.bool`` from a
comparison, ``numpy.float64`` from a sum) is enough for FastAPI's pydantic serialiser to fail
and the route to answer 500 after all its work was done. :class:`ReportResponse` renders with
orjson instead, which writes NumPy scalars and arrays as the numbers they hold, NaN and +-inf
as ``null`` (as pydantic does), and anything else it cannot write as its ``str``, so a report
always reaches the caller.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class ReportResponse(JSONResponse):
    """A JSON answer that NumPy values cannot break (see the module's docstring)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=_OPTIONS, default=_fallback)


def _fallback(value: Any) -> Any:
    item = getattr(value, "item", None)  # a NumPy scalar orjson does not know (float16...)
    if callable(item) and hasattr(value, "dtype"):
        return item()
    return str(value)
