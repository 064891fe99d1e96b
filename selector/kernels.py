"""Positive-definite kernels on embeddings, batched: torch tensors on their device, or numpy
arrays (one formula for both, :meth:`Kernel.from_inner`).

Every kernel here is a function of the inner product and the squared norms, so one matrix
product serves them all (:meth:`Kernel.from_inner`). On unit vectors each one has
``k(x, x) = 1``:

- ``softmax``: ``k(x, y) = exp((<x, y> - 1) / tau)``, the attention kernel; on unit vectors it
  equals a Gaussian RBF with ``sigma^2 = tau``.
- ``rbf``: ``k(x, y) = exp(-||x - y||^2 / (2 tau))``; ``tau = sigma^2``, by default the median
  heuristic ``tau = median ||x - y||^2 / 2`` over the candidates.
- ``laplace``: ``k(x, y) = exp(-||x - y|| / tau)``; by default ``tau = median ||x - y||``.
- ``cosine``: ``k(x, y) = <x, y>`` (linear; no bandwidth; can be negative).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Final, TypeVar

import numpy as np
import torch

from selector.errors import InvalidInputError, UnknownKernelError

KERNEL_NAMES: Final = ("softmax", "rbf", "laplace", "cosine")
DEFAULT_SOFTMAX_TAU: Final = 0.2
MEDIAN: Final = "median"

# A numpy array or a torch tensor: the functions that take one compute in its kind.
Array = TypeVar("Array", np.ndarray, torch.Tensor)


def softmax_kernel(x: torch.Tensor, y: torch.Tensor, tau: float) -> torch.Tensor:
    """``x: (n, d), y: (m, d) -> (n, m)``, ``exp((<x, y> - 1) / tau)``."""
    return torch.exp((x @ y.T - 1.0) / tau)


def squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``x: (n, d), y: (m, d) -> (n, m)``, ``||x_i - y_j||^2`` clamped at 0."""
    inner = x @ y.T
    return _squared_distances_from_inner(
        inner, (x * x).sum(-1).unsqueeze(-1), (y * y).sum(-1).unsqueeze(-2)
    )


def rbf_kernel(x: torch.Tensor, y: torch.Tensor, tau: float) -> torch.Tensor:
    """``x: (n, d), y: (m, d) -> (n, m)``, ``exp(-||x - y||^2 / (2 tau))``."""
    return torch.exp(-squared_distances(x, y) / (2.0 * tau))


def laplace_kernel(x: torch.Tensor, y: torch.Tensor, tau: float) -> torch.Tensor:
    """``x: (n, d), y: (m, d) -> (n, m)``, ``exp(-||x - y|| / tau)``."""
    return torch.exp(-torch.sqrt(squared_distances(x, y)) / tau)


def cosine_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``x: (n, d), y: (m, d) -> (n, m)``, ``<x, y>`` (cosine similarity on unit vectors)."""
    return x @ y.T


def _squared_distances_from_inner(
    inner: Array, sq_norm_x: Array | float, sq_norm_y: Array | float
) -> Array:
    return (sq_norm_x + sq_norm_y - 2.0 * inner).clip(min=0.0)


def median_squared_distance(x: torch.Tensor, max_points: int = 1000, seed: int = 0) -> float:
    """Median of ``||x_i - x_j||^2`` over pairs ``i < j`` of at most ``max_points`` rows of
    ``x: (n, d)``, drawn without replacement with ``seed`` (deterministic)."""
    n = x.shape[0]
    if n < 2:
        raise InvalidInputError("the median heuristic needs at least two points")
    if n > max_points:
        generator = torch.Generator().manual_seed(seed)
        rows = torch.randperm(n, generator=generator)[:max_points].to(x.device)
        x = x[rows]
    distances = squared_distances(x, x)
    upper = torch.triu_indices(x.shape[0], x.shape[0], offset=1, device=x.device)
    value = float(distances[upper[0], upper[1]].median())
    if value <= 0.0:
        raise InvalidInputError("the median heuristic found all points identical; give tau")
    return value


@dataclass(frozen=True)
class Kernel:
    """A kernel with its bandwidth resolved: ``name`` in :data:`KERNEL_NAMES`, ``tau > 0``
    (ignored by ``cosine``)."""

    name: str
    tau: float = DEFAULT_SOFTMAX_TAU

    def __post_init__(self) -> None:
        if self.name not in KERNEL_NAMES:
            raise UnknownKernelError(
                f"unknown kernel {self.name!r}; expected one of {', '.join(KERNEL_NAMES)}",
                kernel=self.name,
            )
        if not (self.tau > 0.0) or self.tau == float("inf"):
            raise InvalidInputError(f"tau must be a positive finite number, got {self.tau}")

    @property
    def nonnegative(self) -> bool:
        """Whether ``k >= 0`` everywhere (used by the greedy's exactness certificate)."""
        return self.name != "cosine"

    @functools.cached_property
    def diagonal(self) -> float:
        """``k(x, x)`` on unit vectors, from the kernel itself (1 for every kernel here)."""
        return float(self.from_inner(torch.ones((), dtype=torch.float64)))

    def inner_threshold(self, value: float) -> float:
        """The inner product ``u`` on unit vectors where ``from_inner(u) == value``: every
        kernel here increases with the inner product, so ``k(<x, y>) >= value`` exactly when
        ``<x, y> >= inner_threshold(value)`` (up to rounding; callers keep a margin)."""
        if self.name == "cosine":
            return value
        if value <= 0.0:
            return -math.inf
        if self.name == "laplace":
            distance = -self.tau * math.log(value)
            return 1.0 - distance * distance / 2.0 if distance >= 0 else math.inf
        return 1.0 + self.tau * math.log(value)  # softmax and rbf: exp((u - 1) / tau)

    def host_from_inner(self, inner: np.ndarray) -> np.ndarray:
        """:meth:`from_inner` on unit vectors for a numpy array (float32 arithmetic, as the
        torch path's), returned as float64: the host loops' kernel columns without torch's
        per-op cost."""
        return self.from_inner(inner.astype(np.float32, copy=False)).astype(np.float64)

    def from_inner(
        self,
        inner: Array,
        sq_norm_x: Array | float = 1.0,
        sq_norm_y: Array | float = 1.0,
    ) -> Array:
        """Kernel values from inner products ``<x, y>`` (any shape, a numpy array or a torch
        tensor, computed in its dtype) and squared norms that broadcast against it; the
        defaults assume unit vectors."""
        if self.name == "cosine":
            return inner
        exp, sqrt = (np.exp, np.sqrt) if isinstance(inner, np.ndarray) else (torch.exp, torch.sqrt)
        if self.name == "softmax":
            return exp((inner - 1.0) / self.tau)
        squared = _squared_distances_from_inner(inner, sq_norm_x, sq_norm_y)
        if self.name == "rbf":
            return exp(-squared / (2.0 * self.tau))
        return exp(-sqrt(squared) / self.tau)

    def __call__(self, x: Array, y: Array) -> Array:
        """``x: (..., n, d), y: (..., m, d) -> (..., n, m)`` (leading batch dimensions; numpy
        arrays or torch tensors). The squared norms enter the distance kernels only."""
        inner = x @ y.mT
        if self.name in ("softmax", "cosine"):
            return self.from_inner(inner)
        return self.from_inner(inner, (x * x).sum(-1)[..., :, None], (y * y).sum(-1)[..., None, :])


def resolve_kernel(
    name: str, tau: float | str | None, candidates: torch.Tensor | None = None, seed: int = 0
) -> Kernel:
    """Turn a kernel name and a bandwidth choice into a :class:`Kernel`.

    ``tau=None`` takes the kernel's default: 0.2 for ``softmax``, the median heuristic on
    ``candidates: (n, d)`` for ``rbf`` and ``laplace``. ``tau="median"`` asks for the median
    heuristic explicitly (for ``softmax``: ``tau = median ||x - y||^2 / 2``, the RBF value).
    """
    if name not in KERNEL_NAMES:
        raise UnknownKernelError(
            f"unknown kernel {name!r}; expected one of {', '.join(KERNEL_NAMES)}", kernel=name
        )
    if name == "cosine":
        return Kernel("cosine", 1.0)
    if tau is None:
        tau = DEFAULT_SOFTMAX_TAU if name == "softmax" else MEDIAN
    if isinstance(tau, str):
        if tau != MEDIAN:
            raise InvalidInputError(f"tau must be a number or 'median', got {tau!r}")
        if candidates is None:
            raise InvalidInputError("the median heuristic needs the candidates")
        median_sq = median_squared_distance(candidates, seed=seed)
        tau = median_sq**0.5 if name == "laplace" else median_sq / 2.0
    return Kernel(name, float(tau))
