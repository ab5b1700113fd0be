"""The private side of the web app: status page, read API, metrics, and the OpenAPI document.

`create_app` adds these routes; access control for all of them is web/access.py.
"""

from __future__ import annotations

from starlette.routing import Route

from amosync.db.database import Database
from amosync.settings import Settings
from amosync.web.access import AccessPolicy
from amosync.web.metrics import MetricsEndpoint
from amosync.web.openapi import openapi_json
from amosync.web.read_api import ReadApi
from amosync.web.status_page import StatusPage


def admin_routes(settings: Settings, db: Database) -> list[Route]:
    access = AccessPolicy(settings, db)
    access.log_mode()
    return [
        *StatusPage(settings, db, access).routes(),
        *ReadApi(db, access).routes(),
        Route("/metrics", MetricsEndpoint(settings, db, access).handle, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
    ]
