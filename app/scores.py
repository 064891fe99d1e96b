"""Why each chosen example is there: its similarity to the target, its target affinity and its
contribution to the selection's MMD^2, from the library's public kernels (not its internals).

With the chosen set ``S`` (``k`` examples), the target ``Q`` (points ``y_j``, weights ``w_j``)
and the selection's kernel ``K`` (the input kernel, times the label kernel under the joint
kernel)::

    MMD^2(S, Q) = 1/k^2 sum_{a,b in S} K(a, b) - 2/k sum_{a in S} t_a + c(Q)

- ``similarity_i = sum_j w_j k(x_i, y_j)``: the input kernel alone (the selection's kernel and
  tau; for one query, ``k(x_i, q)``);
- ``affinity_i = t_i = sum_j w_j k(x_i, y_j) p_j(label_i)``: the target affinity the selection
  weighs (``p_j``: the target point's estimated label distribution, as the library estimates
  it; equal to the similarity without the joint kernel);
- ``contribution_i = MMD^2(S \\ {i}, Q) - MMD^2(S, Q)``: how much MMD^2 would rise without it
  (negative: the set is closer to the target without it), where the target constant ``c(Q)``
  cancels; the empty set's MMD^2 is ``c(Q)``.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

import selector

DEFAULTS = selector.SelectOptions()


@dataclass(frozen=True)
class ExampleScore:
    similarity: float
    affinity: float | None
    contribution: float | None


def label_probabilities(
    pool: selector.Pool, points: np.ndarray, neighbors: int, tau: float
) -> np.ndarray:
    """``(m, num_labels)``: each target point's label distribution from its ``neighbors``
    nearest candidates of the whole pool, weighted by ``softmax((<y, x> - 1) / tau)``."""
    assert pool.label_ids is not None and pool.label_names is not None
    inner = points @ pool.host_vectors.astype(np.float64).T  # (m, n)
    count = min(neighbors, inner.shape[1])
    top = np.argsort(-inner, axis=1, kind="stable")[:, :count]
    top_inner = np.take_along_axis(inner, top, axis=1)
    weight = torch.softmax(torch.from_numpy((top_inner - 1.0) / tau), dim=1).numpy()
    probability = np.zeros((points.shape[0], len(pool.label_names)))
    for row in range(points.shape[0]):
        np.add.at(probability[row], pool.label_ids[top[row]], weight[row])
    return probability


def example_scores(
    pool: selector.Pool,
    result: selector.SelectionResult,
    points: np.ndarray,
    weights: Sequence[float] | None,
) -> dict[int, ExampleScore]:
    """The scores of the chosen pool indices ``result.indices`` for the target ``points: (m,
    d)`` with ``weights`` (uniform when None). ``affinity`` and ``contribution`` are None under
    a joint kernel the service cannot reproduce exactly: free-text output embeddings, or a
    prefiltered selection on a target of several points (its label estimate used the
    prefilter's candidates only)."""
    kernel = selector.Kernel(result.kernel, result.tau)
    target = torch.from_numpy(np.asarray(points, dtype=np.float64))
    target = target / target.norm(dim=1, keepdim=True)
    count = target.shape[0]
    w = np.full(count, 1.0 / count) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    indices = list(result.indices)
    chosen = torch.from_numpy(pool.host_vectors[indices].astype(np.float64))
    cross = kernel(chosen, target).numpy()  # (k, m)
    within = kernel(chosen, chosen).numpy()  # (k, k)
    similarity = cross @ w
    affinity: np.ndarray | None = similarity
    if result.joint:
        probability = _target_labels(pool, result, target.numpy())
        if probability is None:
            affinity = None
        else:
            assert pool.label_ids is not None
            labels = pool.label_ids[indices]
            affinity = (cross * probability[:, labels].T) @ w
            within = within * (labels[:, None] == labels[None, :])
    contributions = None if affinity is None else _contributions(within, affinity)
    return {
        index: ExampleScore(
            similarity=float(similarity[position]),
            affinity=None if affinity is None else float(affinity[position]),
            contribution=None if contributions is None else float(contributions[position]),
        )
        for position, index in enumerate(indices)
    }


def _target_labels(
    pool: selector.Pool, result: selector.SelectionResult, points: np.ndarray
) -> np.ndarray | None:
    """``(m, num_labels)`` as the selection estimated it, or None when that cannot be redone."""
    if pool.label_ids is None or pool.label_names is None:
        return None
    given: dict[Hashable, float] | None = result.target_label_distribution
    if points.shape[0] == 1 and given is not None:  # one point: its mixture is its distribution
        return np.array([[given[name] for name in pool.label_names]])
    if result.prefiltered:
        return None
    return label_probabilities(pool, points, DEFAULTS.label_neighbors, DEFAULTS.label_tau)


def _contributions(within: np.ndarray, affinity: np.ndarray) -> np.ndarray:
    """``MMD^2(S \\ {i}) - MMD^2(S)`` for every ``i`` from the chosen set's Gram ``within:
    (k, k)`` and affinities ``(k,)`` (the target constant cancels)."""
    k = within.shape[0]
    total = within.sum() / k**2 - 2.0 * affinity.sum() / k
    if k == 1:
        return np.array([-total])
    rest = within.sum() - 2.0 * within.sum(axis=1) + np.diag(within)
    without = rest / (k - 1) ** 2 - 2.0 * (affinity.sum() - affinity) / (k - 1)
    return np.asarray(without - total)
