"""The greedy MMD objective, written once for numpy arrays and torch tensors alike.

With a chosen set S of ``j - 1`` candidates, ``SS = sum_{a, b in S} k(x_a, x_b)`` (the diagonal
included), ``ST = sum_{c in S} t_c``, the redundancy ``s_i = sum_{c in S} k(x_i, x_c)`` and the
target affinity ``t_i``, adding candidate i gives

    MMD^2(S + {i}, Q) - const = (SS + 2 s_i + k(x_i, x_i)) / j^2 - 2 (ST + t_i) / j
                              = (2 / j^2) (s_i - j t_i) + offset_j,
    offset_j = (SS + k(x_i, x_i)) / j^2 - 2 ST / j.

``diagonal`` is the kernel's ``k(x, x)`` (:attr:`selector.kernels.Kernel.diagonal`; 1 on unit
vectors for every kernel here, and for the joint kernel), never a literal. Every function takes
floats, numpy arrays or torch tensors (``_Value``) and uses only operators both support, so the
numpy host loops and the batched torch loops evaluate the same expressions.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

_Value = TypeVar("_Value", float, np.ndarray, torch.Tensor)


def step_offset(sum_chosen: _Value, sum_affinity: _Value, step: int, diagonal: float) -> _Value:
    """The part of step ``j``'s objective shared by every candidate:
    ``(SS + k(x, x)) / j^2 - 2 ST / j``."""
    return (sum_chosen + diagonal) / step**2 - (2.0 / step) * sum_affinity


def step_score(redundancy: _Value, affinity: _Value, offset: _Value | float, step: int) -> _Value:
    """Step ``j``'s objective ``(2 / j^2) (s_i - j t_i) + offset_j`` (lower is better);
    ``offset`` broadcasts against the candidates (a float, or ``(B, 1)``)."""
    return (redundancy - step * affinity) * (2.0 / step**2) + offset


def chosen_sum_increment(redundancy: _Value, diagonal: float) -> _Value:
    """What choosing a candidate with redundancy ``s_c`` adds to ``SS``: ``2 s_c + k(x, x)``."""
    return 2.0 * redundancy + diagonal


def least_redundancy(nonnegative: bool, step: int, diagonal: float) -> float:
    """A lower bound of ``s_i`` at ``step`` for any candidate: 0 for a kernel ``k >= 0``, else
    ``-(j - 1) k(x, x)`` (on unit vectors ``|k(x, y)| <= k(x, x)`` for the cosine kernel)."""
    return 0.0 if nonnegative else -(step - 1) * diagonal


def excluded_bound(
    sum_chosen: _Value,
    sum_affinity: _Value,
    excluded: _Value,
    step: int,
    least: float,
    diagonal: float,
) -> _Value:
    """The certificate: no candidate whose affinity is at most ``excluded`` (and whose
    redundancy is at least ``least``) scores below
    ``(SS + k(x, x) + 2 s_min) / j^2 - 2 (ST + t_out) / j`` at step ``j``."""
    offset = step_offset(sum_chosen, sum_affinity, step, diagonal)
    return (least - step * excluded) * (2.0 / step**2) + offset


def affinity_threshold(
    best: float, sum_chosen: float, sum_affinity: float, step: int, least: float, diagonal: float
) -> float:
    """The affinity above which a candidate outside a region could still beat ``best`` at
    ``step``: the ``t_out`` where :func:`excluded_bound` equals ``best``."""
    offset = step_offset(sum_chosen, sum_affinity, step, diagonal)
    return (step / 2.0) * (offset - best) + least / step


def swap_change(
    unary: _Value, chosen_unary: _Value, pair: _Value, size: int, diagonal: float
) -> _Value:
    """The change of the objective when a chosen candidate p leaves a set of ``size`` and
    candidate i comes in: with ``u_i = r_i - k t_i`` (``r_i`` the redundancy with the whole
    set), ``(2 / k^2) (u_i - u_p - k(x_i, x_p) + k(x, x))``; ``pair`` is ``k(x_i, x_p)``."""
    return ((unary - chosen_unary) - pair + diagonal) * (2.0 / size**2)
