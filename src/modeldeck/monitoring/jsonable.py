"""Reports as JSON, whatever numeric values they hold.

Drift and performance reports come out of numpy, scipy and pandas. The statistics hand back
plain Python numbers, but one NumPy scalar left anywhere in a report (``numpy.bool`` from a
comparison, ``numpy.float64`` from a sum) is enough for pydantic's serialiser to fail, or for
a reader checking ``isinstance(x, Sequence)`` to miss a NumPy array. :func:`dumps` writes with
orjson instead, which writes NumPy scalars and arrays as the numbers they hold, NaN and +-inf as
``null`` (as pydantic does), and anything else it cannot write as its ``str``; :func:`plain`
gives the report back as what a JSON client reads (the HTML report renders from that).
"""

from __future__ import annotations

from typing import Any

import orjson

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def dumps(content: Any) -> bytes:
    return orjson.dumps(content, option=_OPTIONS, default=_fallback)


def plain(content: Any) -> Any:
    """``content`` as JSON would carry it: dicts, lists, str, int, float, bool, None."""
    return orjson.loads(dumps(content))


def _fallback(value: Any) -> Any:
    item = getattr(value, "item", None)  # a NumPy scalar orjson does not know (float16...)
    if callable(item) and hasattr(value, "dtype"):
        return item()
    return str(value)
