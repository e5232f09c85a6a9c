"""serving/ollama_models: Ollama's model names, and the details read from a local model's files."""

from __future__ import annotations

import struct
from pathlib import Path

import orjson
from ollama import ListResponse, ShowResponse

from llmserve.api.serving import ollama_models
from llmserve.config import ModelDeployment
from llmserve.services.models import ModelGroup, ModelRegistry
from tests.unit.routing.fakes import FakeClock, FakeProvider, deployment, router


def registry(*names: str) -> ModelRegistry:
    clock = FakeClock()
    routed = {name: [deployment(FakeProvider(name), clock, group=name)] for name in names}
    groups = [ModelGroup(name, (d[0].provider,), (d[0].config,), 1_700_000_000) for name, d in routed.items()]
    return ModelRegistry(groups, names[0], router(routed, clock))


def test_latest_finds_the_group_without_the_tag_unless_one_has_it() -> None:
    models = registry("tiny-chat", "llama3:latest", "org/model:8b")
    assert ollama_models.group_name(models, "tiny-chat:latest") == "tiny-chat"
    assert ollama_models.group_name(models, "llama3:latest") == "llama3:latest"
    assert ollama_models.group_name(models, "org/model:8b") == "org/model:8b"
    assert ollama_models.group_name(models, "missing:latest") == "missing:latest"  # the pipeline says 404
    assert ollama_models.group_name(models, None) is None and ollama_models.group_name(models, "") is None
    assert [ollama_models.ollama_name(n) for n in ("tiny-chat", "llama3:latest")] == [
        "tiny-chat:latest",
        "llama3:latest",
    ]


def write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]]) -> None:
    """A safetensors file whose header names ``tensors`` (the data bytes are zeros)."""
    header: dict[str, object] = {}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = 4
        for dim in shape:
            size *= dim
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    encoded = orjson.dumps({"__metadata__": {"format": "pt"}, **header})
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + bytes(offset))


def test_a_local_models_details_come_from_its_config_and_safetensors_header(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "qwen2", "max_position_embeddings": 32768}')
    write_safetensors(tmp_path / "model.safetensors", {"a": ("BF16", [1000, 1500]), "b": ("F32", [10])})
    group = ModelGroup("qwen", (), (ModelDeployment(name="qwen", model=str(tmp_path)),), 0)
    card = ollama_models._card(group)
    assert (card.family, card.parameters, card.dtype, card.context_length) == (
        "qwen2",
        1_500_010,
        "BF16",
        32768,
    )
    assert card.size == (tmp_path / "model.safetensors").stat().st_size
    details = ollama_models._details(card)
    assert details["parameter_size"] == "1.5M" and details["quantization_level"] == "BF16"


def test_a_remote_model_reports_what_its_config_says() -> None:
    remote = ModelDeployment(
        name="gpt", provider="openai", model="gpt-4o", api_base="http://x/v1", context_window=128000
    )
    card = ollama_models._card(ModelGroup("gpt", (), (remote,), 0))
    assert (card.format, card.family, card.parameters, card.size, card.context_length) == (
        "",
        "openai",
        None,
        0,
        128000,
    )


async def test_tags_and_show_parse_as_the_clients_types() -> None:
    models = registry("g")
    listed = ListResponse.model_validate(await ollama_models.tags(models))
    assert [m.model for m in listed.models] == ["g:latest"] and listed.models[0].modified_at is not None
    shown = ShowResponse.model_validate(await ollama_models.show(models, "g:latest"))
    assert shown.capabilities == ["completion"] and shown.modelfile and "FROM m" in shown.modelfile
