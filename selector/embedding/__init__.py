"""Text embedders, one concept a module: the protocol and row normalisation
(:mod:`~selector.embedding.protocol`), sentence-transformers models from a local folder
(:mod:`~selector.embedding.models`, torch) and their ONNX export
(:mod:`~selector.embedding.onnx`), token counting (:mod:`~selector.embedding.tokens`), the
deterministic fake (:mod:`~selector.embedding.hashing`) and the LRU cache
(:mod:`~selector.embedding.cache`).

All embedders return L2-normalised float32 arrays of shape ``(len(texts), dimension)``.
Nothing here reads the environment: keeping Hugging Face off the network and choosing the
model cache are the caller's business.
"""

from selector.embedding.cache import CachedEmbedder
from selector.embedding.hashing import HashingEmbedder
from selector.embedding.models import (
    BUNDLED_MODEL_NAME,
    BUNDLED_MODEL_PACKAGE,
    SentenceTransformerEmbedder,
    bundled_model_path,
    load_sentence_embedder,
)
from selector.embedding.onnx import (
    ONNX_OPSET,
    ONNX_VERIFY_TOLERANCE,
    SMALL_BATCH,
    OnnxSentenceEmbedder,
    SentenceModelLayout,
    default_model_cache,
)
from selector.embedding.protocol import (
    Embedder,
    TokenizingEmbedder,
    content_hash,
    embed_sorted,
    length_order,
    normalize_rows,
    pad_tokens,
)
from selector.embedding.tokens import HFTokenCounter, TokenCounter, WhitespaceTokenCounter

__all__ = [
    "BUNDLED_MODEL_NAME",
    "BUNDLED_MODEL_PACKAGE",
    "ONNX_OPSET",
    "ONNX_VERIFY_TOLERANCE",
    "SMALL_BATCH",
    "CachedEmbedder",
    "Embedder",
    "HFTokenCounter",
    "HashingEmbedder",
    "OnnxSentenceEmbedder",
    "SentenceModelLayout",
    "SentenceTransformerEmbedder",
    "TokenCounter",
    "TokenizingEmbedder",
    "WhitespaceTokenCounter",
    "bundled_model_path",
    "content_hash",
    "default_model_cache",
    "embed_sorted",
    "length_order",
    "load_sentence_embedder",
    "normalize_rows",
    "pad_tokens",
]
