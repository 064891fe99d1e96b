"""What a selection reports besides its subset: each ranked subset with its bounds, the
baselines' MMD^2 at the same k, and the target's estimated label distribution."""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass

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
    pool_index: torch.Tensor,
    affinity: torch.Tensor,
    k: int,
) -> dict[str, float]:
    """``mmd2`` of the knn (the k allowed candidates of largest affinity among the region's,
    ``pool_index: (L,)`` with ``affinity: (L,)``) and of a subset of k allowed candidates
    drawn with ``seed``; each after the pinned candidates, when there are some."""
    pins = [] if plan.pinned is None else plan.pinned.tolist()
    mask = plan.host_static_mask.copy()
    mask[pins] = False
    allowed = np.flatnonzero(mask)
    generator = np.random.default_rng(seed)
    random_indices = pins + generator.choice(allowed, size=k, replace=False).tolist()
    usable = plan.static_mask[pool_index.clamp_min(0)] & (pool_index >= 0)
    if plan.pinned is not None:
        usable &= ~torch.isin(pool_index, plan.pinned)
    order = torch.topk(affinity.masked_fill(~usable, -math.inf), min(k, affinity.shape[0])).indices
    knn_indices = pins + pool_index[order].tolist()
    return {
        "knn": max(scorer.evaluate(row, knn_indices), 0.0),
        "random": max(scorer.evaluate(row, random_indices), 0.0),
    }


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
