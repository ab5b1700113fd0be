"""The ASGI application: routes, and the lifespan that starts the writer and the worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from amosync import __version__
from amosync.db.file_guard import StorageWatch, guard_for
from amosync.health import HealthProbe
from amosync.heap import freeze_startup_objects
from amosync.inbox import GroupCommitWriter
from amosync.inbox.writer import direct_appender
from amosync.services import build_services
from amosync.settings import Settings
from amosync.web.admin import admin_routes
from amosync.web.health import health, health_live
from amosync.web.presence import beat_until_cancelled
from amosync.webhook.endpoint import WebhookReceiver
from amosync.webhook.fast_path import WebhookFastPath
from amosync.webhook.hints import secret_required
from amosync.webhook.n8n import N8nReceiver

log = logging.getLogger(__name__)

WORKER_STOP_TIMEOUT = 10.0


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"ok": False, "error": "not found"}, status_code=404)


async def _method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
    # Keep Starlette's `Allow` header: RFC 9110 requires it on a 405.
    allow = getattr(exc, "headers", None)
    return JSONResponse(
        {"ok": False, "error": "method not allowed"}, status_code=405, headers=allow
    )


def create_app(
    settings: Settings,
    *,
    run_worker: bool = True,
    amocrm_transport: httpx.AsyncBaseTransport | None = None,
    freeze_heap: bool = False,
) -> Starlette:
    """Build the app. Nothing connects until the lifespan starts.

    `freeze_heap` (the `serve` command sets it) exempts what exists once start-up is done
    from garbage collection (amosync/heap.py); tests building many apps in one process leave
    it off so that each app's objects can still be freed."""
    services = build_services(settings, amocrm_transport=amocrm_transport)
    watch = StorageWatch()  # the SQLite file guard and the webhook commits, for /health
    file_guard = guard_for(services.db, watch)
    writer = GroupCommitWriter(
        services.inbox,
        on_commit=services.worker.notify if run_worker else None,
        appender=direct_appender(services.inbox),
        watch=watch,
    )
    webhook = WebhookReceiver(settings, writer)
    n8n = N8nReceiver(settings, writer)

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/health/live", health_live, methods=["GET"]),
        # Before /amocrm/{secret}, so the legacy path is never taken for a secret.
        Route("/amocrm/process-webhook", n8n.handle, methods=["POST"]),
        # POSTs to these two are answered by WebhookFastPath before routing; the routes stay
        # so that other methods get the router's 405 with its Allow header.
        Route("/amocrm/{secret}", webhook, methods=["POST"]),
    ]
    if settings.webhook_secret is None:
        routes.append(Route("/amocrm", webhook, methods=["POST"]))
    else:
        # `/amocrm/` too: the router would otherwise redirect it (307) to `/amocrm`.
        routes.append(Route("/amocrm", secret_required, methods=["POST"]))
        routes.append(Route("/amocrm/", secret_required, methods=["POST"]))
    routes += admin_routes(settings, services.db)  # status page, read API, metrics

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if settings.webhook_secret is None:
            log.warning(
                "webhook_unprotected",
                extra={
                    "event": "webhook_unprotected",
                    "hint": "set AMOSYNC_WEBHOOK_SECRET and register /amocrm/<secret> in amoCRM",
                },
            )
        if file_guard is not None:
            file_guard.start()
        writer.start()
        worker_task = (
            asyncio.create_task(services.worker.run(), name="worker") if run_worker else None
        )
        # Without a worker nothing else shows this process is alive (copy-db checks).
        presence = (
            None
            if run_worker
            else asyncio.create_task(beat_until_cancelled(services.db), name="presence")
        )
        frozen = freeze_startup_objects() if freeze_heap else None
        log.info(
            "service_started",
            extra={
                "event": "service_started",
                "version": __version__,
                "worker": run_worker,
                "frozen_objects": frozen,
            },
        )
        try:
            yield
        finally:
            if presence is not None:
                presence.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await presence
            if worker_task is not None:
                services.worker.stop()
                try:
                    await asyncio.wait_for(worker_task, WORKER_STOP_TIMEOUT)
                except TimeoutError:
                    log.warning("worker_stop_timeout", extra={"event": "worker_stop_timeout"})
            await writer.stop()
            if file_guard is not None:
                await file_guard.stop()
            await services.aclose()

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(WebhookFastPath, receiver=webhook)],
        exception_handlers={404: _not_found, 405: _method_not_allowed},
    )
    app.state.settings = settings
    app.state.db = services.db
    app.state.services = services
    app.state.health_probe = HealthProbe(watch)
    return app
