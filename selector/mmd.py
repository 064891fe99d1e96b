"""Squared MMD between a uniformly weighted chosen set and a weighted target, and the bounds.

    MMD^2(S, Q) = 1/k^2 sum_{a,b in S} k(x_a, x_b) - 2/k sum_{a in S} sum_j w_j k(x_a, y_j)
                  + sum_{j,l} w_j w_l k(y_j, y_l)

Bias bound (arXiv 2506.11516): ``||bias(W_S)|| <= C * MMD(S, Q)``; generalisation bound
``C * MMD(S, Q) + R / sqrt(k)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from selector.kernels import Array, Kernel


def mmd2_from_gram(within: Array, cross: Array, target_gram: Array, weights: Array) -> Array:
    """``within: (..., k, k)``, ``cross: (..., k, m)``, ``target_gram: (..., m, m)``,
    ``weights: (..., m)`` summing to 1 -> ``MMD^2: (...)`` in float64 arithmetic; numpy
    arrays or torch tensors alike (the host report and the batched one)."""
    within, cross, target_gram = _float64(within), _float64(cross), _float64(target_gram)
    column = _float64(weights)[..., :, None]  # (..., m, 1)
    size = within.shape[-1]
    return (
        within.sum((-2, -1)) / size**2
        - 2.0 * (cross @ column).sum((-2, -1)) / size
        + (column.mT @ target_gram @ column).reshape(within.shape[:-2])
    )


def _float64(values: Array) -> Array:
    if isinstance(values, np.ndarray):
        return values.astype(np.float64, copy=False)
    return values.to(torch.float64)


def mmd2(
    chosen: torch.Tensor,
    target: torch.Tensor,
    kernel: Kernel,
    weights: torch.Tensor | None = None,
) -> float:
    """``chosen: (k, d)``, ``target: (m, d)``, ``weights: (m,)`` (uniform if None) -> the
    input-space ``MMD^2`` under ``kernel``."""
    if weights is None:
        weights = torch.full(
            (target.shape[0],), 1.0 / target.shape[0], dtype=torch.float64, device=target.device
        )
    chosen64, target64 = chosen.to(torch.float64), target.to(torch.float64)
    return float(
        mmd2_from_gram(
            kernel(chosen64, chosen64),
            kernel(chosen64, target64),
            kernel(target64, target64),
            weights,
        )
    )


def bias_bound(mmd: float, bias_constant: float = 1.0) -> float:
    """``C * MMD``: the bound on the bias of the distilled weights, in units of C."""
    return bias_constant * mmd


def generalization_bound(
    mmd: float, k: int, bias_constant: float = 1.0, complexity_constant: float = 1.0
) -> float:
    """``C * MMD + R / sqrt(k)``."""
    return bias_constant * mmd + complexity_constant / math.sqrt(k)
