"""The ONNX backend: a sentence-transformers folder exported once to ONNX and run by
onnxruntime, tokenised with the model's own ``tokenizer.json``."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from selector.embedding.models import LoadedModel, model_folder
from selector.embedding.protocol import embed_sorted, normalize_rows, pad_tokens
from selector.errors import EmbeddingModelError

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


class OnnxSentenceEmbedder(LoadedModel):
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
        path, self._model_id = model_folder(model_path)
        layout = SentenceModelLayout.read(path)
        self.path = path
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
        """A session running each forward on ``threads`` threads. Its pool's threads sleep
        between the operators of a forward rather than spin (ONNX Runtime spins by default):
        spinning threads take the cores from whatever else the process runs. In the service,
        where a writer's small forward ran on both cores beside a selection on the other
        compute thread, selections with two writers fell to 0.51x of those without (0.77x
        not spinning); a lone forward of 256 texts took 1.91-2.13 s spinning and 1.44-1.49 s
        not, on a busy 2-core machine."""
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
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
        return embed_sorted(self, texts, self._batch_size)

    def tokenize(self, texts: Sequence[str]) -> list[np.ndarray]:
        encodings = self._tokenizer.encode_batch(list(texts))
        return [np.asarray(encoding.ids, dtype=np.int64) for encoding in encodings]

    def embed_tokens(self, tokens: Sequence[np.ndarray]) -> np.ndarray:
        if not tokens:
            return np.zeros((0, self._dimension), dtype=np.float32)
        with self._lock:
            alone = self._in_flight == 0
            self._in_flight += 1
        try:
            # A lone call may use every core; small calls that overlap take one thread each.
            bulk = len(tokens) > SMALL_BATCH or alone
            session = self._bulk_session if bulk else self._query_session
            ids, mask = pad_tokens(tokens)
            vectors = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        finally:
            with self._lock:
                self._in_flight -= 1
        return normalize_rows(np.asarray(vectors, dtype=np.float32))
