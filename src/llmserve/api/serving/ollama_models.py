"""/api/tags, /api/show, /api/ps, /api/version, /api/embed[dings]: the model groups as Ollama lists them.

Ollama names carry a tag ("tiny-chat:latest"); a group name without one is listed with ":latest",
and a name sent with ":latest" finds the group without it. The ``details`` of a local model come
from its files (config.json and the safetensors headers: family, parameter count, dtype, size on
disk); a remote model has no files here, so only what the config says is reported.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

import llmserve
from llmserve.api.serving.ollama_stream import durations
from llmserve.config import ModelDeployment
from llmserve.config.models import BUNDLED_MODEL_ID
from llmserve.principal import Principal
from llmserve.schemas.ollama import OllamaEmbeddingsRequest, OllamaEmbedRequest
from llmserve.services.chat import ChatService
from llmserve.services.models import LocallyManaged, ModelGroup, ModelRegistry

# The Ollama release whose API this surface follows (the fields of the ollama-python 0.6 client).
OLLAMA_VERSION = "0.12.0"
LATEST = ":latest"
_FAR_FUTURE = "2318-08-21T00:00:00Z"  # what Ollama shows for a model kept loaded for good
_MAX_HEADER_BYTES = 64 * 1024 * 1024
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt")


def group_name(registry: ModelRegistry, name: str | None) -> str | None:
    """The group an Ollama model name means: itself, or without ":latest" when no group has the tag."""
    if not name:
        return None
    if name.endswith(LATEST):
        groups = {group.name for group in registry.groups()}
        if name not in groups and name[: -len(LATEST)] in groups:
            return name[: -len(LATEST)]
    return name


def ollama_name(group: str) -> str:
    return group if ":" in group else group + LATEST


@dataclass(frozen=True)
class ModelCard:
    format: str
    family: str
    parameters: int | None
    dtype: str
    size: int
    context_length: int | None


def _local_dir(deployment: ModelDeployment) -> Path | None:
    if deployment.model == BUNDLED_MODEL_ID:
        return Path(llmserve.__file__).resolve().parent / "models" / BUNDLED_MODEL_ID
    path = Path(deployment.model).expanduser()
    return path if path.is_dir() else None


def _safetensors_header(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        if length > _MAX_HEADER_BYTES:
            return {}
        header = orjson.loads(handle.read(length))
    return header if isinstance(header, dict) else {}


def _tensor_stats(weights: list[Path]) -> tuple[int, Counter[str]]:
    """Parameters and their dtypes, from the safetensors headers (no tensor is read)."""
    parameters, dtypes = 0, Counter[str]()
    for path in weights:
        if path.suffix != ".safetensors":
            continue
        for name, tensor in _safetensors_header(path).items():
            if name == "__metadata__":
                continue
            count = 1
            for dim in tensor.get("shape", ()):
                count *= int(dim)
            parameters += count
            dtypes[str(tensor.get("dtype", ""))] += count
    return parameters, dtypes


def _local_card(directory: Path, context_window: int | None) -> ModelCard:
    info: dict[str, Any] = {}
    if (config_file := directory / "config.json").is_file():
        info = orjson.loads(config_file.read_bytes())
    weights = [p for p in directory.iterdir() if p.suffix in _WEIGHT_SUFFIXES]
    parameters, dtypes = _tensor_stats(weights)
    dtype = dtypes.most_common(1)[0][0] if dtypes else str(info.get("dtype") or info.get("torch_dtype") or "")
    return ModelCard(
        "gguf" if weights and all(p.suffix == ".gguf" for p in weights) else "safetensors",
        str(info.get("model_type", "")),
        parameters or None,
        dtype,
        sum(p.stat().st_size for p in weights),
        context_window or info.get("max_position_embeddings"),
    )


def _card(group: ModelGroup) -> ModelCard:
    deployment = group.deployments[0]
    if deployment.provider != "local":
        return ModelCard("", deployment.provider, None, "", 0, deployment.context_window)
    directory = _local_dir(deployment)
    if directory is None:  # a hub id: its files are in a cache this server does not read
        return ModelCard("safetensors", "", None, "", 0, deployment.context_window)
    return _local_card(directory, deployment.context_window)


def _parameter_size(count: int | None) -> str:
    if count is None:
        return ""
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if count >= scale:
            return f"{count / scale:.1f}{unit}"
    return str(count)


def _details(card: ModelCard) -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": card.format,
        "family": card.family,
        "families": [card.family] if card.family else None,
        "parameter_size": _parameter_size(card.parameters),
        "quantization_level": card.dtype.upper(),
    }


def _digest(group: ModelGroup) -> str:
    served = ",".join(f"{d.provider}:{d.model}" for d in group.deployments)
    return hashlib.sha256(f"{group.name}={served}".encode()).hexdigest()


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _entry(group: ModelGroup, card: ModelCard) -> dict[str, Any]:
    name = ollama_name(group.name)
    return {
        "name": name,
        "model": name,
        "modified_at": _iso(group.created),
        "size": card.size,
        "digest": _digest(group),
        "details": _details(card),
    }


async def _cards(groups: list[ModelGroup]) -> list[ModelCard]:
    # Reading config.json and safetensors headers is file I/O: off the event loop.
    return await asyncio.to_thread(lambda: [_card(group) for group in groups])


async def tags(registry: ModelRegistry) -> dict[str, Any]:
    groups = registry.groups()
    return {"models": [_entry(g, c) for g, c in zip(groups, await _cards(groups), strict=True)]}


def _capabilities(group: ModelGroup) -> list[str]:
    if all(d.task == "embeddings" for d in group.deployments):
        return ["embedding"]
    # Tools reach only remote providers; the local engine refuses them (400).
    remote = all(d.provider != "local" for d in group.deployments)
    return ["completion", "tools"] if remote else ["completion"]


async def show(registry: ModelRegistry, name: str | None) -> dict[str, Any]:
    group = registry.group(group_name(registry, name))
    (card,) = await _cards([group])
    deployment = group.deployments[0]
    info: dict[str, Any] = {"general.architecture": card.family or deployment.provider}
    if card.parameters is not None:
        info["general.parameter_count"] = card.parameters
    if card.context_length is not None:
        info[f"{card.family or deployment.provider}.context_length"] = card.context_length
    return {
        "modelfile": f"# Served by llmserve {llmserve.__version__}\nFROM {deployment.model}\n",
        "parameters": f"num_predict {deployment.default_max_tokens}",
        "template": "",
        "details": _details(card),
        "model_info": info,
        "capabilities": _capabilities(group),
        "modified_at": _iso(group.created),
    }


def _loaded(group: ModelGroup) -> list[LocallyManaged]:
    return [p for p in group.providers if isinstance(p, LocallyManaged) and p.manager.state == "ready"]


async def ps(registry: ModelRegistry) -> dict[str, Any]:
    """The local models in memory now; a remote model is never loaded here, so it is not listed."""
    groups = [group for group in registry.groups() if _loaded(group)]
    models = []
    for group, card in zip(groups, await _cards(groups), strict=True):
        idle = min((p.manager.deployment.idle_unload_seconds or 0 for p in _loaded(group)), default=0)
        entry = _entry(group, card)
        del entry["modified_at"]
        on_gpu = group.deployments[0].device.startswith("cuda")
        models.append(
            {
                **entry,
                # With idle unloading, the latest it can stay: it unloads earlier if idle since before.
                "expires_at": _iso(time.time() + idle) if idle else _FAR_FUTURE,
                "size_vram": card.size if on_gpu else 0,
                "context_length": card.context_length,
            }
        )
    return {"models": models}


def version() -> dict[str, str]:
    return {"version": OLLAMA_VERSION}


async def embed(chat: ChatService, body: OllamaEmbedRequest, principal: Principal) -> dict[str, Any]:
    started = time.perf_counter()
    texts = body.texts()
    if texts:
        model, vectors = await chat.embed(texts, group_name(chat.registry, body.model), principal)
    else:  # Ollama answers an empty input with no vectors (an unknown model is still a 404)
        model, vectors = chat.registry.group(group_name(chat.registry, body.model)).name, []
    if body.dimensions is not None:
        vectors = [vector[: body.dimensions] for vector in vectors]
    total = time.perf_counter() - started
    return {
        "model": body.model or ollama_name(model),
        "embeddings": vectors,
        "total_duration": durations(total, total)["total_duration"],
        "load_duration": 0,
        # The same estimate /v1/embeddings reports (chars/4): no tokenizer for every remote model.
        "prompt_eval_count": sum(max(1, len(text) // 4) for text in texts),
    }


async def embeddings(
    chat: ChatService, body: OllamaEmbeddingsRequest, principal: Principal
) -> dict[str, Any]:
    if not body.prompt:  # Ollama answers an empty prompt with an empty vector
        return {"embedding": []}
    _, vectors = await chat.embed([body.prompt], group_name(chat.registry, body.model), principal)
    return {"embedding": vectors[0]}
