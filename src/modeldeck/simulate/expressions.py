"""Labels from a small expression over a record's features (:class:`Rule`): parsed with
:mod:`ast`, checked node by node against a short list, and interpreted here, never ``eval``.

``pandas.eval``/``DataFrame.eval`` would evaluate such expressions too, but pandas documents it
as unsafe for untrusted input (attribute access, ``@`` references to local variables), and a
rule is text a user passes in; a whitelist of a dozen node types is the smaller thing to trust.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from modeldeck.errors import ValidationFailed
from modeldeck.simulate.values import plain

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: lambda a, b: float(a) ** float(b),
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Not: operator.not_,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {"abs": abs, "min": min, "max": max, "round": round}


class Rule:
    """A label computed from each record's features by a small expression, for example
    ``"petal_length > 2.45"`` or ``"0 if petal_length < 2.45 else (1 if petal_width < 1.75
    else 2)"``.

    Only literals, feature names, arithmetic (``+ - * / // % **``), comparisons (also ``in``
    and ``not in`` a literal tuple or list), ``and`` / ``or`` / ``not``, ``x if c else y`` and
    the functions ``abs``, ``min``, ``max`` and ``round`` are allowed: the expression is checked
    node by node and never handed to ``eval``. A comparison's True/False becomes 1/0.
    """

    def __init__(self, expression: str) -> None:
        self.expression = expression
        try:
            tree = ast.parse(expression.strip(), mode="eval")
        except SyntaxError as exc:
            raise ValidationFailed(
                f"rule {expression!r} is not a valid expression: {exc.msg}",
                details={"field": "labels"},
            ) from None
        self._body = tree.body
        names: set[str] = set()
        for node in ast.walk(self._body):
            self._check(node)
            if isinstance(node, ast.Name) and node.id not in _FUNCTIONS:
                names.add(node.id)
        self.names = frozenset(names)

    def __repr__(self) -> str:
        return f"Rule({self.expression!r})"

    def __call__(self, frame: pd.DataFrame) -> list[Any]:
        return [self.evaluate(record) for record in frame.to_dict("records")]

    def evaluate(self, record: Mapping[str, Any]) -> Any:
        try:
            value = self._eval(self._body, record)
        except ValidationFailed:
            raise
        except Exception as exc:
            raise ValidationFailed(
                f"rule {self.expression!r} failed on {dict(record)}: {type(exc).__name__}: {exc}",
                details={"field": "labels"},
            ) from None
        if isinstance(value, bool | np.bool_):
            return int(value)
        return plain(value)

    def _check(self, node: ast.AST) -> None:
        allowed = (
            ast.Expression,
            ast.BoolOp,
            ast.BinOp,
            ast.UnaryOp,
            ast.Compare,
            ast.IfExp,
            ast.Name,
            ast.Constant,
            ast.Tuple,
            ast.List,
            ast.Call,
            ast.Load,
            ast.And,
            ast.Or,
            *_BINARY,
            *_UNARY,
            *_COMPARE,
        )
        problem = None
        if not isinstance(node, allowed):
            problem = f"{type(node).__name__} is not allowed"
        elif isinstance(node, ast.Constant) and not isinstance(
            node.value, int | float | str | bool | type(None)
        ):
            problem = f"the constant {node.value!r} is not allowed"
        elif isinstance(node, ast.Call) and (
            not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS or node.keywords
        ):
            problem = "only abs(), min(), max() and round() may be called, without keywords"
        if problem:
            raise ValidationFailed(
                f"rule {self.expression!r}: {problem} (use feature names, numbers, strings, "
                "arithmetic, comparisons, and/or/not, x if c else y, abs/min/max/round)",
                details={"field": "labels"},
            )

    def _eval(self, node: ast.expr, record: Mapping[str, Any]) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in record:
                raise ValidationFailed(
                    f"rule {self.expression!r} names {node.id!r}, which is not a feature",
                    details={"field": "labels"},
                )
            return record[node.id]
        if isinstance(node, ast.Tuple | ast.List):
            return tuple(self._eval(e, record) for e in node.elts)
        if isinstance(node, ast.BoolOp):
            value: Any = None
            for operand in node.values:
                value = self._eval(operand, record)
                if isinstance(node.op, ast.And) and not value:
                    return value
                if isinstance(node.op, ast.Or) and value:
                    return value
            return value
        if isinstance(node, ast.UnaryOp):
            return _UNARY[type(node.op)](self._eval(node.operand, record))
        if isinstance(node, ast.BinOp):
            left, right = self._eval(node.left, record), self._eval(node.right, record)
            if isinstance(node.op, ast.Mult | ast.Mod) and (
                isinstance(left, str | tuple) or isinstance(right, str | tuple)
            ):
                raise ValueError("* and % take numbers")
            return _BINARY[type(node.op)](left, right)
        if isinstance(node, ast.Compare):
            left = self._eval(node.left, record)
            for op, comparator in zip(node.ops, node.comparators, strict=True):
                right = self._eval(comparator, record)
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.IfExp):
            branch = node.body if self._eval(node.test, record) else node.orelse
            return self._eval(branch, record)
        if isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name)
            return _FUNCTIONS[node.func.id](*(self._eval(a, record) for a in node.args))
        raise ValueError(f"{type(node).__name__} is not allowed")  # checked in __init__
