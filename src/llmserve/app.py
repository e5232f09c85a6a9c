"""create_app(settings): the one place that builds, wires and closes every long-lived object.

The lifespan is an ``AsyncExitStack``: each object is built and entered in order (what it needs is
already there) and closed in reverse (nothing is closed while something built after it still uses it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from fastapi import Depends, FastAPI
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from llmserve import __version__
from llmserve.api.auth import authenticate, require_admin
from llmserve.api.cors import EXPOSED_HEADERS
from llmserve.api.deps import Services
from llmserve.api.docs import include_docs
from llmserve.api.errors import install_error_handlers
from llmserve.api.middleware import BodySizeLimitMiddleware, JsonBodyMiddleware, RequestIdMiddleware
from llmserve.api.openapi import document_hot_routes
from llmserve.api.routes import (
    admin,
    anthropic,
    batches,
    files,
    health,
    jobs,
    keys,
    openai,
    responses,
    seed,
    tokens,
    ws,
)
from llmserve.api.routes import metrics as metrics_routes
from llmserve.api.routes import ollama as ollama_routes
from llmserve.config import Settings
from llmserve.jobs.wiring import build_jobs
from llmserve.jobs.worker import drain
from llmserve.observability.metrics import Metrics, StateSnapshot
from llmserve.observability.metrics_middleware import MetricsMiddleware
from llmserve.observability.tracing import TracingHandle, setup_tracing
from llmserve.observability.tracing_middleware import TracingMiddleware
from llmserve.providers.http import UpstreamHTTP
from llmserve.services.accounting import Accounting
from llmserve.services.admission import Admission
from llmserve.services.chat import ChatService
from llmserve.services.conversations import ConversationService
from llmserve.services.health import DependencyChecks
from llmserve.services.keys import KeyService
from llmserve.services.models import LocallyManaged, ModelRegistry
from llmserve.services.usage import UsageLedger, journal_dir_for
from llmserve.storage.db import Database

if TYPE_CHECKING:
    from llmserve.engine.manager import ModelManager
    from llmserve.limits.queue import AdmissionQueue

logger = logging.getLogger(__name__)

IDLE_CHECK_SECONDS = 5.0


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    metrics: Metrics | None = app.state.metrics
    async with contextlib.AsyncExitStack() as stack:
        if app.state.tracing is not None:  # closed last: it flushes the spans still batched
            stack.push_async_callback(app.state.tracing.aclose)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        database = Database(settings.effective_database_url)
        stack.push_async_callback(database.dispose)
        upstream_http = UpstreamHTTP()
        stack.push_async_callback(upstream_http.aclose)
        registry = ModelRegistry.from_settings(settings, upstream_http, metrics=metrics)
        stack.push_async_callback(registry.close)
        await database.upgrade()
        usage = UsageLedger(database, settings.usage, journal_dir=journal_dir_for(settings))
        await usage.recover()  # rows journaled by processes that died: in the ledger before budgets seed
        usage.start()
        stack.push_async_callback(usage.close)  # rows still waiting are written before the database goes
        accounting = Accounting.build(settings, registry, usage, metrics=metrics)
        stack.push_async_callback(accounting.close)
        admission = _build_admission(settings, registry, usage, metrics)
        stack.push_async_callback(admission.close)
        redis_url = settings.limits.redis_url or settings.cache.redis_url or settings.redis_url
        health_checks = DependencyChecks(database, redis_url)
        stack.push_async_callback(health_checks.close)
        key_service = KeyService(database, settings)
        job_parts = build_jobs(app, settings, database, key_service)
        conversations = ConversationService(database)
        app.state.services = Services(
            jobs=job_parts,
            settings=settings,
            database=database,
            registry=registry,
            conversations=conversations,
            chat=ChatService.build(
                registry,
                conversations,
                accounting,
                admission,
                metrics=metrics,
                log_payloads=settings.observability.log_payloads,
            ),
            usage=usage,
            keys=key_service,
            health=health_checks,
            metrics=metrics,
        )
        await job_parts.worker.start()
        stack.push_async_callback(drain, job_parts.worker)  # running units use every service above
        if metrics is not None:
            metrics.set_state_source(_metrics_state(registry, admission.queue))
        _start_models(settings, registry, stack)
        logger.info(
            "llmserve %s ready to accept requests; models: %s",
            __version__,
            ", ".join(g.name for g in registry.groups()),
        )
        yield


def _start_models(settings: Settings, registry: ModelRegistry, stack: contextlib.AsyncExitStack) -> None:
    """Preload local models if asked, and unload idle ones in the background."""
    if settings.engine.preload:
        for manager in registry.managers:
            manager.start_loading()
    if any(m.deployment.idle_unload_seconds for m in registry.managers):
        idle_task = asyncio.create_task(_unload_idle_models(registry.managers))
        stack.push_async_callback(_cancelled, idle_task)


async def _unload_idle_models(managers: list[ModelManager]) -> None:
    while True:
        await asyncio.sleep(IDLE_CHECK_SECONDS)
        for manager in managers:
            await manager.unload_if_idle()


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _metrics_state(registry: ModelRegistry, queue: AdmissionQueue | None) -> Callable[[], StateSnapshot]:
    """What the state gauges show at a scrape: admission queues, breakers, loaded local models."""

    def snapshot() -> StateSnapshot:
        groups = queue.snapshot() if queue is not None else {}
        router = registry.router
        return StateSnapshot(
            queue_length={name: group["queued"] for name, group in groups.items()},
            running={name: group["running"] for name, group in groups.items()},
            deployment_states={d.id: d.breaker.state for g in router.groups() for d in router.deployments(g)},
            model_loaded={
                group.name: any(p.manager.state == "ready" for p in local)
                for group in registry.groups()
                if (local := [p for p in group.providers if isinstance(p, LocallyManaged)])
            },
        )

    return snapshot


def _build_admission(
    settings: Settings, registry: ModelRegistry, usage: UsageLedger, metrics: Metrics | None = None
) -> Admission:
    """Guardrails, rate limits, budgets and the admission queue; each only when configured."""
    from llmserve.guardrails import Guardrails
    from llmserve.limits.budget import build_budget_guard
    from llmserve.limits.queue import AdmissionQueue
    from llmserve.limits.ratelimit import build_limiter

    return Admission(
        settings,
        registry,
        guardrails=Guardrails(settings.guardrails),
        limiter=build_limiter(settings),
        budgets=build_budget_guard(settings, usage.spent),
        queue=AdmissionQueue(settings.queue),
        metrics=metrics,
    )


def _middleware(
    settings: Settings, metrics: Metrics | None, tracing: TracingHandle | None
) -> list[Middleware]:
    """Outermost first. Each entry is a small pure-ASGI middleware; the ones switched off are absent."""
    cors = settings.server.cors_origins
    stack = [
        Middleware(RequestIdMiddleware),  # first: every log line and error below carries the request id
        Middleware(MetricsMiddleware, metrics=metrics) if metrics else None,  # counts the size limit's 413s
        Middleware(
            BodySizeLimitMiddleware,
            max_body_bytes=settings.server.max_body_bytes,
            # Multipart overhead on top of the largest file allowed.
            path_limits={"/v1/files": settings.jobs.max_file_bytes + 64 * 1024},
        ),
        Middleware(JsonBodyMiddleware),
        Middleware(
            CORSMiddleware,
            allow_origins=cors,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=EXPOSED_HEADERS,
        )
        if cors
        else None,
        # Innermost: it names spans from the route the router matched.
        Middleware(TracingMiddleware, handle=tracing) if tracing is not None else None,
    ]
    return [entry for entry in stack if entry is not None]


def _include_routes(app: FastAPI) -> None:
    """Every API route checks the caller's key (when auth is on); /admin needs an admin key;
    /health, /ready and /metrics stay open for load balancers, orchestrators and scrapers."""
    authenticated = (
        openai.router,
        responses.router,
        tokens.router,
        files.router,
        batches.router,
        jobs.router,
    )
    for router in (*authenticated, ollama_routes.router, seed.router, seed.simple_router, ws.router):
        app.include_router(router, dependencies=[Depends(authenticate)])
    # First in the router, so the hot POSTs match at the first try; they authenticate as they read
    # their bodies (api/body.py).
    hot_routes = [*openai.hot_routes, *responses.hot_routes, *anthropic.hot_routes, *ollama_routes.hot_routes]
    app.router.routes[0:0] = hot_routes
    document_hot_routes(app, hot_routes)
    anthropic.document(app)  # Anthropic's error body on its routes
    ollama_routes.document(app)  # Ollama's error body on its routes
    app.router.routes.extend(anthropic.routes)
    app.include_router(health.router)
    app.include_router(metrics_routes.router)
    for router in (admin.router, keys.router):
        app.include_router(router, dependencies=[Depends(require_admin)])


def create_app(settings: Settings) -> FastAPI:
    # Built before the app: the middleware needs them; the lifespan hands them to Services.
    metrics = Metrics.from_settings(settings) if settings.observability.metrics else None
    tracing = setup_tracing(settings)
    app = FastAPI(
        title="llmserve",
        version=__version__,
        description="Any LLM as a production Web API: OpenAI-compatible and seed-native chat endpoints.",
        lifespan=_lifespan,
        # Served by _include_docs, behind the key check.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        middleware=_middleware(settings, metrics, tracing),
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.tracing = tracing
    install_error_handlers(app)
    _include_routes(app)
    include_docs(app)
    return app
