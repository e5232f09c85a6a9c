"""Issue 14: a model that cannot load fails fast and for good (one load, one log line, a 503 naming
the model without a 1 s Retry-After); a missing local path fails the server's start, naming the entry."""

from __future__ import annotations

import pytest

from llmserve.config import ModelDeployment, Settings
from llmserve.engine.loader import PermanentLoadError, load_model, looks_like_path
from llmserve.engine.manager import FAILED_RETRY_AFTER_SECONDS, ModelManager
from llmserve.errors import ModelLoadFailed
from llmserve.services.models import UnsupportedProvider, check_buildable

MISSING = "/nonexistent/llmserve-test/model-dir"


class NeverFound:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, deployment: ModelDeployment) -> object:
        self.calls += 1
        raise PermanentLoadError(f"models entry '{deployment.name}': no such path: {deployment.model}")


async def test_a_model_that_cannot_load_is_loaded_once_then_refused_at_once() -> None:
    loader = NeverFound()
    manager = ModelManager(ModelDeployment(name="broken", model=MISSING), loader)  # type: ignore[arg-type]
    for _ in range(3):
        with pytest.raises(ModelLoadFailed) as caught:
            await manager.get()
        assert "broken" in caught.value.message and caught.value.status_code == 503
        assert getattr(caught.value, "retry_after", None) == FAILED_RETRY_AFTER_SECONDS
    manager.start_loading()
    assert loader.calls == 1 and manager.state == "failed" and manager.permanently_failed


def test_the_loader_refuses_a_missing_local_path_before_transformers() -> None:
    with pytest.raises(PermanentLoadError, match="no such path"):
        load_model(ModelDeployment(name="broken", model=MISSING))


def test_what_looks_like_a_path() -> None:
    assert looks_like_path("/models/x") and looks_like_path("./x") and looks_like_path("~/x")
    assert looks_like_path("a/b/c")
    assert not looks_like_path("Qwen/Qwen2.5-0.5B-Instruct") and not looks_like_path("tiny-chat")


def test_a_missing_local_path_fails_the_start_naming_the_entry() -> None:
    settings = Settings(models=[{"name": "chat", "provider": "local", "model": MISSING}])
    with pytest.raises(UnsupportedProvider, match=r"models entry 'chat'.*does not exist"):
        check_buildable(settings)


def test_a_hub_id_is_not_refused_at_start() -> None:
    check_buildable(Settings(models=[{"name": "chat", "provider": "local", "model": "org/absent-model"}]))


def test_a_hub_id_that_cannot_be_found_is_a_permanent_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PermanentLoadError, match="models entry 'hub'"):
        load_model(ModelDeployment(name="hub", model="llmserve-test/absent-model"))
