"""One generation as the batching scheduler sees it: shared by the scheduler, its batches and the worker."""

from __future__ import annotations

import asyncio
import math
import threading
from dataclasses import dataclass, field

from llmserve.engine.loader import LoadedModel
from llmserve.engine.sampling import SamplingParams
from llmserve.errors import LLMServeError


class GenerationTimeout(LLMServeError):
    """A local generation reached engine.request_timeout_seconds before it produced anything."""

    status_code = 504
    error_type = "timeout_error"
    code = "generation_timeout"


@dataclass(eq=False)
class Request:
    """One generation as the scheduler sees it; its consumer reads ``queue`` on ``loop``."""

    loaded: LoadedModel
    prompt_ids: list[int]
    params: SamplingParams
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[object]
    finished: asyncio.Future[None]  # set once the scheduler holds nothing of this request any more
    cancel: threading.Event = field(default_factory=threading.Event)
    # time.monotonic() by which the scheduler stops it (engine.request_timeout_seconds after submit).
    deadline: float = math.inf
