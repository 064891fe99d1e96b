"""Embedders: the fake is deterministic, the cache embeds a text once, the bundled model
loads offline."""

from __future__ import annotations

import numpy as np
import pytest

from selector import CachedEmbedder, HashingEmbedder, HFTokenCounter, SentenceTransformerEmbedder
from selector.embedding import content_hash
from selector.errors import EmbeddingModelError


class CountingEmbedder(HashingEmbedder):
    def __init__(self) -> None:
        super().__init__(16)
        self.calls: list[list[str]] = []

    def embed(self, texts):  # type: ignore[no-untyped-def]
        self.calls.append(list(texts))
        return super().embed(texts)


def test_hashing_embedder_is_deterministic_and_normalised() -> None:
    embedder = HashingEmbedder(24)
    first = embedder.embed(["the cat sat", "a dog ran", "the cat sat"])
    assert first.dtype == np.float32 and first.shape == (3, 24)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(first[0], first[2])
    np.testing.assert_array_equal(
        first, HashingEmbedder(24).embed(["the cat sat", "a dog ran", "the cat sat"])
    )
    shared, unrelated = (embedder.embed(["the cat ran"]) @ first[:2].T)[0]
    assert shared > unrelated + 0.3


def test_cache_embeds_each_text_once() -> None:
    inner = CountingEmbedder()
    cached = CachedEmbedder(inner, max_entries=3)
    out = cached.embed(["a", "b", "a"])
    assert inner.calls == [["a", "b"]]
    np.testing.assert_array_equal(out, HashingEmbedder(16).embed(["a", "b", "a"]))
    cached.embed(["b", "c"])
    assert inner.calls[-1] == ["c"]
    assert cached.hits == 1 and cached.misses == 3
    cached.embed(["d", "e"])  # evicts the oldest entries
    cached.embed(["a"])
    assert inner.calls[-1] == ["a"]
    assert content_hash("a") == content_hash("a") != content_hash("b")


def test_bad_model_path_is_a_model_error(tmp_path) -> None:
    with pytest.raises(EmbeddingModelError):
        SentenceTransformerEmbedder(tmp_path / "missing")


@pytest.mark.slow
def test_bundled_minilm_embeds_offline_and_counts_tokens(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    embedder = SentenceTransformerEmbedder()
    vectors = embedder.embed(
        ["self-driving cars are safe", "autonomous vehicles are safe", "I like soup"]
    )
    assert vectors.shape == (3, 384) and embedder.dimension == 384
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2] + 0.2
    assert HFTokenCounter().count(["hello world, how are you?", ""]) == [7, 0]
