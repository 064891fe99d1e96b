"""mmdshot's selection library: choose few-shot demonstrations by Maximum Mean Discrepancy.

Start with :func:`select` (one query or a weighted target set) and :func:`select_batch`
(many independent queries at once); :func:`calibrate` chooses a pool's kernel bandwidth on a
validation split carved from the pool. Nothing here knows about HTTP or environment variables.
"""

from selector.api import RankedSubset, SelectionResult, SelectOptions, select, select_batch
from selector.calibration import (
    Calibration,
    Scorer,
    calibrate,
    carve_validation,
    label_purity,
    output_similarity,
)
from selector.constraints import Constraints
from selector.device import resolve_device
from selector.embedding import (
    CachedEmbedder,
    Embedder,
    HashingEmbedder,
    HFTokenCounter,
    OnnxSentenceEmbedder,
    SentenceTransformerEmbedder,
    load_sentence_embedder,
)
from selector.errors import (
    DeviceUnavailableError,
    EmbeddingModelError,
    InfeasibleConstraintError,
    InvalidInputError,
    SelectionCancelled,
    SelectorError,
    UnknownKernelError,
)
from selector.kernels import KERNEL_NAMES, Kernel, resolve_kernel
from selector.mmd import bias_bound, generalization_bound, mmd2
from selector.pool import Pool
from selector.prefilter import PoolIndex, PrefilterConfig
from selector.search import METHODS

__all__ = [
    "KERNEL_NAMES",
    "METHODS",
    "CachedEmbedder",
    "Calibration",
    "Constraints",
    "DeviceUnavailableError",
    "Embedder",
    "EmbeddingModelError",
    "HFTokenCounter",
    "HashingEmbedder",
    "InfeasibleConstraintError",
    "InvalidInputError",
    "Kernel",
    "OnnxSentenceEmbedder",
    "Pool",
    "PoolIndex",
    "PrefilterConfig",
    "RankedSubset",
    "Scorer",
    "SelectOptions",
    "SelectionCancelled",
    "SelectionResult",
    "SelectorError",
    "SentenceTransformerEmbedder",
    "UnknownKernelError",
    "bias_bound",
    "calibrate",
    "carve_validation",
    "generalization_bound",
    "label_purity",
    "load_sentence_embedder",
    "mmd2",
    "output_similarity",
    "resolve_device",
    "resolve_kernel",
    "select",
    "select_batch",
]
