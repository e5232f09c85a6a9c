"""create_app(settings): the one place that builds, wires and closes every long-lived object."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from fastapi import Depends, FastAPI
from starlette.middleware.cors import CORSMiddleware

from llmserve import __version__
from llmserve.api.auth import authenticate, require_admin
from llmserve.api.deps import Services
from llmserve.api.errors import install_error_handlers
from llmserve.api.fast_routes import FastOpenAIRoutes
from llmserve.api.middleware import BodySizeLimitMiddleware, JsonBodyMiddleware, RequestIdMiddleware
from llmserve.api.routes import admin, batches, files, health, jobs, keys, openai, seed, tokens, ws
from llmserve.api.routes import metrics as metrics_routes
from llmserve.config import Settings
from llmserve.jobs.wiring import build_jobs
from llmserve.jobs.worker import JobWorker, drain
from llmserve.observability.metrics import Metrics, StateSnapshot
from llmserve.observability.metrics_middleware import MetricsMiddleware
from llmserve.observability.tracing import setup_tracing
from llmserve.providers.http import UpstreamHTTP
from llmserve.services.accounting import Accounting
from llmserve.services.admission import Admission
from llmserve.services.chat import ChatService
from llmserve.services.conversations import ConversationService
from llmserve.services.health import DependencyChecks
from llmserve.services.keys import KeyService
from llmserve.services.models import LocallyManaged, ModelRegistry
from llmserve.services.usage import UsageLedger
from llmserve.storage.db import Database

if TYPE_CHECKING:
    from llmserve.engine.manager import ModelManager
    from llmserve.limits.queue import AdmissionQueue

logger = logging.getLogger(__name__)

IDLE_CHECK_SECONDS = 5.0


async def _unload_idle_models(managers: list[ModelManager]) -> None:
    while True:
        await asyncio.sleep(IDLE_CHECK_SECONDS)
        for manager in managers:
            await manager.unload_if_idle()


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.effective_database_url)
    upstream_http = UpstreamHTTP()
    metrics: Metrics | None = app.state.metrics
    registry = ModelRegistry.from_settings(settings, upstream_http, metrics=metrics)
    idle_task: asyncio.Task[None] | None = None
    usage: UsageLedger | None = None
    accounting: Accounting | None = None
    closers: list[Callable[[], Awaitable[None]]] = []
    job_worker: JobWorker | None = None
    try:
        await database.upgrade()
        conversations = ConversationService(database)
        usage = UsageLedger(database, settings.usage)
        usage.start()
        accounting = Accounting.build(settings, registry, usage, metrics=metrics)
        admission = _build_admission(settings, registry, usage, metrics)
        closers.append(admission.close)
        redis_url = settings.limits.redis_url or settings.cache.redis_url or settings.redis_url
        health = DependencyChecks(database, redis_url)
        closers.append(health.close)
        keys = KeyService(database, settings)
        jobs = build_jobs(app, settings, database, keys)
        app.state.services = Services(
            jobs=jobs,
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
            keys=keys,
            health=health,
            metrics=metrics,
        )
        await jobs.worker.start()
        job_worker = jobs.worker
        if metrics is not None:
            metrics.set_state_source(_metrics_state(registry, admission.queue))
        if settings.engine.preload:
            for manager in registry.managers:
                manager.start_loading()
        if any(m.deployment.idle_unload_seconds for m in registry.managers):
            idle_task = asyncio.create_task(_unload_idle_models(registry.managers))
        logger.info(
            "llmserve %s ready to accept requests; models: %s",
            __version__,
            ", ".join(g.name for g in registry.groups()),
        )
        yield
    finally:
        await drain(job_worker)  # first: running units use every service below
        if idle_task is not None:
            idle_task.cancel()
            await asyncio.gather(idle_task, return_exceptions=True)
        for close in closers:
            await close()
        if accounting is not None:
            await accounting.close()
        await registry.close()
        await upstream_http.aclose()
        if usage is not None:  # rows still waiting are written before the database goes away
            await usage.close()
        await database.dispose()
        if app.state.tracing is not None:  # flush the spans still batched
            await app.state.tracing.aclose()


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


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(
        title="llmserve",
        version=__version__,
        description="Any LLM as a production Web API: OpenAI-compatible and seed-native chat endpoints.",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    # Built here, not in the lifespan: the middleware below needs it; the lifespan hands it to Services.
    app.state.metrics = Metrics.from_settings(settings) if settings.observability.metrics else None
    app.state.tracing = setup_tracing(settings)
    install_error_handlers(app)
    # Every API route checks the caller's key (when auth is on); /admin needs an admin key;
    # /health and /ready stay open for load balancers and orchestrators.
    api_routers = (openai.router, tokens.router, files.router, batches.router, jobs.router)
    for router in (*api_routers, seed.router, seed.simple_router, ws.router):
        app.include_router(router, dependencies=[Depends(authenticate)])
    app.include_router(health.router)
    app.include_router(metrics_routes.router)  # open, like /health: scrapers carry no key
    for router in (admin.router, keys.router):
        app.include_router(router, dependencies=[Depends(require_admin)])
    # Innermost: serves well-formed chat and completion requests without FastAPI's per-request work,
    # passing everything else on (api/fast_routes.py). It records the route as the router would.
    app.add_middleware(FastOpenAIRoutes, api=app)
    if app.state.tracing is not None:  # inside the rest: it names spans from the matched route
        from llmserve.observability.tracing_middleware import TracingMiddleware

        app.add_middleware(TracingMiddleware, handle=app.state.tracing)
    if settings.server.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.server.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    app.add_middleware(JsonBodyMiddleware)
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_body_bytes=settings.server.max_body_bytes,
        # Multipart overhead on top of the largest file allowed.
        path_limits={"/v1/files": settings.jobs.max_file_bytes + 64 * 1024},
    )
    if app.state.metrics is not None:  # outside the size limit: its 413s are counted too
        app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.add_middleware(RequestIdMiddleware)
    return app
