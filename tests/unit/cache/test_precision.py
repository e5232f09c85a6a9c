"""Precision and recall of the semantic cache on a labelled set, with the packaged embedding model.

Each pair goes through a fresh ResponseCache at the configured default threshold: the first text's
answer is stored, the second text is looked up. A hit on a non-paraphrase is a wrong answer served to a
user, so precision is asserted; recall is printed (``pytest -s``) with a sweep of other thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from llmserve.cache.semantic import SemanticIndex
from llmserve.cache.service import ResponseCache
from llmserve.cache.stores import MemoryStore
from llmserve.config import SemanticCacheSettings
from tests.unit.cache.fakes import ModelEmbedder, TableEmbedder, answer, cache_settings, chat
from tests.unit.cache.paraphrases import HELD_OUT, PAIRS, LabelledPair

DEFAULT_THRESHOLD = SemanticCacheSettings().threshold
SWEEP = (0.80, 0.85, 0.88, 0.90, 0.92, 0.94, 0.96)
MIN_PRECISION = 0.95
# A veto that rejected everything would be "precise": English paraphrases must still hit.
MIN_ENGLISH_RECALL = 0.4


@dataclass(frozen=True)
class Score:
    true_hits: int = 0
    wrong_hits: int = 0
    misses: int = 0

    @property
    def precision(self) -> float:
        hits = self.true_hits + self.wrong_hits
        return self.true_hits / hits if hits else 1.0

    @property
    def recall(self) -> float:
        positives = self.true_hits + self.misses
        return self.true_hits / positives if positives else 1.0

    def __str__(self) -> str:
        return (
            f"precision {self.precision:.3f} recall {self.recall:.3f} "
            f"(hits {self.true_hits}, wrong hits {self.wrong_hits}, misses {self.misses})"
        )


@pytest.fixture(scope="module")
def vectors(minilm: ModelEmbedder) -> dict[str, list[float]]:
    return minilm.embed_now(sorted({text for pair in PAIRS for text in (pair.first, pair.second)}))


async def hits(pair: LabelledPair, threshold: float, embedder: TableEmbedder) -> bool:
    settings = cache_settings(exact=True, semantic=True, threshold=threshold)
    index = SemanticIndex(threshold, settings.semantic.max_entries)
    cache = ResponseCache(settings, MemoryStore(16), index, embedder)
    await cache.store(chat(pair.first), answer(f"answer to {pair.first}"))
    return await cache.lookup(chat(pair.second)) is not None


async def score(pairs: Sequence[LabelledPair], threshold: float, embedder: TableEmbedder) -> Score:
    true_hits = wrong_hits = misses = 0
    for pair in pairs:
        hit = await hits(pair, threshold, embedder)
        true_hits += hit and pair.paraphrase
        wrong_hits += hit and not pair.paraphrase
        misses += not hit and pair.paraphrase
    return Score(true_hits, wrong_hits, misses)


async def test_semantic_hits_are_precise_at_the_default_threshold(vectors: dict[str, list[float]]) -> None:
    embedder = TableEmbedder(vectors)
    english = [pair for pair in PAIRS if (pair.first + pair.second).isascii()]
    overall = await score(PAIRS, DEFAULT_THRESHOLD, embedder)
    english_score = await score(english, DEFAULT_THRESHOLD, embedder)
    print(f"\n{len(PAIRS)} labelled pairs, all-MiniLM-L6-v2, threshold {DEFAULT_THRESHOLD}")
    print(f"  all pairs:        {overall}")
    print(f"  English pairs:    {english_score}")
    print(f"  held-out pairs:   {await score(HELD_OUT, DEFAULT_THRESHOLD, embedder)}")
    for threshold in SWEEP:
        print(f"  threshold {threshold:.2f}:  {await score(PAIRS, threshold, embedder)}")
    assert overall.precision >= MIN_PRECISION
    assert english_score.recall >= MIN_ENGLISH_RECALL
