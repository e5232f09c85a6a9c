"""The running batch: rows that decode together, sharing one left-padded KV cache.

Each row keeps its own length (prompt plus the tokens fed back so far). The cache is as wide as the
longest row; shorter rows are padded on the left, and every decode step passes an attention mask
that hides the padding and explicit ``position_ids`` so each row sees the positions it would see
alone. Rows join after their own prefill and leave at token boundaries; both rebuild the cache (a
copy per join or leave, not per token) and trim padding columns no row needs any more. A batch of
one row runs exactly the call the single-sequence loop makes, so ``max_batch_size`` 1 is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from llmserve.engine import kv_cache
from llmserve.engine.generation import Decoding, prefill_kwargs
from llmserve.engine.loader import LoadedModel

if TYPE_CHECKING:
    from llmserve.engine.request import Request


def supports_batching(model: Any) -> bool:
    """Transformers' own architectures with a plain per-layer KV cache; remote code and stateful
    models (Mamba, ...) keep caches whose layout this batch cannot pad and merge, so they run alone."""
    module = type(model).__module__
    supports_dynamic = getattr(model, "_supports_default_dynamic_cache", None)
    return (
        kv_cache.AVAILABLE
        and module.startswith("transformers.")
        and callable(supports_dynamic)
        and bool(supports_dynamic())
    )


def _takes_prepared_mask(config: Any) -> bool:
    """SDPA without sliding-window layers: one (rows, 1, 1, columns) padding mask serves every layer,
    built here in a few tensor ops instead of transformers' per-step mask construction (vmap'd index
    functions, 15% of a decode step on the bundled model)."""
    if getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    layer_types = getattr(config, "layer_types", None)
    if layer_types:
        return all(kind == "full_attention" for kind in layer_types)
    return not getattr(config, "sliding_window", None)


@dataclass(eq=False)
class Row:
    request: Request
    decoding: Decoding
    length: int  # tokens of this row held in the cache
    next_token: int  # chosen, not yet fed to the model


class RunningBatch:
    """Owned by the scheduler thread; never touched from anywhere else."""

    def __init__(self, loaded: LoadedModel, batchable: bool) -> None:
        self.loaded = loaded
        self.batchable = batchable
        self.rows: list[Row] = []
        self._cache: Any = None
        self._width = 0  # columns in the cache: the longest row's length
        self._prepared_mask = _takes_prepared_mask(loaded.model.config)

    def __len__(self) -> int:
        return len(self.rows)

    def prefill(self, prompt_ids: list[int]) -> tuple[torch.Tensor, Any]:
        """Runs one prompt alone (no padding, so its first token is exactly the unbatched one)."""
        model = self.loaded.model
        cache = kv_cache.new_cache() if self.batchable else None
        inputs = torch.tensor([prompt_ids], device=self.loaded.device)
        output = model(input_ids=inputs, past_key_values=cache, use_cache=True, **prefill_kwargs(model))
        return output.logits[0, -1], output.past_key_values

    def add(self, joining: Sequence[tuple[Row, Any]]) -> None:
        """Merges rows with their prefill caches into the batch in one copy."""
        if not joining:
            return
        if not self.rows and len(joining) == 1:
            row, cache = joining[0]
            self.rows, self._cache, self._width = [row], cache, row.length
            return
        parts = [kv_cache.layer_tensors(self._cache)] if self.rows else []
        parts += [kv_cache.layer_tensors(cache) for _, cache in joining]
        width = max([self._width] + [row.length for row, _ in joining])
        self.rows += [row for row, _ in joining]
        self._cache, self._width = kv_cache.assemble(parts, width), width

    def keep(self, kept: list[Row]) -> None:
        """Drops every row not in ``kept``; trims padding columns the remaining rows do not need."""
        if len(kept) == len(self.rows):
            return
        if not kept:
            self.rows, self._cache, self._width = [], None, 0
            return
        index = torch.tensor([self.rows.index(row) for row in kept], device=self.loaded.device)
        width = max(row.length for row in kept)
        trim = self._width - width
        layers = [(k[index, :, trim:], v[index, :, trim:]) for k, v in kv_cache.layer_tensors(self._cache)]
        self.rows, self._cache, self._width = kept, kv_cache.assemble([layers], width), width

    def decode(self) -> torch.Tensor:
        """Feeds every row its next token; returns the (rows, vocab) logits for the token after it."""
        device = self.loaded.device
        inputs = torch.tensor([[row.next_token] for row in self.rows], device=device)
        if len(self.rows) == 1:
            # No padding to hide: the same call as the single-sequence loop, so the same numbers.
            output = self.loaded.model(input_ids=inputs, past_key_values=self._cache, use_cache=True)
        else:
            pads = torch.tensor([self._width - row.length for row in self.rows], device=device)
            mask = torch.arange(self._width + 1, device=device)[None, :] >= pads[:, None]
            positions = torch.tensor([[row.length] for row in self.rows], device=device)
            output = self.loaded.model(
                input_ids=inputs,
                attention_mask=mask[:, None, None, :] if self._prepared_mask else mask.long(),
                position_ids=positions,
                past_key_values=self._cache,
                use_cache=True,
            )
        self._cache = output.past_key_values
        self._width += 1
        for row in self.rows:
            row.length += 1
        logits: torch.Tensor = output.logits[:, -1]
        return logits
