"""The front door: :func:`select` and :func:`select_batch`.

Both take the candidates as an ``(n, d)`` array (numpy or torch) or a prepared
:class:`~selector.pool.Pool`, and return :class:`SelectionResult` objects whose ``indices`` are
pool indices in selection order. Internally every call is a batch of B problems, each with a
target of m weighted points: one query (B = 1, m = 1), a weighted target set (B = 1, m), or B
independent queries (B, m = 1).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import torch

from selector.cancel import stop_when
from selector.errors import InvalidInputError
from selector.joint import Targets
from selector.options import SelectOptions
from selector.pool import Pool, as_matrix, normalize_rows
from selector.report import RankedSubset, SelectionResult
from selector.solve import solve

__all__ = ["RankedSubset", "SelectOptions", "SelectionResult", "select", "select_batch"]


def select(
    candidates: object,
    target: object,
    k: int = 8,
    *,
    kernel: str = "softmax",
    tau: float | str | None = None,
    method: str = "mmd",
    target_weights: object | None = None,
    labels: Sequence[Hashable] | np.ndarray | None = None,
    output_embeddings: object | None = None,
    target_label_distribution: object | None = None,
    device: str | torch.device = "auto",
    pinned: Sequence[int] | None = None,
    **options: object,
) -> SelectionResult:
    """Choose ``k`` candidates whose distribution is closest in MMD to ``target``.

    - ``candidates``: ``(n, d)`` array or tensor, or a prepared :class:`Pool`; rows are
      L2-normalised (the kernels are defined on the unit sphere).
    - ``target``: ``(d,)`` one query or ``(m, d)`` a target set, with ``target_weights: (m,)``
      (non-negative, normalised to sum 1; uniform if None).
    - ``kernel``: ``softmax`` (default), ``rbf``, ``laplace`` or ``cosine``; ``tau`` its
      bandwidth (None: 0.2 for softmax, the median heuristic for rbf and laplace;
      ``"median"``: the median heuristic).
    - ``method``: ``mmd`` (greedy MMD, swap-refined), or the baselines ``knn``, ``mmr``,
      ``random``.
    - ``labels: (n,)`` or ``output_embeddings: (n, d_o)``: with ``method="mmd"`` the selection
      matches the joint (input, output) distribution (``joint=False`` turns that off); the
      target's label distribution is estimated from its ``label_neighbors`` nearest candidates
      weighted by ``exp((<x, q> - 1) / label_tau)``, or given as
      ``target_label_distribution: (num_labels,)`` or ``(m, num_labels)`` in the order of
      first appearance in ``labels``.
    - ``constraints``: a :class:`Constraints`; ``k_range=(k_min, k_max)`` chooses k by the
      bound ``C * MMD + R / sqrt(k)`` (``bias_constant`` C, ``complexity_constant`` R);
      ``num_subsets`` ranks that many subsets (beam search); ``seed`` fixes every random draw.
    - ``prefilter``: with a pool that has an ``index``, run the exact greedy on the
      ``prefilter_size`` most affine candidates the index finds (default: when the pool has an
      index); otherwise the greedy is exact over the whole pool.
    - ``should_stop``: a callable checked between the search's steps; once it answers true
      the selection raises :class:`SelectionCancelled` (see :mod:`selector.cancel`).
    - ``pinned``: pool indices already in the prompt (a shared prefix). The greedy starts
      from them (their redundancy and affinity count in every step), never chooses them
      again, and chooses ``k`` more; the constraints hold for the whole prompt. The result's
      ``indices`` are the chosen slice, its ``mmd2`` that of the whole prompt.
    """
    settings = SelectOptions.of(
        {"k": k, "kernel": kernel, "tau": tau, "method": method, "pinned": pinned, **options}
    )
    pool = _as_pool(candidates, labels, output_embeddings, device)
    points = normalize_rows(as_matrix(target, "target", pool.dimension), "target")
    weights = _target_weights(target_weights, points.shape[0])
    given = None
    if target_label_distribution is not None:
        given = _label_distribution(target_label_distribution, pool, points.shape[0])
    targets = Targets(
        torch.from_numpy(points).to(pool.device).unsqueeze(0),
        weights.to(pool.device).unsqueeze(0),
        None if given is None else given.unsqueeze(0),
    )
    with stop_when(settings.should_stop):
        return solve(pool, targets, settings)[0]


def select_batch(
    candidates: object,
    queries: object,
    k: int = 8,
    *,
    kernel: str = "softmax",
    tau: float | str | None = None,
    method: str = "mmd",
    labels: Sequence[Hashable] | np.ndarray | None = None,
    output_embeddings: object | None = None,
    device: str | torch.device = "auto",
    pinned: Sequence[int] | None = None,
    **options: object,
) -> list[SelectionResult]:
    """Answer B independent single-query selections ``queries: (B, d)`` in one batched
    computation; result b equals ``select(candidates, queries[b], ...)`` (``pinned``: the
    same pinned candidates for every query)."""
    settings = SelectOptions.of(
        {"k": k, "kernel": kernel, "tau": tau, "method": method, "pinned": pinned, **options}
    )
    pool = _as_pool(candidates, labels, output_embeddings, device)
    points = normalize_rows(as_matrix(queries, "queries", pool.dimension), "queries")
    batch = points.shape[0]
    targets = Targets(
        torch.from_numpy(points).to(pool.device).unsqueeze(1),
        torch.ones(batch, 1, dtype=torch.float32, device=pool.device),
    )
    with stop_when(settings.should_stop):
        return solve(pool, targets, settings)


def _as_pool(
    candidates: object,
    labels: Sequence[Hashable] | np.ndarray | None,
    output_embeddings: object | None,
    device: str | torch.device,
) -> Pool:
    if isinstance(candidates, Pool):
        if labels is not None or output_embeddings is not None:
            raise InvalidInputError("give labels and outputs when preparing the Pool")
        return candidates
    return Pool.from_arrays(
        candidates, labels=labels, output_embeddings=output_embeddings, device=device
    )


def _target_weights(weights: object | None, count: int) -> torch.Tensor:
    if weights is None:
        return torch.full((count,), 1.0 / count)
    try:
        array = np.asarray(weights, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"target_weights must be numbers: {exc}") from exc
    if array.shape != (count,):
        raise InvalidInputError(f"target_weights must have {count} entries")
    if not np.isfinite(array).all() or (array < 0).any() or array.sum() <= 0:
        raise InvalidInputError("target_weights must be finite, non-negative, not all zero")
    return torch.from_numpy(array / array.sum()).to(torch.float32)


def _label_distribution(values: object, pool: Pool, count: int) -> torch.Tensor:
    if pool.label_names is None:
        raise InvalidInputError("target_label_distribution needs labels for the candidates")
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"target_label_distribution must be numbers: {exc}") from exc
    num_labels = len(pool.label_names)
    if array.ndim == 1:
        array = np.broadcast_to(array, (count, array.shape[0]))
    if array.shape != (count, num_labels):
        raise InvalidInputError(
            f"target_label_distribution must have shape ({num_labels},) or ({count}, {num_labels})"
        )
    if not np.isfinite(array).all() or (array < 0).any() or (array.sum(1) <= 0).any():
        raise InvalidInputError("target_label_distribution must be non-negative and not all zero")
    array = array / array.sum(1, keepdims=True)
    return torch.from_numpy(np.ascontiguousarray(array)).to(pool.device, torch.float32)
