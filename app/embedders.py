"""Which embedder a pool uses: its own vectors (``provided``), a named local model, or a remote
OpenAI-compatible embedding server.

A pool records one name at creation (the store's ``model`` column): ``provided``, the name of
a local model (the default model, the bundled ``minilm``, or one of ``MMDSHOT_MODELS``), or the
remote server's (``remote`` or ``remote:<MMDSHOT_EMBEDDING_MODEL>``). :class:`EmbedderRegistry`
resolves a name to a plain :class:`selector.Embedder` (``embed(texts) -> (n, d)`` float32 unit
rows): local models load on first use and are shared by every pool that names them. The remote
embedder batches its requests, retries transient failures with backoff and raises
:class:`EmbeddingUnavailable` (503 ``embedding_unavailable``, :mod:`app.errors`) when the server
stays down, before anything of the request is stored.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import tenacity

import selector
from app.errors import ApiError
from selector.embedding import Embedder

logger = logging.getLogger(__name__)

PROVIDED = "provided"
"""The model name of a pool whose examples and queries carry their own vectors."""
BUNDLED = "minilm"
"""The bundled all-MiniLM-L6-v2, always available under this name."""
QUERY_CACHE_ENTRIES = 10_000
HEALTH_SECONDS = 2.0
"""How long :meth:`RemoteEmbedder.health` trusts its last probe."""


class EmbeddingUnavailable(Exception):
    """The remote embedding server did not answer, after the retries."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- vectors given by the client ----------------------------------------------------------------


def unit_rows(vectors: Sequence[Sequence[float]] | np.ndarray, dimension: int) -> np.ndarray:
    """Client vectors as float32 unit rows ``(n, dimension)``; ``ValueError`` naming the first
    bad one: a wrong dimension, a NaN or infinite value (also after the cast to float32), or
    a zero vector."""
    rows = []
    for i, vector in enumerate(vectors):
        array = np.asarray(vector, dtype=np.float64)
        if array.ndim != 1 or array.shape[0] != dimension:
            raise ValueError(
                f"vector {i} has dimension {array.shape[-1] if array.ndim else 0}, "
                f"the pool's is {dimension}"
            )
        with np.errstate(over="ignore"):
            narrowed = array.astype(np.float32)
        if not np.all(np.isfinite(array)) or not np.all(np.isfinite(narrowed)):
            raise ValueError(f"vector {i} holds a NaN or infinite value (in float32)")
        norm = float(np.linalg.norm(array))
        if norm == 0.0 or not math.isfinite(norm):
            raise ValueError(f"vector {i} is zero: it has no direction")
        rows.append((array / norm).astype(np.float32))
    return np.stack(rows) if rows else np.zeros((0, dimension), dtype=np.float32)


def vectors_or_422(vectors: Sequence[Sequence[float]], dimension: int, field: str) -> np.ndarray:
    """:func:`unit_rows`, its ``ValueError`` as 422 ``invalid_input`` naming ``field``."""
    try:
        return unit_rows(vectors, dimension)
    except ValueError as exc:
        raise ApiError(422, "invalid_input", f"{field}: {exc}", {"field": field}) from exc


class ProvidedVectors:
    """The embedder of a ``provided`` pool: it embeds nothing, every text is a client error."""

    def __init__(self, dimension: int) -> None:
        self._dimension = dimension

    @property
    def model_id(self) -> str:
        return PROVIDED

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        raise ApiError(
            422,
            "invalid_input",
            "this pool has provided embeddings: send vectors (embedding, query_embedding, "
            "query_embeddings, target.embeddings), not texts to embed",
        )


# --- the remote embedding server ----------------------------------------------------------------


class _Transient(Exception):
    """A failed request worth retrying: a connection error, a timeout, 429 or 5xx."""


class RemoteEmbedder:
    """An OpenAI-compatible ``POST {url}/embeddings`` (infinity, text-embeddings-inference,
    vLLM, OpenAI itself) as an :class:`selector.Embedder`: texts go in batches of
    ``batch_size``, a failed request is retried ``retries`` times with exponential backoff,
    then :class:`EmbeddingUnavailable`. The dimension is learnt from the first answer."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        model: str | None = None,
        batch_size: int = 64,
        timeout_s: float = 30.0,
        retries: int = 3,
        backoff_s: float = 0.2,
    ) -> None:
        self.url = url.rstrip("/") + "/embeddings"
        self.model = model
        self.batch_size = batch_size
        self.retries = retries
        self.backoff_s = backoff_s
        headers = {} if api_key is None else {"Authorization": f"Bearer {api_key}"}
        self._client = httpx.Client(timeout=timeout_s, headers=headers)
        self._dimension: int | None = None
        self._health: tuple[float, str | None] = (-math.inf, None)
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return "remote" if self.model is None else f"remote:{self.model}"

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self.embed(["dimension"])
        assert self._dimension is not None
        return self._dimension

    @property
    def known_dimension(self) -> int | None:
        """The dimension if an answer has told it, without asking."""
        return self._dimension

    def _post(self, texts: list[str]) -> np.ndarray:
        body: dict[str, Any] = {"input": texts, "encoding_format": "float"}
        if self.model is not None:
            body["model"] = self.model
        try:
            response = self._client.post(self.url, json=body)
        except httpx.TransportError as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise _Transient(f"HTTP {response.status_code}")
        if response.status_code != 200:
            raise EmbeddingUnavailable(
                f"the embedding server refused the request (HTTP {response.status_code}): "
                f"{response.text[:200]}"
            )
        try:
            data = sorted(response.json()["data"], key=lambda item: item["index"])
            vectors = np.asarray([item["embedding"] for item in data], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingUnavailable(
                "the embedding server's answer is not an OpenAI embeddings response"
            ) from exc
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise EmbeddingUnavailable(
                f"the embedding server answered {vectors.shape[0]} vectors for {len(texts)} texts"
            )
        return vectors

    def _request(self, texts: list[str]) -> np.ndarray:
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_Transient),
            stop=tenacity.stop_after_attempt(self.retries + 1),
            wait=tenacity.wait_exponential(multiplier=self.backoff_s, max=5.0),
            reraise=True,
        )
        try:
            return retrying(self._post, texts)
        except _Transient as exc:
            raise EmbeddingUnavailable(
                f"the embedding server at {self.url} is unavailable after "
                f"{self.retries + 1} attempts ({exc})"
            ) from exc

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        parts = []
        try:
            for start in range(0, len(texts), self.batch_size):
                parts.append(self._request(list(texts[start : start + self.batch_size])))
        except EmbeddingUnavailable as exc:
            self._health = (time.monotonic(), exc.message)
            raise
        self._health = (time.monotonic(), None)
        vectors = np.concatenate(parts)
        with self._lock:
            if self._dimension is None:
                self._dimension = int(vectors.shape[1])
        if vectors.shape[1] != self._dimension:
            raise EmbeddingUnavailable(
                f"the embedding server changed its dimension from {self._dimension} to "
                f"{vectors.shape[1]}"
            )
        try:
            return unit_rows(vectors, self._dimension)
        except ValueError as exc:
            raise EmbeddingUnavailable(f"the embedding server answered a bad {exc}") from exc

    def health(self) -> str | None:
        """None when the server answers, else why not: the last outcome if recent, else a
        one-text probe (one attempt, no retries, 2 s)."""
        checked, problem = self._health
        if time.monotonic() - checked < HEALTH_SECONDS:
            return problem
        try:
            response = self._client.post(
                self.url,
                json={"input": ["ready"], **({} if self.model is None else {"model": self.model})},
                timeout=2.0,
            )
            problem = None if response.status_code == 200 else f"HTTP {response.status_code}"
        except httpx.TransportError as exc:
            problem = f"{type(exc).__name__}"
        if problem is not None:
            problem = f"the embedding server at {self.url} is unavailable ({problem})"
        self._health = (time.monotonic(), problem)
        return problem

    def close(self) -> None:
        self._client.close()


# --- local models ----------------------------------------------------------------------------


def folder_dimension(folder: Path) -> int | None:
    """The output dimension of a sentence-transformers folder, read from its files without
    loading it (the last Dense layer's ``out_features``, else the pooling's dimension)."""
    try:
        modules = json.loads((folder / "modules.json").read_text())
        dimension = None
        for module in modules:
            config = folder / module.get("path", "") / "config.json"
            kind = str(module.get("type", ""))
            if kind.endswith("Pooling") and config.is_file():
                pooling = json.loads(config.read_text())  # sentence-transformers 3 or 6 key
                dimension = int(
                    pooling.get("word_embedding_dimension") or pooling["embedding_dimension"]
                )
            elif kind.endswith("Dense") and config.is_file():
                dimension = int(json.loads(config.read_text())["out_features"])
        return dimension
    except (OSError, ValueError, KeyError, TypeError):
        return None


def parse_models(text: str) -> dict[str, Path]:
    """``MMDSHOT_MODELS``: ``name=/path,name2=/path2``; ``ValueError`` for a malformed entry."""
    models: dict[str, Path] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        name, sep, path = entry.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path or name == PROVIDED or name.startswith("remote"):
            raise ValueError(
                f"MMDSHOT_MODELS entry {entry!r}: give name=/path (name neither 'provided' nor "
                "'remote...')"
            )
        models[name] = Path(path)
    return models


@dataclass
class _Entry:
    """A registered model: how to load it, and once loaded the embedder and its query cache."""

    name: str
    load: Callable[[], Embedder]
    path: Path | None = None
    embedder: Embedder | None = None
    cached: Embedder | None = None
    error: str | None = None


class EmbedderRegistry:
    """The models a pool may name: ``default`` (already loaded, under its own model id),
    ``minilm`` (an alias of the default when that is the bundled model), the folders of
    ``models`` (loaded by ``load_local(path)`` on first use), and ``provided``."""

    def __init__(
        self,
        default: Embedder,
        models: dict[str, Path],
        load_local: Callable[[Path | None], Embedder],
        bundled_is_default: bool,
    ) -> None:
        self.default_name = default.model_id
        self._entries: dict[str, _Entry] = {}
        self._aliases: dict[str, str] = {}
        self._lock = threading.Lock()
        self._entries[self.default_name] = _Entry(
            self.default_name,
            lambda: default,
            embedder=default,
            cached=selector.CachedEmbedder(default, QUERY_CACHE_ENTRIES),
        )
        if bundled_is_default:
            self._aliases[BUNDLED] = self.default_name
        else:
            self._entries[BUNDLED] = _Entry(BUNDLED, lambda: load_local(None))
        for name, path in models.items():
            if name in self._entries or name in self._aliases:
                continue
            self._entries[name] = _Entry(name, functools.partial(load_local, path), path=path)

    def canonical(self, name: str | None) -> str:
        """The stored name of a pool's model: None is the default; 422 for an unknown one."""
        if name is None:
            return self.default_name
        if name == PROVIDED:
            return PROVIDED
        name = self._aliases.get(name, name)
        if name not in self._entries:
            raise ApiError(
                422,
                "invalid_input",
                f"unknown model {name!r}: one of {[*sorted(self._entries), BUNDLED]} "
                "(GET /v1/info lists them), or embedding: provided",
                {"models": sorted(self._entries)},
            )
        return name

    def _loaded(self, name: str) -> _Entry:
        entry = self._entries.get(self._aliases.get(name, name))
        if entry is None:  # a pool stored with a model this server does not have
            raise ApiError(
                409,
                "conflict",
                f"this pool was embedded with {name!r}, which this server does not have "
                f"(it has {sorted(self._entries)}; MMDSHOT_MODELS, MMDSHOT_EMBEDDING_URL)",
            )
        if entry.embedder is None:
            with self._lock:  # one load per model, whichever pool asks first
                if entry.embedder is None:
                    try:
                        embedder = entry.load()
                    except selector.SelectorError as exc:
                        logger.error("loading model %r failed: %s", name, exc.message)
                        raise ApiError(
                            503, "not_ready", f"the model {name!r} failed to load; see the log"
                        ) from exc
                    entry.cached = selector.CachedEmbedder(embedder, QUERY_CACHE_ENTRIES)
                    entry.embedder = embedder
        return entry

    def get(self, name: str, dimension: int, *, query: bool = False) -> Embedder:
        """The embedder of a pool stored with model ``name`` and ``dimension``; with ``query``
        the one with the query cache in front. 409 when the model's dimension is not the
        pool's (the folder behind a name changed)."""
        if name == PROVIDED:
            return ProvidedVectors(dimension)
        entry = self._loaded(name)
        assert entry.embedder is not None and entry.cached is not None
        known = (
            entry.embedder.known_dimension
            if isinstance(entry.embedder, RemoteEmbedder)
            else entry.embedder.dimension
        )
        if known is not None and known != dimension:
            raise ApiError(
                409,
                "conflict",
                f"the pool's vectors have dimension {dimension}, its model {name!r} now "
                f"embeds with {known}",
            )
        return entry.cached if query else entry.embedder

    def dimension_of(self, name: str) -> int:
        """A model's dimension, for a new pool (loads a local model, asks a remote one)."""
        return self._loaded(name).embedder.dimension  # type: ignore[union-attr]

    def describe(self) -> list[dict[str, Any]]:
        """Every model for ``/v1/info``: name, dimension (null while unknown: a remote server
        not yet asked), whether it is loaded, the default."""
        described = []
        for name, entry in sorted(self._entries.items()):
            if entry.embedder is None:
                dimension = folder_dimension(entry.path or selector_bundled_path())
            elif isinstance(entry.embedder, RemoteEmbedder):
                dimension = entry.embedder.known_dimension
            else:
                dimension = entry.embedder.dimension
            described.append(
                {
                    "name": name,
                    "dimension": dimension,
                    "loaded": entry.embedder is not None,
                    "default": name == self.default_name,
                    "aliases": sorted(a for a, target in self._aliases.items() if target == name),
                }
            )
        return described

    @property
    def remote(self) -> RemoteEmbedder | None:
        """The remote embedder, when one is configured."""
        for entry in self._entries.values():
            if isinstance(entry.embedder, RemoteEmbedder):
                return entry.embedder
        return None


def selector_bundled_path() -> Path:
    """The bundled MiniLM folder (the library's, whichever module holds it)."""
    from selector import embedding

    return embedding.bundled_model_path()
