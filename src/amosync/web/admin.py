"""The private side of the web app: status page, read API, metrics, and the OpenAPI document.

`create_app` adds these routes; access control for all of them is web/access.py.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.routing import Route

from amosync.settings import Settings
from amosync.web.access import AccessPolicy
from amosync.web.metrics import MetricsEndpoint
from amosync.web.openapi import openapi_json
from amosync.web.read_api import ReadApi
from amosync.web.status_page import StatusPage


def admin_routes(settings: Settings, engine: AsyncEngine) -> list[Route]:
    access = AccessPolicy(settings, engine)
    access.log_mode()
    return [
        *StatusPage(settings, engine, access).routes(),
        *ReadApi(engine, access).routes(),
        Route("/metrics", MetricsEndpoint(settings, engine, access).handle, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
    ]
