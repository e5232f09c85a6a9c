"""The running batch's KV cache: per-layer buffers with spare columns, rows padded on the left.

transformers' ``DynamicLayer`` appends a token with ``torch.cat``, copying the whole cache every
step: a quarter of a batched decode step on the bundled model, growing with batch and length. These
layers write the new column into spare room instead and copy only when the room runs out (every
``HEADROOM`` tokens) or when rows join or leave and the batch's cache is assembled anew.

Needs transformers' per-layer cache API (``cache_utils.DynamicLayer``, 4.56+); without it
``AVAILABLE`` is False and the engine runs every request alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

try:
    from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

    AVAILABLE = True
except ImportError:  # an older transformers: no layer objects to build a batch cache from
    AVAILABLE = False

HEADROOM = 64  # spare token columns per reallocation: one copy per 64 steps instead of one per step

KV = tuple[torch.Tensor, torch.Tensor]


if AVAILABLE:

    class GrowingLayer(DynamicLayer):
        """``keys``/``values`` are views of the first ``length`` columns of larger buffers."""

        def __init__(self) -> None:
            super().__init__()
            self._buffers: KV | None = None
            self._length = 0

        @classmethod
        def holding(cls, buffers: KV, length: int) -> GrowingLayer:
            layer = cls()
            layer.lazy_initialization(buffers[0])
            layer._buffers, layer._length = buffers, length
            layer.keys, layer.values = buffers[0][:, :, :length], buffers[1][:, :, :length]
            return layer

        def update(
            self, key_states: torch.Tensor, value_states: torch.Tensor, cache_kwargs: Any = None
        ) -> KV:
            if not self.is_initialized:
                self.lazy_initialization(key_states)
            end = self._length + key_states.shape[-2]
            if self._buffers is None or end > self._buffers[0].shape[-2]:
                self._reserve(key_states, value_states, end + HEADROOM)
            assert self._buffers is not None
            keys, values = self._buffers
            keys[:, :, self._length : end].copy_(key_states)
            values[:, :, self._length : end].copy_(value_states)
            self._length = end
            self.keys, self.values = keys[:, :, :end], values[:, :, :end]
            return self.keys, self.values

        def _reserve(self, key_states: torch.Tensor, value_states: torch.Tensor, columns: int) -> None:
            keys = key_states.new_zeros((*key_states.shape[:2], columns, key_states.shape[-1]))
            values = value_states.new_zeros((*value_states.shape[:2], columns, value_states.shape[-1]))
            if self._buffers is not None and self._length:
                keys[:, :, : self._length].copy_(self._buffers[0][:, :, : self._length])
                values[:, :, : self._length].copy_(self._buffers[1][:, :, : self._length])
            self._buffers = (keys, values)

    class BatchCache(DynamicCache):
        def __init__(self, layers: list[Any] | None = None) -> None:
            # Not DynamicCache.__init__: it would make plain DynamicLayers (or sliding ones that crop
            # themselves and could no longer be padded and merged); the sliding mask still applies.
            Cache.__init__(self, layers=layers, layer_class_to_replicate=None if layers else GrowingLayer)


def new_cache() -> Any:
    """An empty cache for one prompt's prefill, ready to be merged into the batch later."""
    return BatchCache()


def layer_tensors(cache: Any) -> list[KV]:
    return [(layer.keys, layer.values) for layer in cache.layers]


def assemble(parts: Sequence[list[KV]], width: int) -> Any:
    """One cache holding every part's rows, in order, each right-aligned in ``width`` columns.

    The columns left of a row's data are zeros as well as masked: a masked score gets zero weight,
    but zero times a NaN from uninitialised memory would still be NaN.
    """
    layers = []
    for index in range(len(parts[0])):
        tensors = [part[index] for part in parts]
        rows = sum(keys.shape[0] for keys, _ in tensors)
        first_keys, first_values = tensors[0]
        keys = first_keys.new_zeros((rows, first_keys.shape[1], width + HEADROOM, first_keys.shape[-1]))
        values = first_values.new_zeros(
            (rows, first_values.shape[1], width + HEADROOM, first_values.shape[-1])
        )
        row = 0
        for part_keys, part_values in tensors:
            count, columns = part_keys.shape[0], part_keys.shape[-2]
            keys[row : row + count, :, width - columns : width].copy_(part_keys)
            values[row : row + count, :, width - columns : width].copy_(part_values)
            row += count
        layers.append(GrowingLayer.holding((keys, values), width))
    return BatchCache(layers)
