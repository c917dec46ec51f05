"""JSON answers of reports computed by numeric code (see :mod:`modeldeck.monitoring.jsonable`:
one NumPy scalar left in a report must not make the route answer 500 after all its work)."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from modeldeck.monitoring.jsonable import dumps


class ReportResponse(JSONResponse):
    """A JSON answer that NumPy values cannot break."""

    def render(self, content: Any) -> bytes:
        return dumps(content)
