"""The base of every view: a pydantic model that tolerates what a newer server adds, and still
answers the dict-style access the client's callers used before the views.

``Client`` methods returned plain dicts (the answer's JSON) before the views. Code written
against them keeps working: ``view["status"]``, ``view.get("rollout")``, ``"crn" in view``,
``dict(view)`` and ``{**view}`` give the values the dict held (JSON values: times as ISO text,
nested views as dicts). That access is kept for compatibility only; new code reads attributes
(``view.status``), which are typed.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic_core import to_jsonable_python


class View(BaseModel):
    """An answer of the platform, read by the server's routes and the client alike.

    Fields the server adds later are kept (``extra="allow"``): an older client parses a newer
    server's answer, and reaches the new fields by ``view["new_field"]`` or
    ``view.model_extra``.
    """

    # defer_build: a view's validator is built when it is first used, not when the client is
    # imported (``import modeldeck`` stays cheap for code that never calls the platform).
    model_config = ConfigDict(
        extra="allow", protected_namespaces=(), from_attributes=True, defer_build=True
    )

    def _names(self) -> list[str]:
        """The keys the answer had: fields it set (a field the JSON left out, such as a
        reference's ``head`` when a sample was asked, is not "in" it, as it was not in the
        dict), computed fields, and what a newer server added."""
        given = self.model_fields_set
        return [
            *(name for name in type(self).model_fields if name in given),
            *type(self).model_computed_fields,
            *(self.__pydantic_extra__ or {}),
        ]

    def __getitem__(self, key: str) -> Any:
        """The answer's JSON value of ``key`` (kept for compatibility; read the attribute)."""
        extra = self.__pydantic_extra__ or {}
        if key in extra:
            return to_jsonable_python(extra[key])
        if key in type(self).model_fields or key in type(self).model_computed_fields:
            return to_jsonable_python(getattr(self, key))
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        """``view[key]``, or ``default`` when the answer has no ``key`` (kept for
        compatibility)."""
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._names()

    def keys(self) -> list[str]:
        """The answer's keys: ``dict(view)`` and ``{**view}`` give the answer as a dict (kept
        for compatibility; ``model_dump(mode="json")`` says it directly)."""
        return self._names()
