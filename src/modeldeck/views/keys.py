"""Control-plane API keys as the API, the client and the CLI show them."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from modeldeck.views.base import View


class ApiKeyView(View):
    id: str
    name: str
    scope: str = Field(description="admin, deploy, read or predict:<deployment>.")
    prefix: str
    created_at: datetime
    last_used_at: datetime | None = Field(
        default=None, description="Last use, to the minute (null: never used)."
    )


class ApiKeyCreated(ApiKeyView):
    key: str = Field(description="The key itself, shown only once.")
