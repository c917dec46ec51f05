"""Limits on what users send, shared by the API, the CLI, the client and the CML routes.

Everything a user sends is checked here (through the pydantic types below, or the functions for
values that arrive outside a request model) before anything is stored or started, so that:

* both stores give the same answer: PostgreSQL refuses a NUL (U+0000) in text and JSONB, caps
  ``VARCHAR(n)`` columns and ``INTEGER`` at 2^31 - 1, where SQLite would store all three; the
  limits below are the stricter of the two, so a request either fits both or gets a 422;
* nothing that is stored can break a later start: environment variables must be passable to
  ``exec`` (no NUL, a bounded size), names must be usable in URLs, paths and log lines;
* the 422 names the field (``details.field``), in the one error shape.

The store adds a last check of its own (``modeldeck.store.guard``) with the same rules, so a
field that slips past these types is still refused alike on both stores, never a 500.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, GetCoreSchemaHandler
from pydantic_core import core_schema

from modeldeck.errors import ValidationFailed

DEPLOYMENT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
"""A deployment's name: it appears in URLs, file names and log lines."""

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

# Environment variables of a deployment's replicas: what ``exec`` can take on Linux with room to
# spare (one string may be 128 KiB, all of them with the arguments about 2 MiB).
MAX_ENV_VARS = 256
MAX_ENV_VALUE = 32 * 1024
MAX_ENV_TOTAL = 128 * 1024
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_WHITESPACE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def problem_in_text(value: str, *, multiline: bool = False) -> str | None:
    """Why ``value`` cannot be stored as a text field, or ``None`` when it can.

    One-line texts (names, ids, metric names) hold no control character at all; multi-line
    ones (descriptions) may hold tabs and line breaks. A lone surrogate cannot be encoded.
    """
    if "\x00" in value:
        return "holds a NUL character (U+0000)"
    pattern = _CONTROL_BUT_WHITESPACE if multiline else _CONTROL
    found = pattern.search(value)
    if found is not None:
        return f"holds a control character (U+{ord(found.group()):04X})"
    if _SURROGATE.search(value):
        return "holds a lone surrogate, which is not text"
    return None


def check_text(
    value: str, field: str, *, max_length: int | None = None, multiline: bool = False
) -> str:
    """``value`` if it can be stored as the text field ``field``; else a 422 naming it."""
    problem = problem_in_text(value, multiline=multiline)
    if problem is None and max_length is not None and len(value) > max_length:
        problem = f"is {len(value)} characters long; at most {max_length} are allowed"
    if problem is not None:
        raise ValidationFailed(f"{field}: {problem}", details={"field": field})
    return value


@dataclass(frozen=True)
class Text:
    """Annotation of a text field: ``Annotated[str, Text(255)]``.

    One line by default (no control character at all: a name, an id, a metric name);
    ``multiline`` allows tabs and line breaks (a description); ``opaque`` checks only for NUL
    (a secret, a token). Lengths are in characters.
    """

    max_length: int
    min_length: int = 0
    multiline: bool = False
    opaque: bool = False

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            self._validate,
            core_schema.str_schema(min_length=self.min_length, max_length=self.max_length),
        )

    def _validate(self, value: str) -> str:
        if self.opaque:
            if "\x00" in value:
                raise ValueError("holds a NUL character (U+0000)")
            return value
        problem = problem_in_text(value, multiline=self.multiline)
        if problem is not None:
            raise ValueError(problem)
        return value


Int32 = Annotated[int, Field(ge=-INT32_MAX - 1, le=INT32_MAX)]
"""An integer that fits an ``INTEGER`` column on both stores."""

PositiveInt32 = Annotated[int, Field(gt=0, le=INT32_MAX)]

ModelVersion = Annotated[str, Text(32, min_length=1)]
"""A model version as the store keeps it (``VARCHAR(32)``)."""


def environment_problem(value: Mapping[str, Any]) -> tuple[str, str] | None:
    """What makes ``value`` unusable as the environment of a replica, as (the variable, or
    ``""`` for the whole, and the problem); ``None`` when it is fine.

    Names are what a shell takes; values are what ``exec`` can pass: a NUL in a value, or more
    than ``exec`` accepts, would make every start of the replica fail (at every platform start,
    too), so they are refused before anything is stored.
    """
    if len(value) > MAX_ENV_VARS:
        return "", f"{len(value)} variables; at most {MAX_ENV_VARS} are allowed"
    total = 0
    for name, text in value.items():
        if not isinstance(name, str) or not ENV_NAME.match(name):
            return "", (
                f"invalid environment variable name {name!r:.80} (letters, digits and '_', "
                "not starting with a digit, at most 255 characters)"
            )
        if not isinstance(text, str):
            return name, "must be a string"
        if "\x00" in text:
            return name, "holds a NUL character (U+0000), which no process environment can carry"
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_ENV_VALUE:
            return name, f"{size} bytes; a value may have at most {MAX_ENV_VALUE}"
        total += len(name) + size + 2
    if total > MAX_ENV_TOTAL:
        return "", f"{total} bytes in all; at most {MAX_ENV_TOTAL} are allowed"
    return None


def check_environment(value: Mapping[str, Any], field: str = "environment") -> dict[str, str]:
    """``value`` as replica environment variables, or a 422 naming the variable
    (see :func:`environment_problem`)."""
    found = environment_problem(value)
    if found is not None:
        name, problem = found
        where = f"{field}.{name}" if name else field
        raise ValidationFailed(f"{where}: {problem}", details={"field": where})
    return dict(value)


def refuse_nul_json(value: Any, field: str, *, depth: int = 0) -> None:
    """422 when a JSON value holds a NUL in any string or key (PostgreSQL's JSONB cannot)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValidationFailed(
                f"{field} holds a NUL character (U+0000)", details={"field": field}
            )
    elif isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str) and "\x00" in k:
                raise ValidationFailed(
                    f"{field} has a key holding a NUL character (U+0000)", details={"field": field}
                )
            refuse_nul_json(v, f"{field}.{k}", depth=depth + 1)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            refuse_nul_json(v, f"{field}[{i}]", depth=depth + 1)
