"""What a selection reports: the :class:`SelectionResult`, each ranked subset with its bounds,
the baselines' MMD^2 at the same k, and the target's estimated label distribution."""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass, field

import numpy as np
import torch

from selector.constraints import ConstraintPlan
from selector.joint import AffinityScorer
from selector.mmd import bias_bound, generalization_bound


@dataclass(frozen=True)
class RankedSubset:
    """One subset with its distance to the target and the paper's bounds."""

    indices: list[int]
    mmd2: float
    mmd: float
    bias_bound: float
    bound: float


@dataclass(frozen=True)
class SelectionResult:
    """The chosen subset (``indices``, pool indices in selection order) and how good it is.

    ``subsets`` ranks alternatives by ``mmd2`` (the first is the chosen one);
    ``prompt_order`` is ``indices`` from least to most target-affine (most relevant last);
    ``target_label_distribution`` is the estimated output distribution of the target (joint
    kernel with labels); ``baselines`` the ``mmd2`` that knn and random reach at the same k;
    ``bounds_by_k`` the bound of each greedy prefix when k was chosen automatically;
    ``timings`` seconds spent in ``scan``, ``select`` and ``refine``.

    With ``pinned`` candidates (already in the prompt), ``indices``, ``k`` and
    ``prompt_order`` are the chosen slice alone, while ``mmd2``, ``mmd``, the bounds and
    ``subsets`` are of the whole prompt (pinned + chosen; the subsets' ``indices`` are their
    slices); ``chosen_mmd2``/``chosen_mmd`` are of the chosen slice alone (equal to
    ``mmd2``/``mmd`` without pins).
    """

    indices: list[int]
    mmd2: float
    mmd: float
    bias_bound: float
    bound: float
    k: int
    subsets: list[RankedSubset]
    prompt_order: list[int]
    method: str
    kernel: str
    tau: float
    joint: bool
    prefiltered: bool
    region_size: int
    chosen_mmd2: float = 0.0
    chosen_mmd: float = 0.0
    pinned: tuple[int, ...] = ()
    target_label_distribution: dict[Hashable, float] | None = None
    bounds_by_k: dict[int, float] | None = None
    baselines: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def ranked(
    value: float,
    indices: list[int],
    bias_constant: float,
    complexity_constant: float,
    prompt_size: int | None = None,
) -> RankedSubset:
    """The subset ``indices`` with its ``MMD^2`` ``value`` (clamped at 0) and bounds; with
    pinned candidates, ``indices`` is the chosen slice and ``value`` and the bounds are of the
    whole prompt of ``prompt_size`` examples."""
    value = max(value, 0.0)
    mmd = math.sqrt(value)
    return RankedSubset(
        indices=indices,
        mmd2=value,
        mmd=mmd,
        bias_bound=bias_bound(mmd, bias_constant),
        bound=generalization_bound(
            mmd, prompt_size or len(indices), bias_constant, complexity_constant
        ),
    )


def baselines(
    scorer: AffinityScorer,
    plan: ConstraintPlan,
    seed: int,
    row: int,
    k: int,
    candidates: torch.Tensor | None = None,
) -> dict[str, float]:
    """``mmd2``, under the call's kernel (joint when it is), of what the baseline methods
    choose: knn, the k allowed candidates of largest *input* affinity
    ``sum_j w_j k(x_i, y_j)`` (what ``method="knn"`` chooses, whatever the output side), and k
    allowed candidates drawn with ``seed`` from the whole pool; each after the pinned
    candidates, when there are some.

    knn ranks the whole pool when the call scanned it (``scorer.scan_inner``); on the
    prefilter path, which scans nothing, it ranks the prefilter's ``candidates: (L,)`` (pool
    indices, ``-1`` for padding), as ``method="knn"`` with the prefilter does, instead of
    scanning the pool for the baseline alone."""
    pins = [] if plan.pinned is None else plan.pinned.tolist()
    mask = plan.host_static_mask.copy()
    mask[pins] = False
    allowed = np.flatnonzero(mask)
    generator = np.random.default_rng(seed)
    random_indices = pins + generator.choice(allowed, size=k, replace=False).tolist()
    weights = scorer.targets.weights[row].unsqueeze(1)  # (m, 1)
    points = scorer.targets.points[row]  # (m, d)
    index = np.arange(scorer.pool.size)
    if scorer.scan_inner is not None:  # the call's scan already has the row's products
        inner = scorer.scan_inner[row]  # (m, n)
    else:
        if candidates is not None:  # the prefilter path: its candidates
            found = candidates[candidates >= 0].cpu().numpy()
            if int(mask[found].sum()) >= k:  # else too few allowed: rank the whole pool
                index = found
        if len(index) < scorer.pool.size:
            rows = scorer.pool.rows(torch.from_numpy(index).to(scorer.pool.device))  # (L, d)
            inner = points @ rows.T.to(points.dtype)
        else:
            inner = scorer.pool.inner_products(points)
    values = scorer.kernel.from_inner(inner)  # (m, L)
    input_affinity = (values * weights.to(values.dtype)).sum(0).cpu().numpy()  # (L,)
    input_affinity[~mask[index]] = -math.inf
    knn_indices = pins + index[top_positions(input_affinity, k)].tolist()
    return {
        "knn": max(scorer.evaluate(row, knn_indices), 0.0),
        "random": max(scorer.evaluate(row, random_indices), 0.0),
    }


def top_positions(values: np.ndarray, k: int) -> np.ndarray:
    """The positions of the ``k`` largest of ``values: (L,)``, largest first, ties to the
    lower position (a full stable sort's order, from a partition and a sort of about k)."""
    if k >= len(values):
        return np.argsort(-values, kind="stable")[:k]
    threshold = np.partition(values, len(values) - k)[len(values) - k]
    tied = np.flatnonzero(values >= threshold)  # the top k and any ties at the threshold
    return tied[np.argsort(-values[tied], kind="stable")][:k]


def label_distribution(scorer: AffinityScorer, row: int) -> dict[Hashable, float] | None:
    """The target's estimated label distribution (joint kernel with labels), by label."""
    estimate = scorer.estimate
    if estimate is None or estimate.label_probability is None or scorer.pool.label_names is None:
        return None
    weights = scorer.targets.weights[row].to(estimate.label_probability.dtype)
    mixture = weights @ estimate.label_probability[row]
    return {
        name: float(p) for name, p in zip(scorer.pool.label_names, mixture.tolist(), strict=True)
    }
