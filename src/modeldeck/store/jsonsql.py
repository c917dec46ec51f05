"""The SQL that reads tracked values out of the JSON ``metrics`` columns, for SQLite and PostgreSQL.

Keys are always bound parameters, never spliced into the statement. Values are read as text
(labels and predicted classes compare by their JSON text: ``1`` and ``"1"`` are the same class,
``1`` and ``1.0`` are not) or as numbers (``NULL`` when the value is not a JSON number).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dialect:
    name: str

    @property
    def sqlite(self) -> bool:
        return self.name == "sqlite"

    def text(self, column: str, key_param: str) -> str:
        """The value at ``column[key]`` as text (NULL when absent)."""
        if self.sqlite:
            return f"CAST(json_extract({column}, '$.\"' || :{key_param} || '\"') AS TEXT)"
        return f"({column} ->> :{key_param})"

    def text_in(self, column: str, key_param: str, inner_param: str) -> str:
        """The value at ``column[key][inner]`` as text (NULL when absent); both keys are bound
        parameters without quotes or backslashes."""
        if self.sqlite:
            path = f"'$.\"' || :{key_param} || '\".\"' || :{inner_param} || '\"'"
            return f"CAST(json_extract({column}, {path}) AS TEXT)"
        return f"({column} -> :{key_param} ->> :{inner_param})"

    def number_in(self, column: str, key_param: str, inner_param: str) -> str:
        """The value at ``column[key][inner]`` when it is a JSON number, else NULL."""
        return self.nested_number(column, key_param, f":{inner_param}")

    def number(self, column: str, key_param: str) -> str:
        """The value at ``column[key]`` when it is a JSON number, else NULL."""
        if self.sqlite:
            path = f"'$.\"' || :{key_param} || '\"'"
            return (
                f"(CASE WHEN json_type({column}, {path}) IN ('integer', 'real') "
                f"THEN json_extract({column}, {path}) END)"
            )
        return (
            f"(CASE WHEN jsonb_typeof({column} -> :{key_param}) = 'number' "
            f"THEN ({column} ->> :{key_param})::float8 END)"
        )

    def nested_number(self, column: str, key_param: str, inner: str) -> str:
        """``column[key][inner]`` as a number, where ``inner`` is an SQL text expression."""
        if self.sqlite:
            # A JSON path cannot quote a key holding '"': such keys (from data) read as NULL
            # instead of failing the statement.
            path = f"'$.\"' || :{key_param} || '\".\"' || {inner} || '\"'"
            return (
                f"(CASE WHEN instr({inner}, '\"') = 0 AND instr({inner}, '\\') = 0 "
                f"AND json_type({column}, {path}) IN ('integer', 'real') "
                f"THEN json_extract({column}, {path}) END)"
            )
        return (
            f"(CASE WHEN jsonb_typeof({column} -> :{key_param} -> ({inner})) = 'number' "
            f"THEN ({column} -> :{key_param} ->> ({inner}))::float8 END)"
        )

    def has(self, column: str, key_param: str) -> str:
        if self.sqlite:
            return f"json_type({column}, '$.\"' || :{key_param} || '\"') IS NOT NULL"
        return f"({column} -> :{key_param}) IS NOT NULL"

    def greatest(self, a: str, b: str) -> str:
        return f"MAX({a}, {b})" if self.sqlite else f"GREATEST({a}, {b})"

    def least(self, a: str, b: str) -> str:
        return f"MIN({a}, {b})" if self.sqlite else f"LEAST({a}, {b})"

    def round(self, expr: str, digits: int) -> str:
        if self.sqlite:
            return f"ROUND({expr}, {int(digits)})"
        return f"ROUND(({expr})::numeric, {int(digits)})::float8"
