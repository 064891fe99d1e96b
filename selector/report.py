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


def baseline_subsets(
    scorer: AffinityScorer,
    plan: ConstraintPlan,
    seed: int,
    row: int,
    k: int,
    candidates: torch.Tensor | None = None,
) -> dict[str, list[int]]:
    """What the baseline methods choose, as pool indices (the caller evaluates their
    ``mmd2`` under the call's kernel, joint when it is, with its own subsets in one
    computation): knn, the k allowed candidates of largest *input* affinity
    ``sum_j w_j k(x_i, y_j)`` (what ``method="knn"`` chooses, whatever the output side), and k
    allowed candidates drawn with ``seed`` from the whole pool; each after the pinned
    candidates, when there are some.

    knn ranks the whole pool when the call scanned it (``scorer.scan_inner``); on the
    prefilter path, which scans nothing, it ranks the prefilter's ``candidates: (L,)`` (pool
    indices, ``-1`` for padding), as ``method="knn"`` with the prefilter does, instead of
    scanning the pool for the baseline alone."""
    pins = [] if plan.pinned is None else plan.pinned.tolist()
    generator = np.random.default_rng(seed)
    if pins or plan.has_static_filter:
        mask = plan.host_static_mask.copy()
        mask[pins] = False
        drawn = generator.choice(np.flatnonzero(mask), size=k, replace=False)
    else:  # every candidate allowed: the same draw as from arange(n), without building it
        mask = None
        drawn = generator.choice(scorer.pool.size, size=k, replace=False)
    random_indices = pins + drawn.tolist()
    weights = scorer.targets.weights[row].unsqueeze(1)  # (m, 1)
    points = scorer.targets.points[row]  # (m, d)
    index = np.arange(scorer.pool.size)
    if scorer.scan_inner is not None:  # the call's scan already has the row's products
        inner = scorer.scan_inner[row]  # (m, n)
    else:
        kept: torch.Tensor | None = None
        if candidates is not None:  # the prefilter path: its candidates
            valid = candidates >= 0
            found = candidates[valid].cpu().numpy()
            allowed = len(found) if mask is None else int(mask[found].sum())
            if allowed >= k:  # else too few allowed: rank the whole pool
                index = found
                kept = _candidate_inner(scorer, row, candidates, valid)
        inner = kept if kept is not None else _inner_with(scorer, points, index)
    values = scorer.kernel.from_inner(inner)  # (m, L)
    input_affinity = (values * weights.to(values.dtype)).sum(0).cpu().numpy()  # (L,)
    if mask is not None:
        input_affinity[~mask[index]] = -math.inf
    knn_indices = pins + index[top_positions(input_affinity, k)].tolist()
    return {"knn": knn_indices, "random": random_indices}


def _inner_with(scorer: AffinityScorer, points: torch.Tensor, index: np.ndarray) -> torch.Tensor:
    """``(m, L)`` inner products of the target ``points: (m, d)`` with the pool indices
    ``index: (L,)`` (the whole pool, in order, through the pool's scan)."""
    if len(index) == scorer.pool.size:
        return scorer.pool.inner_products(points)
    rows = scorer.pool.rows(torch.from_numpy(index).to(scorer.pool.device))  # (L, d)
    return points @ rows.T.to(points.dtype)


def _candidate_inner(
    scorer: AffinityScorer, row: int, candidates: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor | None:
    """The prefilter's own inner products ``(m, L')`` of target ``row`` with its valid
    ``candidates`` (pool indices ``(L,)``, ``valid`` their ``>= 0``), when the scorer kept
    them for exactly these candidates; else None."""
    kept = scorer.candidate_inner
    if kept is None:
        return None
    index, inner = kept  # (B, L), (B, m, L)
    if index.shape[1] != candidates.shape[0] or not torch.equal(index[row], candidates):
        return None
    return inner[row][:, valid]


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
