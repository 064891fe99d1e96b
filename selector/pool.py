"""A prepared pool of candidates: unit vectors on a device, labels, output embeddings, index.

Preparing once (normalising, moving to the device, encoding labels) keeps every selection
call down to one scan of the pool.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from selector.device import resolve_device
from selector.errors import InvalidInputError
from selector.prefilter import PoolIndex


def as_matrix(values: object, name: str, dimension: int | None = None) -> np.ndarray:
    """Check and convert an array-like to a finite float32 ``(rows, d)`` numpy array."""
    if isinstance(values, torch.Tensor):
        values = values.detach().to("cpu", torch.float32).numpy()
    try:
        array = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be a numeric array: {exc}") from exc
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise InvalidInputError(f"{name} must have shape (rows, d) with rows, d > 0")
    if dimension is not None and array.shape[1] != dimension:
        raise InvalidInputError(f"{name} has dimension {array.shape[1]}, expected {dimension}")
    if not np.isfinite(array).all():
        raise InvalidInputError(f"{name} holds NaN or infinite values")
    return array


def normalize_rows(array: np.ndarray, name: str) -> np.ndarray:
    """Rows scaled to unit L2 norm (a zero row is an error)."""
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if (norms <= 1e-12).any():
        raise InvalidInputError(f"{name} holds a zero vector")
    return np.ascontiguousarray(array / norms, dtype=np.float32)


@dataclass
class Pool:
    """``vectors: (n, d)`` unit rows on ``device``; ``host_vectors`` the same numbers in numpy
    (shared memory on CPU, for the BLAS scan); ``label_ids: (n,)`` with ``label_names``;
    ``output_vectors: (n, d_o)`` unit rows for free-text outputs; an optional prefilter
    ``index``."""

    vectors: torch.Tensor
    host_vectors: np.ndarray
    label_ids: np.ndarray | None = None
    label_names: list[Hashable] | None = None
    output_vectors: torch.Tensor | None = None
    index: PoolIndex | None = None

    @property
    def size(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def device(self) -> torch.device:
        return self.vectors.device

    @classmethod
    def from_arrays(
        cls,
        vectors: object,
        *,
        labels: Sequence[Hashable] | np.ndarray | None = None,
        output_embeddings: object | None = None,
        index: PoolIndex | None = None,
        device: str | torch.device = "auto",
        normalized: bool = False,
    ) -> Pool:
        """Prepare a pool. ``normalized=True`` promises unit rows and skips a pass over them."""
        target_device = resolve_device(device)
        host = as_matrix(vectors, "candidates")
        if not normalized:
            host = normalize_rows(host, "candidates")
        host = np.ascontiguousarray(host)
        if not host.flags.writeable:  # torch shares the memory and wants it writable
            host = host.copy()
        tensor = torch.from_numpy(host).to(target_device)
        label_ids = label_names = None
        if labels is not None:
            labels_list = [
                label.item() if isinstance(label, np.generic) else label for label in labels
            ]
            if len(labels_list) != host.shape[0]:
                raise InvalidInputError("labels must give one label per candidate")
            if any(label is None for label in labels_list):
                raise InvalidInputError("every candidate needs a label when labels are given")
            names: dict[Hashable, int] = {}
            label_ids = np.fromiter(
                (names.setdefault(label, len(names)) for label in labels_list),
                dtype=np.int64,
                count=len(labels_list),
            )
            label_names = list(names)
        outputs = None
        if output_embeddings is not None:
            output_host = normalize_rows(
                as_matrix(output_embeddings, "output_embeddings"), "outputs"
            )
            if output_host.shape[0] != host.shape[0]:
                raise InvalidInputError("output_embeddings must give one row per candidate")
            outputs = torch.from_numpy(output_host).to(target_device)
        if index is not None and index.size != host.shape[0]:
            raise InvalidInputError("the index does not cover the pool")
        return cls(tensor, host, label_ids, label_names, outputs, index)

    def rows(self, index: torch.Tensor) -> torch.Tensor:
        """``index: (...)`` pool indices -> their vectors ``(..., d)``; ``index_select`` on
        the flat index, several times faster than advanced indexing on the CPU."""
        flat = self.vectors.index_select(0, index.reshape(-1))
        return flat.reshape(*index.shape, self.vectors.shape[1])

    def inner_products(self, queries: torch.Tensor) -> torch.Tensor:
        """``queries: (q, d) -> (q, n)`` inner products with every candidate.

        On the CPU this goes through numpy's BLAS, which scans a pool about twice as fast as
        torch's own matrix-vector product on the 2-core machines we measured (bench/)."""
        if self.device.type == "cpu":
            host_queries = queries.detach().to(torch.float32).numpy()
            if host_queries.shape[0] == 1:  # a matrix-vector product: about twice as fast
                return torch.from_numpy(self.host_vectors @ host_queries[0]).unsqueeze(0)
            return torch.from_numpy(host_queries @ self.host_vectors.T)
        return queries @ self.vectors.T
