"""What an embedder is: texts in, unit rows out; optionally tokenise and forward apart.

Every embedder returns L2-normalised float32 arrays of shape ``(len(texts), dimension)``.
An embedder that can split its work (:class:`TokenizingEmbedder`) lets a caller tokenise on
its own threads (``tokenize``) and run many texts' forward at once (``embed_tokens``), which
is how the service batches concurrent queries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into unit vectors."""

    @property
    def model_id(self) -> str:
        """A stable name of the model (part of every cache key)."""
        ...

    @property
    def dimension(self) -> int:
        """The embedding dimension d."""
        ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``texts: n strings -> (n, d)`` float32, each row of unit norm."""
        ...


@runtime_checkable
class TokenizingEmbedder(Embedder, Protocol):
    """An embedder whose tokenisation and forward are separate steps:
    ``embed_tokens(tokenize(texts))`` equals ``embed(texts)`` (to float rounding)."""

    def tokenize(self, texts: Sequence[str]) -> list[np.ndarray]:
        """``texts: n strings -> n`` int64 arrays of token ids (truncated, with the model's
        special tokens). Thread-safe and free of the model: run it on any thread."""
        ...

    def embed_tokens(self, tokens: Sequence[np.ndarray]) -> np.ndarray:
        """One forward over tokenised texts (padded to the longest): ``n`` id arrays ->
        ``(n, d)`` unit rows in the same order. Callers sort by length to waste little
        padding."""
        ...


def content_hash(text: str) -> str:
    """SHA-256 of the UTF-8 text, hex: the identity of a text for caches and deduplication."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Each row divided by its L2 norm (zero rows stay zero), as float32."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def pad_tokens(tokens: Sequence[np.ndarray], pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` id arrays -> ``(ids, attention_mask)``, both ``(n, longest)`` int64."""
    width = max((len(row) for row in tokens), default=0)
    ids = np.full((len(tokens), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(tokens), width), dtype=np.int64)
    for position, row in enumerate(tokens):
        ids[position, : len(row)] = row
        mask[position, : len(row)] = 1
    return ids, mask


def length_order(tokens: Sequence[np.ndarray]) -> list[int]:
    """Row indices from the shortest tokenised text to the longest (stable)."""
    return sorted(range(len(tokens)), key=lambda row: len(tokens[row]))


def embed_sorted(embedder: TokenizingEmbedder, texts: Sequence[str], batch_size: int) -> np.ndarray:
    """``embed`` for a :class:`TokenizingEmbedder`: tokenise all, then forwards of at most
    ``batch_size`` texts of similar length, rows put back in the input order."""
    out = np.zeros((len(texts), embedder.dimension), dtype=np.float32)
    if not texts:
        return out
    tokens = embedder.tokenize(texts)
    order = length_order(tokens)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        out[rows] = embedder.embed_tokens([tokens[row] for row in rows])
    return out
