"""Per-pool calibration: choose the kernel bandwidth ``tau`` on a validation split carved from
the pool itself, never on test data.

``validation_size`` rows of the pool, drawn with ``seed``, are held out. Each held-out row is a
query, and its demonstrations are chosen from the remaining rows only: a sub-pool without the
held-out rows. A held-out row is then never selectable, neither for itself nor for another
held-out row, and its label never enters the estimate of a query's label distribution. Each
candidate tau of the MMD selection is one batched :func:`~selector.api.select_batch` over the
held-out rows, and so is knn, the reference. A scorer rates the sets each setting chose, and
the best tau wins; on a tie the larger tau wins, the side of the library default.

The default scores, higher is better, over V held-out rows ``v`` with the k demonstrations
``c_v1 .. c_vk`` chosen for each:

- label purity, for a labelled pool: ``1/(V k) sum_v sum_j [y_{c_vj} = y_v]``, the share of
  demonstrations whose label equals the held-out row's. In the benchmark (bench/icl.py) the
  label purity of a method's sets tracks its in-context accuracy with a real LM closely
  (Pearson r = 0.95 across methods), so it serves as a proxy that needs no LM.
- output similarity, for a pool with output embeddings and no labels:
  ``1/(V k) sum_v sum_j <o_{c_vj}, o_v>``, the mean cosine similarity between the
  demonstrations' outputs and the held-out row's output.

Any other measure, LM accuracy for one, can replace them as ``scorer``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import torch

from selector.api import select_batch
from selector.errors import InvalidInputError
from selector.pool import Pool

DEFAULT_TAUS: Final = (0.05, 0.1, 0.2, 0.5)
DEFAULT_VALIDATION_SIZE: Final = 300

Scorer = Callable[[np.ndarray, np.ndarray], float]
"""``scorer(validation_rows: (V,), chosen: (V, k)) -> float``, higher is better. Both hold
row indices of the calibrated pool: the held-out rows, and for each the demonstrations chosen
for it, in selection order."""


@dataclass(frozen=True)
class Calibration:
    """The outcome of :func:`calibrate`.

    ``tau`` is the chosen bandwidth, the argmax of ``scores`` (tau -> score, ascending tau),
    where ties go to the larger tau. ``knn_score`` is knn's score on the same held-out rows,
    and ``beats_knn`` says whether ``scores[tau] > knn_score``. ``scorer`` names the measure:
    ``label_purity``, ``output_similarity``, or the ``__name__`` of a given scorer.
    ``validation_rows`` are the held-out pool rows, ascending.
    """

    tau: float
    scores: dict[float, float]
    knn_score: float
    beats_knn: bool
    scorer: str
    kernel: str
    k: int
    seed: int
    validation_rows: list[int]

    @property
    def validation_size(self) -> int:
        return len(self.validation_rows)


def label_purity(query_labels: np.ndarray, chosen_labels: np.ndarray) -> float:
    """``query_labels: (V,)``, ``chosen_labels: (V, k)`` -> ``1/(V k) sum_v sum_j
    [chosen_labels[v, j] = query_labels[v]]``."""
    return float((chosen_labels == query_labels[:, None]).mean())


def output_similarity(query_outputs: torch.Tensor, chosen_outputs: torch.Tensor) -> float:
    """``query_outputs: (V, d_o)``, ``chosen_outputs: (V, k, d_o)``, unit rows ->
    ``1/(V k) sum_v sum_j <chosen_outputs[v, j], query_outputs[v]>``."""
    return float(torch.einsum("vd,vkd->vk", query_outputs, chosen_outputs).mean())


def carve_validation(pool_size: int, validation_size: int, k: int, seed: int) -> np.ndarray:
    """``(validation_size,)`` distinct rows of a pool of ``pool_size``, drawn with ``seed``,
    ascending; raises unless ``k`` demonstrations can still be chosen from the rest."""
    _check_k(pool_size, k)
    if validation_size < 1:
        raise InvalidInputError("validation_size must be at least 1")
    if validation_size > pool_size - k:
        raise InvalidInputError(
            f"validation_size={validation_size} leaves {max(pool_size - validation_size, 0)} "
            f"of the pool's {pool_size} rows to choose k={k} demonstrations from; "
            f"hold out at most {pool_size - k}",
            validation_size=validation_size,
            pool_size=pool_size,
            k=k,
        )
    rows = np.random.default_rng(seed).choice(pool_size, size=validation_size, replace=False)
    return np.sort(rows).astype(np.int64)


def calibrate(
    pool: Pool,
    k: int = 8,
    *,
    taus: Sequence[float] = DEFAULT_TAUS,
    validation_size: int = DEFAULT_VALIDATION_SIZE,
    validation_rows: Sequence[int] | np.ndarray | None = None,
    seed: int = 0,
    scorer: Scorer | None = None,
    kernel: str = "softmax",
) -> Calibration:
    """Choose the ``kernel``'s ``tau`` for MMD selection of ``k`` demonstrations from ``pool``
    on a validation split carved from the pool (see the module docstring).

    - ``taus``: the candidate bandwidths (positive; duplicates count once).
    - ``validation_size`` rows are held out, drawn with ``seed``; or name them as
      ``validation_rows`` (distinct pool rows), e.g. to keep an existing split.
    - ``scorer``: see :data:`Scorer`; default: label purity for a labelled pool, else output
      similarity for a pool with output embeddings; a pool with neither is refused.

    The selection is the library default for the pool: the joint kernel when it has labels or
    output embeddings. Held-out rows are selected from a sub-pool without its prefilter index,
    so every selection is exact.
    """
    candidates = _checked_taus(taus, kernel)
    if validation_rows is None:
        held_out = carve_validation(pool.size, validation_size, k, seed)
    else:
        held_out = _checked_rows(validation_rows, pool.size, k)
    if scorer is None:
        scorer_name, score = _default_scorer(pool)
    else:
        scorer_name, score = getattr(scorer, "__name__", "custom"), scorer
    remaining = np.setdiff1d(np.arange(pool.size), held_out)  # (n - V,) ascending
    candidates_pool = _rows_of(pool, remaining)
    queries = pool.host_vectors[held_out]  # (V, d)

    def chosen_by(method: str, tau: float | None) -> np.ndarray:
        """``(V, k)`` pool rows chosen for the held-out rows."""
        results = select_batch(
            candidates_pool, queries, k, kernel=kernel, tau=tau, method=method, seed=seed
        )
        return remaining[np.asarray([result.indices for result in results], dtype=np.int64)]

    scores = {tau: float(score(held_out, chosen_by("mmd", tau))) for tau in candidates}
    knn_score = float(score(held_out, chosen_by("knn", None)))
    best = max(candidates, key=lambda tau: (scores[tau], tau))
    return Calibration(
        tau=best,
        scores=scores,
        knn_score=knn_score,
        beats_knn=scores[best] > knn_score,
        scorer=scorer_name,
        kernel=kernel,
        k=k,
        seed=seed,
        validation_rows=held_out.tolist(),
    )


def _check_k(pool_size: int, k: int) -> None:
    if k < 1:
        raise InvalidInputError("k must be at least 1")
    if k > pool_size - 1:
        raise InvalidInputError(
            f"k={k} is too large to calibrate on a pool of {pool_size} rows: at least one row "
            f"must be held out, so k can be at most {pool_size - 1}",
            k=k,
            pool_size=pool_size,
        )


def _checked_taus(taus: Sequence[float], kernel: str) -> list[float]:
    if kernel == "cosine":
        raise InvalidInputError("the cosine kernel has no bandwidth to calibrate")
    try:
        values = [float(tau) for tau in taus]
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"taus must be numbers: {exc}") from exc
    if not values:
        raise InvalidInputError("taus must name at least one bandwidth")
    if not all(0.0 < tau < float("inf") for tau in values):
        raise InvalidInputError(f"every tau must be a positive finite number, got {values}")
    return sorted(set(values))


def _checked_rows(rows: Sequence[int] | np.ndarray, pool_size: int, k: int) -> np.ndarray:
    _check_k(pool_size, k)
    held_out = np.asarray(rows, dtype=np.int64).reshape(-1)
    if held_out.size == 0:
        raise InvalidInputError("validation_rows must name at least one row")
    if held_out.min() < 0 or held_out.max() >= pool_size:
        raise InvalidInputError(f"validation_rows must lie in [0, {pool_size})")
    if np.unique(held_out).size != held_out.size:
        raise InvalidInputError("validation_rows must be distinct")
    if held_out.size > pool_size - k:
        raise InvalidInputError(
            f"{held_out.size} validation rows leave fewer than k={k} rows of the pool's "
            f"{pool_size} to choose from"
        )
    return np.sort(held_out)


def _default_scorer(pool: Pool) -> tuple[str, Scorer]:
    """Label purity over the pool's labels, else output similarity over its outputs."""
    label_ids, outputs = pool.label_ids, pool.output_vectors
    if label_ids is not None:
        return "label_purity", lambda rows, chosen: label_purity(label_ids[rows], label_ids[chosen])
    if outputs is not None:

        def by_outputs(rows: np.ndarray, chosen: np.ndarray) -> float:
            device = outputs.device
            return output_similarity(
                outputs[torch.from_numpy(rows).to(device)],
                outputs[torch.from_numpy(chosen).to(device)],
            )

        return "output_similarity", by_outputs
    raise InvalidInputError(
        "calibration scores the chosen demonstrations by their labels or their output "
        "embeddings, and the pool has neither: give labels or output_embeddings when "
        "preparing the Pool, or pass a scorer"
    )


def _rows_of(pool: Pool, rows: np.ndarray) -> Pool:
    """The pool restricted to ``rows: (n',)``, without a prefilter index (exact selection)."""
    labels = None
    if pool.label_ids is not None and pool.label_names is not None:
        names = pool.label_names
        labels = [names[label] for label in pool.label_ids[rows].tolist()]
    outputs = None
    if pool.output_vectors is not None:
        outputs = pool.output_vectors[torch.from_numpy(rows).to(pool.device)]
    return Pool.from_arrays(
        pool.host_vectors[rows],
        labels=labels,
        output_embeddings=outputs,
        device=pool.device,
        normalized=True,
    )
