"""The target's side of a selection: its points and weights, the estimate of its output
(labels or free-text outputs) for the joint kernel, every candidate's target affinity, the
target's constant term, and the exact MMD^2 of reported subsets.

The joint kernel is ``k_x(x, x') * k_y(y, y')`` with ``k_y`` label equality or a softmax kernel
on output embeddings; the target's output is estimated from its nearest candidates
(docs/design.md). Its products with the candidates' outputs are taken here
(:meth:`AffinityScorer.output_factor`, :meth:`AffinityScorer.output_gram_between`) and, between
region candidates, in :meth:`selector.search.CandidateRegion.columns_of`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from selector.kernels import Array, Kernel
from selector.mmd import mmd2_from_gram
from selector.pool import Pool
from selector.search import CandidateRegion


@dataclass
class Targets:
    """``points: (B, m, d)`` unit rows, ``weights: (B, m)`` rows summing to 1, and optionally a
    given output distribution ``label_distribution: (B, m, num_labels)``."""

    points: torch.Tensor
    weights: torch.Tensor
    label_distribution: torch.Tensor | None = None


@dataclass
class OutputEstimate:
    """The target's estimated output side for the joint kernel.

    Labels: ``label_probability: (B, m, num_labels)``. Free-text outputs: the neighbours'
    ``neighbor_index: (B, m, N)`` and ``neighbor_weight: (B, m, N)`` (rows sum to 1)."""

    label_probability: torch.Tensor | None = None
    neighbor_index: torch.Tensor | None = None
    neighbor_weight: torch.Tensor | None = None


class AffinityScorer:
    """Computes target affinities ``t: (B, n)`` (or on given candidates) for one call."""

    def __init__(
        self,
        pool: Pool,
        targets: Targets,
        kernel: Kernel,
        output_kernel: Kernel,
        joint: bool,
        label_neighbors: int,
        label_tau: float,
    ) -> None:
        self.pool = pool
        self.targets = targets
        self.kernel = kernel
        self.output_kernel = output_kernel
        self.joint = joint
        self.label_neighbors = label_neighbors
        self.label_tau = label_tau
        self.estimate: OutputEstimate | None = None
        self.scan_finished: float | None = None  # perf_counter() when the scan was done
        self.scan_inner: torch.Tensor | None = None  # (B, m, n) of the scan, when one ran
        # The prefilter's candidates (B, L) (-1 pads) and their inner products (B, m, L).
        self.candidate_inner: tuple[torch.Tensor, torch.Tensor] | None = None
        self._evaluated: dict[tuple[int, tuple[int, ...]], float] = {}  # see prime()

    @property
    def batch(self) -> int:
        return int(self.targets.points.shape[0])

    def inner_with_pool(self) -> torch.Tensor:
        """``(B, m, n)`` inner products of every target point with every candidate."""
        batch, count, dimension = self.targets.points.shape
        flat = self.targets.points.reshape(batch * count, dimension)
        return self.pool.inner_products(flat).reshape(batch, count, self.pool.size)

    def estimate_outputs(self, inner: torch.Tensor, index: torch.Tensor | None) -> None:
        """Estimate the target's output side from its nearest candidates.

        ``inner: (B, m, L)`` inner products with the candidates ``index: (B, L)`` pool indices
        (None: the whole pool, L = n)."""
        if not self.joint:
            return
        given = self.targets.label_distribution
        if given is not None:
            self.estimate = OutputEstimate(label_probability=given)
            return
        count = min(self.label_neighbors, inner.shape[2])
        top_inner, top_position = torch.topk(inner, count, dim=2)
        weight = torch.softmax((top_inner - 1.0) / self.label_tau, dim=2)
        if index is None:
            neighbor = top_position
        else:
            neighbor = torch.gather(
                index.unsqueeze(1).expand(-1, inner.shape[1], -1), 2, top_position
            )
        if self.pool.label_ids is not None and self.pool.label_names is not None:
            label_ids = torch.from_numpy(self.pool.label_ids).to(inner.device)
            probability = torch.zeros(
                *inner.shape[:2], len(self.pool.label_names), device=inner.device
            )
            probability.scatter_add_(2, label_ids[neighbor.clamp_min(0)], weight)
            self.estimate = OutputEstimate(label_probability=probability)
        else:
            self.estimate = OutputEstimate(neighbor_index=neighbor, neighbor_weight=weight)

    def output_factor(
        self, index: torch.Tensor | None, rows: torch.Tensor | slice | None = None
    ) -> torch.Tensor | None:
        """``(B, m, L)``: ``E_{y ~ p_j} k_y(y_i, y)`` for the candidates ``index: (B, L)``
        (None: the whole pool) of the problems ``rows`` (None: all); None for input-only
        selection."""
        if self.estimate is None:
            return None
        if self.estimate.label_probability is not None:
            assert self.pool.label_ids is not None
            label_ids = torch.from_numpy(self.pool.label_ids).to(self.pool.device)
            probability = self.estimate.label_probability
            if rows is not None:
                probability = probability[rows]
            if index is None:
                return probability[:, :, label_ids]
            labels = label_ids[index.clamp_min(0)]  # (B, L)
            return torch.gather(
                probability, 2, labels.unsqueeze(1).expand(-1, probability.shape[1], -1)
            )
        assert self.pool.output_vectors is not None
        assert (
            self.estimate.neighbor_index is not None and self.estimate.neighbor_weight is not None
        )
        outputs = self.pool.output_vectors
        neighbor_index, neighbor_weight = (
            self.estimate.neighbor_index,
            self.estimate.neighbor_weight,
        )
        if rows is not None:
            neighbor_index, neighbor_weight = neighbor_index[rows], neighbor_weight[rows]
        neighbor_outputs = outputs[neighbor_index]  # (B, m, N, d_o)
        if index is None:
            inner = torch.einsum("bmnd,ld->bmln", neighbor_outputs, outputs)
        else:
            inner = torch.einsum("bmnd,bld->bmln", neighbor_outputs, outputs[index.clamp_min(0)])
        values = self.output_kernel.from_inner(inner)
        return (values * neighbor_weight.unsqueeze(2)).sum(3)

    def affinity(
        self,
        inner: torch.Tensor,
        index: torch.Tensor | None,
        rows: torch.Tensor | slice | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``inner: (B, m, L)`` of the problems ``rows`` (None: all) with the candidates
        ``index: (B, L)`` (None: the whole pool) -> target affinity ``t: (B, L)`` and plain
        similarity ``sum_j w_j <x_i, y_j>: (B, L)``."""
        weights = self.targets.weights if rows is None else self.targets.weights[rows]
        weights = weights.unsqueeze(2)
        values = self.kernel.from_inner(inner)
        factor = self.output_factor(index, rows)
        if factor is not None:
            values = values * factor
        return (values * weights).sum(1), (inner * weights).sum(1)

    def constant(self, row: int) -> float:
        """``sum_{j,l} w_j w_l k((y_j, o_j), (y_l, o_l))`` for problem ``row``."""
        return float(self.constants(torch.tensor([row], device=self.pool.device))[0])

    def constants(self, rows: torch.Tensor) -> torch.Tensor:
        """:meth:`constant` of the problems ``rows: (R,)`` -> ``(R,)`` float64."""
        points = self.targets.points[rows].to(torch.float64)  # (R, m, d)
        weights = self.targets.weights[rows].to(torch.float64).unsqueeze(2)  # (R, m, 1)
        gram = self.kernel(points, points)
        if self.estimate is not None:
            gram = gram * self._target_output_gram(rows)
        return (weights.transpose(1, 2) @ gram @ weights).reshape(-1)

    def _target_output_gram(self, rows: torch.Tensor) -> torch.Tensor:
        """``(R, m, m)``: ``E k_y`` between the estimated outputs of target points j and l of
        the problems ``rows: (R,)``."""
        assert self.estimate is not None
        if self.estimate.label_probability is not None:
            probability = self.estimate.label_probability[rows].to(torch.float64)
            return probability @ probability.transpose(1, 2)
        assert self.pool.output_vectors is not None
        assert (
            self.estimate.neighbor_index is not None and self.estimate.neighbor_weight is not None
        )
        neighbor = self.pool.output_vectors[self.estimate.neighbor_index[rows]].to(torch.float64)
        weight = self.estimate.neighbor_weight[rows].to(torch.float64)  # (R, m, N)
        values = self.output_kernel.from_inner(torch.einsum("rand,rbmd->rabnm", neighbor, neighbor))
        return torch.einsum("ran,rabnm,rbm->rab", weight, values, weight)

    def evaluate(self, row: int, indices: Sequence[int]) -> float:
        """Exact ``MMD^2`` of the pool subset ``indices`` to target ``row`` (from the values
        :meth:`prime` computed in one batch, when it holds them)."""
        key = (row, tuple(indices))
        if key in self._evaluated:
            return self._evaluated.pop(key)
        index = torch.as_tensor([list(indices)], dtype=torch.long, device=self.pool.device)
        return float(self.evaluate_many(torch.tensor([row], device=index.device), index)[0])

    def prime(self, rows: Sequence[int], subsets: Sequence[Sequence[int]]) -> None:
        """Evaluate the subsets ``subsets[i]`` of problems ``rows[i]`` together (one batched
        computation per subset size) for the :meth:`evaluate` calls that will ask for them;
        those it holds already are skipped."""
        fresh = [
            position
            for position, subset in enumerate(subsets)
            if (rows[position], tuple(subset)) not in self._evaluated
        ]
        rows, subsets = [rows[p] for p in fresh], [subsets[p] for p in fresh]
        by_size: dict[int, list[int]] = {}
        for position, subset in enumerate(subsets):
            by_size.setdefault(len(subset), []).append(position)
        for size, positions in by_size.items():
            if size == 0:
                continue
            device = self.pool.device
            row_index = torch.tensor([rows[p] for p in positions], device=device)
            index = torch.tensor([list(subsets[p]) for p in positions], device=device)
            values = self.evaluate_many(row_index, index).tolist()
            for position, value in zip(positions, values, strict=True):
                self._evaluated[(rows[position], tuple(subsets[position]))] = value

    def evaluate_many(self, rows: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Exact ``MMD^2`` ``(R,)`` float64 of the pool subsets ``index: (R, k)`` to the
        targets of problems ``rows: (R,)``, in numpy for a pool in host memory (a report
        evaluates a few subsets of a few points, where torch's per-op cost was most of it)."""
        if self.pool.device.type == "cpu":
            chosen = np.take(self.pool.host_vectors, index.numpy(), axis=0)  # (R, k, d)
            points = self.targets.points[rows].numpy()  # (R, m, d)
            together = np.concatenate([chosen, points], axis=1).astype(np.float64)
            return torch.from_numpy(
                self._mmd2_of(together, self.targets.weights[rows].numpy(), rows, index)
            )
        chosen_rows = self.pool.rows(index)
        points_rows = self.targets.points[rows]
        together_rows = torch.cat([chosen_rows, points_rows], dim=1).to(torch.float64)
        return self._mmd2_of(together_rows, self.targets.weights[rows], rows, index)

    def _mmd2_of(
        self, together: Array, weights: Array, rows: torch.Tensor, index: torch.Tensor
    ) -> Array:
        """``MMD^2: (R,)`` from the chosen rows and the target points ``together: (R, k + m,
        d)`` float64 (the k chosen ``index: (R, k)`` first), through one Gram matrix ``(R, k +
        m, k + m)`` (joint: times the output kernel's); numpy or torch alike."""
        size = index.shape[1]
        gram = self.kernel(together, together)
        within, cross, target_gram = (
            gram[:, :size, :size],
            gram[:, :size, size:],
            gram[:, size:, size:],
        )
        if self.estimate is not None:
            factor = self.output_factor(index, rows)  # (R, m, k)
            assert factor is not None
            within = within * _like(self.output_gram_between(index, index), within)
            cross = cross * _like(factor.transpose(1, 2).to(torch.float64), cross)
            target_gram = target_gram * _like(self._target_output_gram(rows), target_gram)
        return mmd2_from_gram(within, cross, target_gram, weights)

    def output_gram_between(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """``(R, P, Q)`` float64 output kernel between pool indices ``left: (R, P)`` and
        ``right: (R, Q)``."""
        if self.pool.label_ids is not None:
            labels = torch.from_numpy(self.pool.label_ids).to(left.device)
            return (labels[left].unsqueeze(2) == labels[right].unsqueeze(1)).to(torch.float64)
        assert self.pool.output_vectors is not None
        outputs = self.pool.output_vectors
        return self.output_kernel(outputs[left].to(torch.float64), outputs[right].to(torch.float64))

    def region(
        self,
        index: torch.Tensor,
        affinity: torch.Tensor,
        similarity: torch.Tensor,
        excluded: torch.Tensor,
        vectors: torch.Tensor | None = None,
    ) -> CandidateRegion:
        """Gather the tensors of candidates ``index: (B, L)`` (``-1`` pads); ``vectors:
        (B, L, d)`` when the caller has gathered them already."""
        safe = index.clamp_min(0)
        output_labels = output_vectors = None
        if self.joint and self.pool.label_ids is not None:
            output_labels = torch.from_numpy(self.pool.label_ids).to(index.device)[safe]
        elif self.joint and self.pool.output_vectors is not None:
            output_vectors = self.pool.output_vectors[safe]
        return CandidateRegion(
            pool_index=index,
            vectors=self.pool.rows(safe) if vectors is None else vectors,
            affinity=affinity.masked_fill(index < 0, 0.0),
            similarity=similarity.masked_fill(index < 0, 0.0),
            excluded_affinity=excluded,
            kernel=self.kernel,
            output_labels=output_labels,
            output_vectors=output_vectors,
            output_kernel=self.output_kernel if output_vectors is not None else None,
        )


def _like(values: torch.Tensor, kind: Array) -> Array:
    """``values`` (on the CPU when ``kind`` is a numpy array) as the kind of ``kind``."""
    return values.numpy() if isinstance(kind, np.ndarray) else values
