"""Embeddings of the whole tweet corpus with the bundled MiniLM, cached under bench/.cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.data import Tweet, unique_tweets

CACHE = Path(__file__).resolve().parent / ".cache"


def tweet_embeddings(limit: int | None = None) -> tuple[list[Tweet], np.ndarray]:
    """``(tweets, (n, 384) float32)`` for the first ``limit`` unique tweets (all if None),
    embedded once and cached as .npy."""
    tweets = unique_tweets()[:limit]
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"tweets-minilm-{len(tweets)}.npy"
    if path.exists():
        return tweets, np.load(path)
    from selector import SentenceTransformerEmbedder

    vectors = SentenceTransformerEmbedder(batch_size=128).embed([t.text for t in tweets])
    np.save(path, vectors)
    return tweets, vectors


if __name__ == "__main__":
    tweets, vectors = tweet_embeddings()
    print(len(tweets), vectors.shape)
