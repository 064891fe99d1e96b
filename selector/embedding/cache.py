"""An LRU cache in front of any embedder."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from selector.embedding.protocol import Embedder, content_hash


class CachedEmbedder:
    """Wraps an embedder with an LRU cache keyed by ``(model_id, content_hash(text))``, so
    the same text is embedded once; a batch embeds only its missing, distinct texts.
    :meth:`lookup` and :meth:`remember` let a caller that embeds elsewhere (the service's
    batcher) share the cache."""

    def __init__(self, inner: Embedder, max_entries: int = 100_000) -> None:
        self.inner = inner
        self.max_entries = max_entries
        self._cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def lookup(self, texts: Sequence[str]) -> tuple[np.ndarray, dict[str, list[int]]]:
        """``(rows, missing)``: the cached rows filled in (others zero) and, for each distinct
        text not cached, the rows that hold it (counted as hits and misses)."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        with self._lock:
            for row, text in enumerate(texts):
                key = (self.inner.model_id, content_hash(text))
                cached = self._cache.get(key)
                if cached is None:
                    missing.setdefault(text, []).append(row)
                else:
                    self._cache.move_to_end(key)
                    out[row] = cached
            self.hits += len(texts) - sum(len(rows) for rows in missing.values())
            self.misses += len(missing)
        return out, missing

    def remember(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Cache ``vectors[i]`` as the embedding of ``texts[i]`` (oldest entries evicted)."""
        with self._lock:
            for text, vector in zip(texts, vectors, strict=True):
                self._cache[(self.inner.model_id, content_hash(text))] = vector.copy()
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out, missing = self.lookup(texts)
        if missing:
            distinct = list(missing)
            vectors = self.inner.embed(distinct)
            for text, vector in zip(distinct, vectors, strict=True):
                out[missing[text]] = vector
            self.remember(distinct, vectors)
        return out
