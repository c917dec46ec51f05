"""The store's last check: a row either fits both backends or is refused alike on both.

SQLite keeps what PostgreSQL refuses: a NUL (U+0000) in text or JSON, a string longer than its
``VARCHAR(n)``, an integer past 2^31 - 1 in an ``INTEGER`` column. Requests are validated at the
edge (``modeldeck.validation``) so that the 422 names the request's field; this check runs before
every ORM flush so that a value that slipped past them gets the same 422 on both stores (naming
the column) instead of being stored on one and a 500 on the other.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Integer, LargeBinary, String, event, inspect
from sqlalchemy.orm import Session, sessionmaker

from modeldeck.errors import ValidationFailed

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)


def install(sessions: sessionmaker[Session]) -> None:
    """Check every new and changed row of ``sessions``' sessions before it is flushed."""
    event.listen(sessions, "before_flush", _before_flush)


def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    for obj in (*session.new, *session.dirty):
        check_row(obj)


def check_row(obj: Any) -> None:
    """Raise :class:`ValidationFailed` naming ``table.column`` if a value of ``obj`` would not
    fit one of the stores."""
    mapper = inspect(obj).mapper
    table = mapper.local_table.name  # type: ignore[attr-defined]
    for attr in mapper.column_attrs:
        column = attr.columns[0]
        value = getattr(obj, attr.key, None)
        if value is None:
            continue
        problem = _problem(column.type, value)
        if problem is not None:
            field = f"{table}.{column.name}"
            raise ValidationFailed(f"{field}: {problem}", details={"field": field})


def _problem(kind: Any, value: Any) -> str | None:
    impl = getattr(kind, "impl", kind)  # a TypeDecorator's underlying type
    if isinstance(impl, LargeBinary):
        return None
    if isinstance(value, str):
        if "\x00" in value:
            return "holds a NUL character (U+0000)"
        length = getattr(impl, "length", None)
        if isinstance(impl, String) and length is not None and len(value) > length:
            return f"is {len(value)} characters long; the store keeps at most {length}"
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        low, high = INT64 if isinstance(impl, BigInteger) else INT32
        if isinstance(impl, Integer) and not low <= value <= high:
            return f"{value} is out of the store's range ({low}..{high})"
        return None
    if isinstance(impl, JSON) or isinstance(value, dict | list):
        return _json_problem(value)
    return None


def _json_problem(value: Any) -> str | None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "holds a NUL character (U+0000)"
        elif isinstance(item, dict):
            for k, v in item.items():
                if isinstance(k, str) and "\x00" in k:
                    return "has a key holding a NUL character (U+0000)"
                stack.append(v)
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return None
