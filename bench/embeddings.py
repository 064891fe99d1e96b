"""Embeddings of the tweet corpus with the bundled MiniLM, cached under bench/.cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.data import Tweet, unique_tweets

CACHE = Path(__file__).resolve().parent / ".cache"


def tweet_embeddings(limit: int | None = None) -> tuple[list[Tweet], np.ndarray]:
    """``(tweets, (n, 384) float32)`` for the first ``limit`` unique tweets (all if None),
    embedded once and cached as .npy. The corpus is sorted by label: a short prefix holds
    negative tweets only."""
    tweets = unique_tweets()[:limit]
    return tweets, _embedded(tweets, CACHE / f"tweets-minilm-{len(tweets)}.npy")


def sampled_tweet_embeddings(count: int, seed: int) -> tuple[list[Tweet], np.ndarray]:
    """``(tweets, (count, 384) float32)`` for a seeded sample of ``count`` unique tweets, in
    corpus order (every label, about in the corpus's proportions), embedded once and cached."""
    tweets = unique_tweets()
    rows = np.sort(np.random.default_rng(seed).choice(len(tweets), size=count, replace=False))
    sample = [tweets[row] for row in rows]
    return sample, _embedded(sample, CACHE / f"tweets-minilm-sample-{count}-seed-{seed}.npy")


def _embedded(tweets: list[Tweet], path: Path) -> np.ndarray:
    """The tweets' unit embeddings ``(n, 384)``, read from ``path`` or computed and saved."""
    CACHE.mkdir(exist_ok=True)
    if path.exists():
        return np.load(path)
    from selector import SentenceTransformerEmbedder

    vectors = SentenceTransformerEmbedder(batch_size=128).embed([t.text for t in tweets])
    np.save(path, vectors)
    return vectors


if __name__ == "__main__":
    tweets, vectors = tweet_embeddings()
    print(len(tweets), vectors.shape)
