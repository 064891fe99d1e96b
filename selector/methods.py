"""The selection methods as small objects: what differs between greedy MMD and its baselines.

Every method is a greedy over a region: at each step it takes the allowed candidate of the
smallest step value. A :class:`Method` says what that value is, how low a candidate outside the
region could score (the certificate), how large a region to start from, and which of the MMD
machinery (the joint kernel by default, swap refinement, beam search, speculation and
verification, the prefilter) applies to it. Callers ask the object; nothing compares names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch

from selector import objective
from selector.errors import InvalidInputError

if TYPE_CHECKING:
    from selector.search import CandidateRegion


class RunState(Protocol):
    """What a method reads of a batched greedy run (:class:`selector.search._GreedyRun`):
    the region, ``redundancy: (B, L)`` and ``affinity: (B, L)`` float64, each candidate's
    largest cosine to the chosen ``max_similarity: (B, L)``, and the sums ``(B,)``."""

    region: CandidateRegion
    redundancy: torch.Tensor
    affinity: torch.Tensor
    max_similarity: torch.Tensor
    sum_chosen: torch.Tensor
    sum_affinity: torch.Tensor


@dataclass(frozen=True)
class Method:
    """One selection method; the base class is greedy MMD minimisation.

    - ``minimises_mmd``: the subset is chosen for its ``MMD^2`` (joint kernel by default with
      labels, swap refinement, beam search, the alternatives ranked by ``MMD^2``).
    - ``prefilters``: a pool index may narrow the pool first (random draws from all of it).
    - ``draws_at_random``: the regions are cut from seeded uniform scores, not the affinity.
    - ``uses_similarity``: the run tracks each candidate's largest cosine to the chosen.
    """

    name: str
    minimises_mmd: bool = True
    prefilters: bool = True
    draws_at_random: bool = False
    uses_similarity: bool = False

    @property
    def speculates(self) -> bool:
        """Whether one problem may be solved by speculation and verification
        (:func:`selector.regions.exact_single`), which verifies MMD steps."""
        return self.minimises_mmd

    def step_values(self, run: RunState, step: int) -> torch.Tensor:
        """``(B, L)`` float64 step values (lower is better) of every region candidate."""
        diagonal = run.region.diagonal
        offset = objective.step_offset(run.sum_chosen, run.sum_affinity, step, diagonal)
        return objective.step_score(run.redundancy, run.affinity, offset.unsqueeze(1), step)

    def outside_bound(self, run: RunState, step: int) -> torch.Tensor:
        """``(B,)``: no candidate outside the region can score below this at ``step``."""
        region = run.region
        excluded = region.excluded_affinity.to(torch.float64)
        least = region.least_redundancy(step)
        return objective.excluded_bound(
            run.sum_chosen, run.sum_affinity, excluded, step, least, region.diagonal
        )

    def initial_region(self, k: int, given: int | None, fetch_k: int | None) -> int:
        """The region size a problem of ``k`` steps starts from (``given``: the caller's
        ``initial_region``; ``fetch_k``: MMR's candidate count)."""
        return given or max(256, 64 * k)


@dataclass(frozen=True)
class Knn(Method):
    """The k most target-affine candidates (KATE)."""

    name: str = "knn"
    minimises_mmd: bool = False

    def step_values(self, run: RunState, step: int) -> torch.Tensor:
        return run.affinity.neg()

    def outside_bound(self, run: RunState, step: int) -> torch.Tensor:
        return run.region.excluded_affinity.to(torch.float64).neg()


@dataclass(frozen=True)
class Mmr(Method):
    """Maximal marginal relevance ``lambda sim(q, i) - (1 - lambda) max_c sim(i, c)`` over
    the ``fetch_k`` most similar candidates, as its peers do (no certificate)."""

    name: str = "mmr"
    minimises_mmd: bool = False
    uses_similarity: bool = True
    mmr_lambda: float = 0.5

    def step_values(self, run: RunState, step: int) -> torch.Tensor:
        relevance = run.region.similarity
        if step == 1:
            return relevance.neg().to(torch.float64)
        value = self.mmr_lambda * relevance - (1.0 - self.mmr_lambda) * run.max_similarity
        return value.neg().to(torch.float64)

    def outside_bound(self, run: RunState, step: int) -> torch.Tensor:
        excluded = run.region.excluded_affinity
        return torch.full_like(excluded, -math.inf, dtype=torch.float64)

    def initial_region(self, k: int, given: int | None, fetch_k: int | None) -> int:
        return fetch_k or max(20, 4 * k)


@dataclass(frozen=True)
class RandomOrder(Knn):
    """A seeded uniform draw: knn on the random scores the region was cut from."""

    name: str = "random"
    prefilters: bool = False
    draws_at_random: bool = True

    def step_values(self, run: RunState, step: int) -> torch.Tensor:
        assert run.region.random_scores is not None
        return run.region.random_scores.to(torch.float64).neg()


MMD = Method("mmd")
_BY_NAME: dict[str, type[Method]] = {"mmd": Method, "knn": Knn, "mmr": Mmr, "random": RandomOrder}
METHODS = tuple(_BY_NAME)


def resolve_method(name: str | Method, mmr_lambda: float = 0.5) -> Method:
    """The method called ``name`` (MMR with its ``mmr_lambda``); a :class:`Method` as is."""
    if isinstance(name, Method):
        return name
    if name not in _BY_NAME:
        raise InvalidInputError(f"unknown method {name!r}; expected one of {', '.join(METHODS)}")
    if _BY_NAME[name] is Mmr:
        return Mmr(mmr_lambda=mmr_lambda)
    return _BY_NAME[name](name)
