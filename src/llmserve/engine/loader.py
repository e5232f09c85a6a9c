"""Loading a Hugging Face causal LM (the bundled one, a local directory or a hub id) onto a device."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from llmserve.config import BUNDLED_MODEL_ID, ModelDeployment

# A lock, not state: serialises from_pretrained across this process's model managers (see load_model).
LOAD_LOCK = threading.Lock()

logger = logging.getLogger(__name__)

BUNDLED_MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / BUNDLED_MODEL_ID
FALLBACK_CONTEXT_WINDOW = 2048


class PermanentLoadError(Exception):
    """Trying again cannot help (the weights are nowhere to be found): the manager fails the model
    for good instead of loading it again on every request."""

    permanent = True


@dataclass(frozen=True)
class LoadedModel:
    model: Any
    tokenizer: Any
    device: torch.device
    context_window: int
    eos_token_ids: frozenset[int]


def resolve_model_source(model: str) -> str:
    if model == BUNDLED_MODEL_ID:
        return str(BUNDLED_MODEL_DIR)
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model


def looks_like_path(model: str) -> bool:
    """A local path rather than a hub id (``org/name``: one slash, no leading ``/``, ``.`` or ``~``)."""
    if model.startswith(("/", "./", "../", "~")) or (os.sep != "/" and os.sep in model):
        return True
    return model.count("/") > 1


def missing_local_path(model: str) -> bool:
    return model != BUNDLED_MODEL_ID and looks_like_path(model) and not Path(model).expanduser().exists()


def pick_device(setting: str) -> torch.device:
    if setting != "auto":
        return torch.device(setting)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(setting: str, device: torch.device) -> torch.dtype:
    if setting != "auto":
        dtype: torch.dtype = getattr(torch, setting)
        return dtype
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32  # half precision on CPU is slower and less accurate


def _context_window(model_config: Any, tokenizer: Any, override: int | None) -> int:
    if override:
        return override
    for attribute in ("max_position_embeddings", "n_positions", "seq_length", "max_sequence_length"):
        value = getattr(model_config, attribute, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < 10**7 else FALLBACK_CONTEXT_WINDOW


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), model.config, tokenizer):
        value = getattr(source, "eos_token_id", None)
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(v for v in value if isinstance(v, int))
    return frozenset(ids)


def load_model(deployment: ModelDeployment) -> LoadedModel:
    """Blocking: call it from a worker thread. Same from_pretrained path for every model.

    Loads run one at a time per process: two concurrent ``from_pretrained`` calls (two local groups
    warming up together) fail in transformers' meta-device initialisation ("Cannot copy out of meta
    tensor") and leave later loads broken.
    """
    with LOAD_LOCK:
        return _load_model(deployment)


def _load_model(deployment: ModelDeployment) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if missing_local_path(deployment.model):
        raise PermanentLoadError(f"models entry '{deployment.name}': no such path: {deployment.model}")
    source = resolve_model_source(deployment.model)
    device = pick_device(deployment.device)
    dtype = pick_dtype(deployment.dtype, device)
    logger.info("loading model %s from %s on %s (%s)", deployment.name, source, device, dtype)
    try:  # transformers says OSError for a hub id it cannot find or reach (after its own retries)
        tokenizer: Any = AutoTokenizer.from_pretrained(source, trust_remote_code=deployment.trust_remote_code)
    except OSError as exc:
        raise PermanentLoadError(f"models entry '{deployment.name}' ({deployment.model}): {exc}") from exc
    model: Any = AutoModelForCausalLM.from_pretrained(
        source, trust_remote_code=deployment.trust_remote_code, dtype=dtype
    )
    model.to(device)
    model.eval()
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        device=device,
        context_window=_context_window(model.config, tokenizer, deployment.context_window),
        eos_token_ids=_eos_ids(model, tokenizer),
    )
