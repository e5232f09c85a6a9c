"""ModelManager: loads a local model lazily, exactly once, and unloads it when idle.

The seed's ModelManager kept the model in class attributes and raced on first use; this one is an
object owned by the app, with an asyncio lock so that a burst of first requests triggers one load.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Literal

from llmserve.config import ModelDeployment
from llmserve.errors import ModelLoadFailed
from llmserve.observability.context import note_model_load_wait

if TYPE_CHECKING:
    from llmserve.engine.loader import LoadedModel

logger = logging.getLogger(__name__)

LoadState = Literal["unloaded", "loading", "ready", "failed"]
# A model that failed to load stays failed until the server restarts (a missing path, a hub id that
# cannot be reached, a broken checkpoint): clients are told to come back much later, not in 1 s.
FAILED_RETRY_AFTER_SECONDS = 300


class ModelBroken(ModelLoadFailed):
    """The model failed to load before; requests fail at once instead of loading it again."""

    retry_after = FAILED_RETRY_AFTER_SECONDS


Loader = Callable[[ModelDeployment], "LoadedModel"]


def load_with_transformers(deployment: ModelDeployment) -> LoadedModel:
    # Imported here, not at the top: a gateway-only install (no torch) must still import the app.
    from llmserve.engine.loader import load_model

    return load_model(deployment)


class ModelManager:
    def __init__(self, deployment: ModelDeployment, loader: Loader = load_with_transformers) -> None:
        self.deployment = deployment
        self._loader = loader
        self._lock = asyncio.Lock()
        self._loaded: LoadedModel | None = None
        self._state: LoadState = "unloaded"
        self._error: str | None = None
        self._permanent = False
        self._ever_loaded = False
        self._last_used = time.monotonic()
        self._active = 0
        self._background: set[asyncio.Task[None]] = set()
        self.load_seconds: float | None = None

    @property
    def state(self) -> LoadState:
        return self._state

    @property
    def error(self) -> str | None:
        return self._error

    @property
    def permanently_failed(self) -> bool:
        return self._state == "failed" and self._permanent

    @property
    def ready_to_serve(self) -> bool:
        """Loaded, or loaded before and unloaded only because it sat idle (reloads on demand)."""
        return self._state == "ready" or (self._state == "unloaded" and self._ever_loaded)

    async def get(self) -> LoadedModel:
        if self._loaded is not None:
            return self._loaded
        self._raise_if_failed()
        waiting_since = time.perf_counter()
        try:
            return await self._load_once()
        finally:
            note_model_load_wait(time.perf_counter() - waiting_since)

    async def _load_once(self) -> LoadedModel:
        async with self._lock:
            self._raise_if_failed()  # the load this request waited for failed: once is enough
            if self._loaded is None:
                self._state = "loading"
                started = time.perf_counter()
                try:
                    self._loaded = await asyncio.to_thread(self._loader, self.deployment)
                except Exception as exc:  # any loader failure must reach the client as a 503, not a 500
                    self._state, self._error = "failed", f"{type(exc).__name__}: {exc}"
                    # loader.PermanentLoadError (not imported: it needs torch)
                    self._permanent = bool(getattr(exc, "permanent", False))
                    if self._permanent:  # one clear line, no traceback: the message says it all
                        logger.error("model %s cannot load: %s", self.deployment.name, exc)
                        raise self._broken() from exc
                    logger.exception("loading model %s failed", self.deployment.name)
                    raise ModelLoadFailed(f"Model '{self.deployment.name}' failed to load: {exc}") from exc
                self.load_seconds = time.perf_counter() - started
                self._state, self._error, self._ever_loaded = "ready", None, True
                logger.info("model %s ready in %.2fs", self.deployment.name, self.load_seconds)
            return self._loaded

    def _raise_if_failed(self) -> None:
        if self._state == "failed" and self._permanent:
            raise self._broken()

    def _broken(self) -> ModelBroken:
        return ModelBroken(
            f"Model '{self.deployment.name}' failed to load and is unavailable until the server "
            f"restarts: {self._error}"
        )

    def start_loading(self) -> None:
        """Kick off a load in the background (used by /ready and preload); errors stay in ``error``.
        A failed model is not loaded again."""
        if self._state in ("ready", "loading") or self._background or self._permanent:
            return
        self._state = "loading"
        task = asyncio.create_task(self._load_quietly())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _load_quietly(self) -> None:
        with contextlib.suppress(ModelLoadFailed):
            await self.get()

    @contextlib.asynccontextmanager
    async def in_use(self) -> AsyncIterator[LoadedModel]:
        loaded = await self.get()
        self._active += 1
        try:
            yield loaded
        finally:
            self._active -= 1
            self._last_used = time.monotonic()

    async def unload_if_idle(self) -> bool:
        idle_after = self.deployment.idle_unload_seconds
        if idle_after is None or self._loaded is None or self._active:
            return False
        if time.monotonic() - self._last_used < idle_after:
            return False
        async with self._lock:
            if self._active or self._loaded is None:
                return False
            self._loaded, self._state = None, "unloaded"
        gc.collect()
        logger.info("model %s unloaded after %.0fs idle", self.deployment.name, idle_after)
        return True

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._loaded = None
        self._state = "unloaded"
