"""The options of a run that come as text: a feature's drift, and a position in the run (a
request index or a share of it), with how many requests a run will send."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from modeldeck.errors import ValidationFailed

Position = int | float


@dataclass(frozen=True)
class FeatureDrift:
    """Drift injected into one feature from the generator's ``drift_start`` onward.

    Numeric columns: ``x -> center + (x - center) * scale + shift``, where ``center`` is the
    column's mean in the data; ``scale`` widens (> 1) or narrows (< 1) the spread around the
    mean, ``shift`` moves it. Integer columns stay integers (rounded).

    Categorical columns: each value is drawn afresh with probability proportional to the
    category's share of the data (every category alike for the ``uniform`` source) times its
    weight; categories not named keep weight 1, a name that is not a category of the data adds
    a new, unseen category.

    Any column: ``missing`` is the share of its values sent as null (a data-quality fault);
    a spec with ``missing`` alone leaves the other values as they were.
    """

    column: str
    shift: float = 0.0
    scale: float = 1.0
    weights: Mapping[str, float] | None = None
    missing: float = 0.0

    @classmethod
    def parse(cls, text: str) -> FeatureDrift:
        """``"petal_length:shift=2"``, ``"age:scale=1.5,shift=-3"``, ``"age:missing=0.2"``,
        ``"colour:weights=red=3,blue=1"`` (weights last: the pairs after it are categories)."""
        column, sep, rest = text.partition(":")
        column = column.strip()
        if not sep or not column or not rest.strip():
            raise ValidationFailed(
                "expected COLUMN:shift=X,scale=Y, COLUMN:missing=SHARE or COLUMN:weights=A=3,B=1; "
                f"got {text!r}",
                details={"field": "drift"},
            )
        shift, scale, share = 0.0, 1.0, 0.0
        weights: dict[str, float] | None = None
        for part in rest.split(","):
            key, eq, value = (s.strip() for s in part.partition("="))
            try:
                if key in ("shift", "scale") and eq and weights is None:
                    number = float(value)
                    if key == "shift":
                        shift = number
                    else:
                        scale = number
                elif key == "missing" and eq and weights is None:
                    share = float(value)
                    if not 0.0 <= share <= 1.0:
                        raise ValueError
                elif key == "weights" and eq:
                    category, eq2, weight = (s.strip() for s in value.partition("="))
                    if not eq2:
                        raise ValueError
                    weights = {category: float(weight)}
                elif weights is not None and eq:
                    weights[key] = float(value)
                else:
                    raise ValueError
            except ValueError:
                raise ValidationFailed(
                    f"cannot read {part!r} in drift {text!r}: expected shift=X, scale=Y, "
                    "missing=SHARE (0 to 1) or weights=CATEGORY=W,CATEGORY=W",
                    details={"field": "drift"},
                ) from None
        if not math.isfinite(shift) or not math.isfinite(scale):
            raise ValidationFailed(f"drift {text!r}: shift and scale must be finite numbers")
        return cls(column, shift=shift, scale=scale, weights=weights, missing=share)


def parse_position(text: str) -> Position:
    """A request index (``"500"``) or a share of the run (``"0.5"``, ``"50%"``)."""
    value = text.strip()
    try:
        if value.endswith("%"):
            return float(value[:-1]) / 100
        if value.lstrip("+").isdigit():
            return int(value)
        return float(value)
    except ValueError:
        raise ValidationFailed(
            f"expected a request index (500) or a share of the run (0.5, 50%); got {text!r}"
        ) from None


def resolve_position(value: Position | None, total: int | None, what: str) -> int | None:
    """The request index that ``value`` (an index, or a share 0..1 of ``total``) stands for."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValidationFailed(f"{what} must be a request index or a share of the run")
    if isinstance(value, int):
        if value < 0:
            raise ValidationFailed(f"{what} must not be negative", details={"field": what})
        return value
    if not 0.0 <= value <= 1.0:
        raise ValidationFailed(
            f"{what} {value:g} is neither a request index (a whole number) nor a share (0..1)",
            details={"field": what},
        )
    if total is None:
        raise ValidationFailed(
            f"{what} as a share ({value:g}) needs a known number of requests: give a number of "
            "requests, or a rate with a duration, or an index instead",
            details={"field": what},
        )
    return round(value * total)


def planned_requests(
    requests: int | None, duration: float | None, rate: float | None
) -> int | None:
    """How many requests a run will send, when that is known in advance."""
    if requests is not None:
        return (
            requests
            if duration is None or rate is None
            else min(requests, _by_rate(duration, rate))
        )
    if duration is not None and rate is not None:
        return _by_rate(duration, rate)
    return None


def _by_rate(duration: float, rate: float) -> int:
    return math.ceil(duration * rate - 1e-9)
