"""Constraints on the chosen subset, applied as masks inside every greedy step.

:class:`Constraints` is what a caller writes (in pool index space). :func:`compile_constraints`
checks it against the pool and turns it into a :class:`ConstraintPlan` of tensors;
:class:`ConstraintState` carries the plan through a batch of B greedy runs over candidate
regions of L candidates each, and answers ``mask(step) -> (B, L)``: which candidates may be
added now without breaking a constraint or making the rest of the selection impossible.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from selector.errors import InfeasibleConstraintError, InvalidInputError


@dataclass(frozen=True)
class Constraints:
    """What the chosen subset must satisfy. Every field is optional.

    - ``token_budget`` with ``token_counts: (n,)``: the chosen demonstrations' token counts sum
      to at most the budget.
    - ``label_quotas``: ``{label: (min, max)}`` over the pool's ``labels`` (``None`` for no
      bound on that side); ``balance_labels=True`` asks for ``floor(k/L)..ceil(k/L)`` of each of
      the L labels present.
    - ``metadata_filter`` with ``metadata: (n,)`` dicts: only candidates whose metadata equals
      every given key/value.
    - ``exclude``: pool indices never to choose.
    - ``dedup_threshold``: no two chosen candidates with cosine similarity above it.
    """

    token_budget: int | None = None
    token_counts: Sequence[int] | np.ndarray | None = None
    label_quotas: Mapping[Hashable, tuple[int | None, int | None]] | None = None
    balance_labels: bool = False
    metadata_filter: Mapping[str, Any] | None = None
    metadata: Sequence[Mapping[str, Any] | None] | None = None
    exclude: Collection[int] = field(default_factory=tuple)
    dedup_threshold: float | None = None


@dataclass
class ConstraintPlan:
    """A :class:`Constraints` checked against a pool of n candidates, as tensors.

    ``static_mask: (n,)`` bool (filters and exclusions); ``token_counts: (n,)`` float or None;
    ``label_ids: (n,)`` long or None; ``min_quota``/``max_quota: (num_labels,)`` long or None.
    """

    static_mask: torch.Tensor
    token_budget: float | None = None
    token_counts: torch.Tensor | None = None
    smallest_token_counts: torch.Tensor | None = None  # cumulative sums of the sorted counts
    label_ids: torch.Tensor | None = None
    min_quota: torch.Tensor | None = None
    max_quota: torch.Tensor | None = None
    balance_labels: bool = False
    dedup_threshold: float | None = None
    pinned: torch.Tensor | None = None  # (p,) long pool indices already in the prompt

    @property
    def pinned_count(self) -> int:
        """How many candidates are pinned (the greedy's first steps, never re-chosen)."""
        return 0 if self.pinned is None else int(self.pinned.shape[0])

    @functools.cached_property
    def has_static_filter(self) -> bool:
        return not bool(self.static_mask.all())

    @functools.cached_property
    def host_static_mask(self) -> np.ndarray:
        """``static_mask`` in host memory."""
        return self.static_mask.cpu().numpy()

    @property
    def static_only(self) -> bool:
        """Whether only static masks (filters, exclusions) constrain a subset: no token
        budget, label quotas or near-duplicate suppression."""
        return self.token_counts is None and self.label_ids is None and self.dedup_threshold is None

    @functools.cached_property
    def feasible_count(self) -> int:
        return int(self.static_mask.sum())

    def quotas_for(self, k: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(min, max)`` per label for a subset of size k, or None without label quotas."""
        if self.label_ids is None:
            return None
        if self.balance_labels:
            present = torch.zeros(int(self.label_ids.max()) + 1, dtype=torch.bool)
            present[self.label_ids[self.static_mask.cpu()].cpu()] = True
            count = int(present.sum())
            low = torch.where(present, k // count, 0)
            high = torch.where(present, -(-k // count), 0)
            return low.to(self.label_ids.device), high.to(self.label_ids.device)
        if self.min_quota is None or self.max_quota is None:
            return None
        return self.min_quota, self.max_quota


def compile_constraints(
    constraints: Constraints | None,
    n: int,
    k: int,
    label_ids: np.ndarray | None,
    label_names: Sequence[Hashable] | None,
    device: torch.device,
    pinned: Sequence[int] = (),
) -> ConstraintPlan:
    """Check ``constraints`` against a pool of ``n`` candidates and a subset size ``k``.

    ``pinned``: pool indices already in the prompt (checked by the caller: distinct, in
    range). The constraints then hold for the whole prompt, pinned and chosen: the token
    budget counts the pinned examples, label quotas count their labels, and no chosen
    candidate may be a near-duplicate of a pinned one (pinned ones are not checked among
    themselves). k is the number to choose besides them; pinned candidates bypass the static
    masks (they are in the prompt already) and are never chosen again.

    Raises :class:`InvalidInputError` for malformed constraints and
    :class:`InfeasibleConstraintError` (naming the constraint) when no subset of size k can
    satisfy them.
    """
    constraints = constraints or Constraints()
    pins = np.asarray(list(pinned), dtype=np.int64)
    static = np.ones(n, dtype=bool)
    static[pins] = False  # the k to choose come from the others
    if constraints.exclude:
        excluded = np.fromiter(constraints.exclude, dtype=np.int64)
        if excluded.size and (excluded.min() < 0 or excluded.max() >= n):
            raise InvalidInputError("exclude holds an index outside the pool")
        static[excluded] = False
        if static.sum() < k:
            raise InfeasibleConstraintError(
                "exclude", f"only {int(static.sum())} candidates remain after exclusions, k={k}"
            )
    if constraints.metadata_filter:
        if constraints.metadata is None or len(constraints.metadata) != n:
            raise InvalidInputError("metadata_filter needs one metadata entry per candidate")
        wanted = dict(constraints.metadata_filter)
        for index, entry in enumerate(constraints.metadata):
            entry = entry or {}
            if any(entry.get(key) != value for key, value in wanted.items()):
                static[index] = False
        if static.sum() < k:
            raise InfeasibleConstraintError(
                "metadata_filter",
                f"only {int(static.sum())} candidates match the metadata filter, k={k}",
            )
    plan = ConstraintPlan(static_mask=torch.from_numpy(static).to(device))

    if constraints.token_budget is not None:
        if constraints.token_counts is None:
            raise InvalidInputError("token_budget needs token_counts")
        counts = np.asarray(constraints.token_counts, dtype=np.float64)
        if counts.shape != (n,) or not np.isfinite(counts).all() or (counts < 0).any():
            raise InvalidInputError("token_counts must be n non-negative numbers")
        if constraints.token_budget < 0:
            raise InvalidInputError("token_budget must be non-negative")
        feasible_sorted = np.sort(counts[static])
        pinned_tokens = float(counts[pins].sum())
        if pinned_tokens + feasible_sorted[:k].sum() > constraints.token_budget:
            pinned_part = (
                f"the pinned examples' {int(pinned_tokens)} tokens and " if pins.size else ""
            )
            raise InfeasibleConstraintError(
                "token_budget",
                f"{pinned_part}the {k} shortest candidates need "
                f"{int(pinned_tokens + feasible_sorted[:k].sum())} tokens, "
                f"over the budget of {constraints.token_budget}",
            )
        plan.token_budget = float(constraints.token_budget)
        plan.token_counts = torch.from_numpy(counts).to(device=device, dtype=torch.float64)
        cumulative = np.concatenate([[0.0], np.cumsum(feasible_sorted)])
        plan.smallest_token_counts = torch.from_numpy(cumulative).to(device)

    if constraints.dedup_threshold is not None:
        if not -1.0 <= constraints.dedup_threshold <= 1.0:
            raise InvalidInputError("dedup_threshold is a cosine similarity in [-1, 1]")
        plan.dedup_threshold = float(constraints.dedup_threshold)

    if constraints.label_quotas or constraints.balance_labels:
        if label_ids is None or label_names is None:
            raise InvalidInputError("label quotas need labels for the candidates")
        plan.label_ids = torch.from_numpy(label_ids).to(device)
        num_labels = len(label_names)
        k += pins.size  # quotas are for the whole prompt
        with_pins = static.copy()
        with_pins[pins] = True
        available = np.bincount(label_ids[with_pins], minlength=num_labels)
        if constraints.balance_labels:
            plan.balance_labels = True
            present = available > 0
            low = k // int(present.sum())
            if (available[present] < low).any():
                raise InfeasibleConstraintError(
                    "label_quotas", f"balanced labels need at least {low} candidates of each label"
                )
        else:
            assert constraints.label_quotas is not None
            position = {name: index for index, name in enumerate(label_names)}
            low_q = np.zeros(num_labels, dtype=np.int64)
            high_q = np.full(num_labels, k, dtype=np.int64)
            for name, (low_v, high_v) in constraints.label_quotas.items():
                if name not in position:
                    # A label the pool does not hold: harmless unless it asks for a minimum.
                    if low_v:
                        raise InfeasibleConstraintError(
                            "label_quotas", f"the pool has no example with label {name!r}"
                        )
                    continue
                index = position[name]
                low_q[index] = 0 if low_v is None else low_v
                high_q[index] = max(k, low_q[index]) if high_v is None else high_v
                if low_q[index] < 0 or high_q[index] < low_q[index]:
                    raise InvalidInputError(f"label quota for {name!r} needs 0 <= min <= max")
            if low_q.sum() > k:
                raise InfeasibleConstraintError(
                    "label_quotas", f"the minimum quotas add up to {int(low_q.sum())} > k={k}"
                )
            if np.minimum(high_q, available).sum() < k:
                raise InfeasibleConstraintError(
                    "label_quotas", f"the maximum quotas and the pool allow fewer than k={k}"
                )
            short = np.flatnonzero(available < low_q)
            if short.size:
                raise InfeasibleConstraintError(
                    "label_quotas",
                    f"label {label_names[int(short[0])]!r} has {int(available[short[0]])} "
                    f"candidates, fewer than its minimum {int(low_q[short[0]])}",
                )
            pinned_counts = np.bincount(label_ids[pins], minlength=num_labels)
            over = np.flatnonzero(pinned_counts > high_q)
            if over.size:
                raise InfeasibleConstraintError(
                    "label_quotas",
                    f"the pinned examples hold {int(pinned_counts[over[0]])} of label "
                    f"{label_names[int(over[0])]!r}, over its maximum {int(high_q[over[0]])}",
                )
            plan.min_quota = torch.from_numpy(low_q).to(device)
            plan.max_quota = torch.from_numpy(high_q).to(device)
    if pins.size:
        static[pins] = True  # chosen first, so never again
        plan.static_mask = torch.from_numpy(static).to(device)
        plan.pinned = torch.from_numpy(pins).to(device)
    return plan


class ConstraintState:
    """The constraints' state across B greedy runs over regions ``region_index: (B, L)``.

    ``k`` is the size the runs aim for (quotas and the token reserve are planned for it).
    """

    def __init__(self, plan: ConstraintPlan, region_index: torch.Tensor, k: int) -> None:
        self.plan = plan
        self.k = k
        batch, size = region_index.shape
        device = region_index.device
        self.base_mask = plan.static_mask[region_index] & (region_index >= 0)
        self.chosen = torch.zeros(batch, size, dtype=torch.bool, device=device)
        self.tokens_used = torch.zeros(batch, dtype=torch.float64, device=device)
        self.region_tokens = (
            plan.token_counts[region_index.clamp_min(0)] if plan.token_counts is not None else None
        )
        quotas = plan.quotas_for(k)
        self.min_quota: torch.Tensor | None = None
        self.max_quota: torch.Tensor | None = None
        if quotas is not None:
            self.min_quota, self.max_quota = quotas
        self.region_labels = (
            plan.label_ids[region_index.clamp_min(0)] if plan.label_ids is not None else None
        )
        self.label_counts = (
            torch.zeros(batch, self.min_quota.shape[0], dtype=torch.long, device=device)
            if self.min_quota is not None
            else None
        )
        self.duplicate = torch.zeros(batch, size, dtype=torch.bool, device=device)
        self.pinned_positions = torch.zeros(batch, 0, dtype=torch.long, device=device)
        if plan.pinned is not None:
            # (B, p): where each pinned candidate sits in each problem's region.
            found = region_index.unsqueeze(2) == plan.pinned.view(1, 1, -1)
            assert bool(found.any(1).all()), "every region holds the pinned candidates"
            self.pinned_positions = found.to(torch.int8).argmax(1)

    @property
    def static_only(self) -> bool:
        """Whether only static masks (filters, exclusions) constrain the runs: no token
        budget, label quotas or near-duplicate suppression."""
        return (
            self.region_tokens is None
            and self.label_counts is None
            and self.plan.dedup_threshold is None
        )

    def mask(self, step: int) -> torch.Tensor:
        """``(B, L)`` bool: the candidates that may be chosen at ``step`` (1-based)."""
        allowed = self.base_mask & ~self.chosen
        if self.plan.dedup_threshold is not None:
            allowed &= ~self.duplicate
        remaining_after = self.k - step
        if self.region_tokens is not None:
            assert (
                self.plan.token_budget is not None and self.plan.smallest_token_counts is not None
            )
            reserve = self.plan.smallest_token_counts[max(remaining_after, 0)]
            room = self.plan.token_budget - self.tokens_used - reserve
            allowed &= self.region_tokens <= room.unsqueeze(1) + 1e-9
        if self.label_counts is not None and self.region_labels is not None:
            assert self.min_quota is not None and self.max_quota is not None
            label_open = self.label_counts < self.max_quota
            deficit = (self.min_quota - self.label_counts).clamp_min(0)
            # When the unmet minimums fill the remaining slots, only those labels may come next.
            forced = deficit.sum(dim=1) >= remaining_after + 1
            label_ok = torch.where(forced.unsqueeze(1), label_open & (deficit > 0), label_open)
            allowed &= torch.gather(label_ok, 1, self.region_labels)
        return allowed

    def update(
        self,
        positions: torch.Tensor,
        inner_column: torch.Tensor,
        active: torch.Tensor,
        every: bool = False,
    ) -> None:
        """Record that problem b chose ``positions[b]`` where ``active[b]`` (``every``: all
        are active); ``inner_column: (B, L)`` holds the cosine of every region candidate to
        that choice."""
        if every and self.region_tokens is None and self.label_counts is None:
            self.chosen.scatter_(1, positions.unsqueeze(1), True)
            if self.plan.dedup_threshold is not None:
                self.duplicate |= inner_column > self.plan.dedup_threshold
            return
        rows = torch.arange(positions.shape[0], device=positions.device)
        self.chosen[rows[active], positions[active]] = True
        if self.region_tokens is not None:
            self.tokens_used += torch.where(active, self.region_tokens[rows, positions], 0.0)
        if self.label_counts is not None and self.region_labels is not None:
            chosen_labels = self.region_labels[rows, positions]
            self.label_counts[rows[active], chosen_labels[active]] += 1
        if self.plan.dedup_threshold is not None:
            self.duplicate |= (inner_column > self.plan.dedup_threshold) & active.unsqueeze(1)

    def choose_all(self, positions: torch.Tensor, inner: torch.Tensor) -> None:
        """Record a whole selection at once: ``positions: (B, k)`` with their inner products
        ``inner: (B, k, L)`` with every region candidate."""
        self.chosen.scatter_(1, positions, True)
        if self.region_tokens is not None:
            self.tokens_used += torch.gather(self.region_tokens, 1, positions).sum(1)
        if self.label_counts is not None and self.region_labels is not None:
            labels = torch.gather(self.region_labels, 1, positions)
            self.label_counts.scatter_add_(1, labels, torch.ones_like(labels))
        if self.plan.dedup_threshold is not None:
            self.duplicate |= (inner > self.plan.dedup_threshold).any(1)

    def reorder(self, rows: torch.Tensor) -> None:
        """Keep the runs ``rows: (B',)`` (in that order), for beam search."""
        self.base_mask = self.base_mask[rows]
        self.chosen = self.chosen[rows]
        self.tokens_used = self.tokens_used[rows]
        self.duplicate = self.duplicate[rows]
        self.pinned_positions = self.pinned_positions[rows]
        if self.region_tokens is not None:
            self.region_tokens = self.region_tokens[rows]
        if self.region_labels is not None:
            self.region_labels = self.region_labels[rows]
        if self.label_counts is not None:
            self.label_counts = self.label_counts[rows]

    def describe_binding(self) -> str:
        """The name of the constraint most likely to have left no candidate."""
        if self.label_counts is not None:
            return "label_quotas"
        if self.region_tokens is not None:
            return "token_budget"
        if self.plan.dedup_threshold is not None:
            return "dedup_threshold"
        if self.plan.has_static_filter:
            return "metadata_filter"
        return "pool_size"


def subset_satisfies(plan: ConstraintPlan, indices: Sequence[int], vectors: torch.Tensor) -> bool:
    """Whether the pool indices (the whole prompt, pinned ones included) satisfy every
    constraint of ``plan`` (``vectors: (n, d)`` unit rows, for the dedup check; pairs of
    pinned candidates are not checked). Used to check prefixes and in tests."""
    index = torch.as_tensor(list(indices), dtype=torch.long, device=plan.static_mask.device)
    if index.unique().numel() != index.numel() or not bool(plan.static_mask[index].all()):
        return False
    if (
        plan.token_counts is not None
        and plan.token_budget is not None
        and float(plan.token_counts[index].sum()) > plan.token_budget + 1e-9
    ):
        return False
    quotas = plan.quotas_for(len(indices))
    if quotas is not None and plan.label_ids is not None:
        counts = torch.bincount(plan.label_ids[index], minlength=quotas[0].shape[0])
        if bool((counts < quotas[0]).any()) or bool((counts > quotas[1]).any()):
            return False
    if plan.dedup_threshold is not None and len(indices) > 1:
        chosen = vectors[index.to(vectors.device)]
        similarity = chosen @ chosen.T
        similarity.fill_diagonal_(-2.0)
        if plan.pinned is not None:
            is_pinned = torch.isin(index, plan.pinned).to(vectors.device)
            similarity[is_pinned.unsqueeze(1) & is_pinned.unsqueeze(0)] = -2.0
        if float(similarity.max()) > plan.dedup_threshold:
            return False
    return True
