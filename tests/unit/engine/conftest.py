"""The bundled model, loaded once per module, for engine tests that generate with it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from llmserve.config import BUNDLED_MODEL_ID, ModelDeployment
from llmserve.engine.loader import LoadedModel, load_model


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tests that check replies and their order, not speed: on a busy 2-core machine two intra-op
    threads wait on each other at every kernel (50 s instead of 4 s for one test); one does not."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def loaded() -> LoadedModel:
    return load_model(ModelDeployment(name=BUNDLED_MODEL_ID, model=BUNDLED_MODEL_ID))
