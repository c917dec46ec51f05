"""Scalars as the simulator hands them on: plain Python (JSON-friendly) values, missing
values as None, and one sort order for mixed numbers and text."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import numpy.typing as npt


def plain(value: Any) -> Any:
    """A JSON-friendly Python scalar for numpy and pandas scalars."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def python_list(values: npt.NDArray[Any]) -> list[Any]:
    items = values.tolist()
    return [None if missing(v) else plain(v) for v in items]


def sort_key(value: Any) -> tuple[int, float, str]:
    value = plain(value)
    if isinstance(value, bool | int | float):
        return (0, float(value), "")
    return (1, 0.0, str(value))
