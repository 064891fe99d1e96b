"""A deterministic fake embedder for tests: no model, no randomness across runs."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from selector.embedding.protocol import embed_sorted, normalize_rows
from selector.errors import InvalidInputError

_WORD = re.compile(r"\w+")


class HashingEmbedder:
    """The normalised sum of one pseudo-random vector per lower-cased word (seeded by the
    word's hash), so texts that share words are close. Its "tokens" are the words' seeds, so
    it is also a :class:`~selector.embedding.TokenizingEmbedder` for tests of batching."""

    def __init__(self, dimension: int = 32) -> None:
        if dimension < 2:
            raise InvalidInputError("dimension must be at least 2")
        self._dimension = dimension

    @property
    def model_id(self) -> str:
        return f"hashing-{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    def _word_vector(self, seed: int) -> np.ndarray:
        return np.random.default_rng(seed).standard_normal(self._dimension)

    def tokenize(self, texts: Sequence[str]) -> list[np.ndarray]:
        out = []
        for text in texts:
            words = _WORD.findall(text.lower()) or [text]
            seeds = [
                int.from_bytes(hashlib.sha256(word.encode("utf-8")).digest()[:8], "little")
                for word in words
            ]
            out.append(np.array(seeds, dtype=np.uint64))
        return out

    def embed_tokens(self, tokens: Sequence[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(tokens), self._dimension), dtype=np.float64)
        for row, seeds in enumerate(tokens):
            for seed in seeds.tolist():
                out[row] += self._word_vector(int(seed))
        return normalize_rows(out)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return embed_sorted(self, texts, max(1, len(texts)))
