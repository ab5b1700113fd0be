"""`POST /amocrm` while a webhook secret is configured: a 404 that says what is wrong.

The old answer was a bare `{"error": "not found"}`, which sends an operator looking for a
missing route. The hint names the setting but never the secret itself.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

URL_NEEDS_SEGMENT = (
    "not found: a webhook secret is configured, so the webhook URL is /amocrm/<secret> "
    "(the URL must end with the value of AMOSYNC_WEBHOOK_SECRET)"
)


async def secret_required(request: Request) -> JSONResponse:
    return JSONResponse({"ok": False, "error": URL_NEEDS_SEGMENT}, status_code=404)
