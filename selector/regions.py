"""Regions of the pool, the exactness certificate, and one problem's exact search by
speculation and verification.

A *region* is the top of a ranking of the pool (the target affinity, or the inner product
when the affinity increases with it). The certificate (:func:`selector.objective.excluded_bound`)
proves a region's greedy step to be the pool's: no candidate outside, whose affinity is at most
the largest one left out, can score below the region's best.

:func:`exact_single` solves one problem exactly at about the cost of the scan, whatever the
data: it *speculates* the greedy on a small region (``size`` candidates), and when the
certificate fails there it does not grow the region blindly. The speculated steps tell how
high an affinity a candidate needs to matter (:func:`selector.objective.affinity_threshold`);
the *verification set* V is every candidate above that (or the whole pool when that is most of
it, without copying it), and one matrix product of V with the speculated rows gives every
candidate's redundancy at every step as prefix sums. A step is taken where the speculated pick
is V's best; where it is not, V's best is the exact step, and the rest is speculated again
from there (on the ``size`` best of V at that step) and verified by another product. The steps
are certified against the candidates outside V as before; if that fails (the exact picks
differ from the speculated ones enough), V grows to the new threshold and the certified steps
carry over. Each product covers the steps left, so the cost is a few passes over V, never one
per step over the pool; a pool of near-duplicates, where growing by four went up to the whole
pool, needs the same few products. On a pool of at most ``DIRECT_POOL`` candidates the first
region is the whole pool, which is cheaper there: the greedy runs over it directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from selector.cancel import checkpoint
from selector.constraints import ConstraintPlan
from selector.errors import InfeasibleConstraintError
from selector.search import CandidateRegion, GreedyOutcome, HostRun, host_outcome

if TYPE_CHECKING:
    from selector.joint import AffinityScorer

REGION_CHUNK_BYTES = 16 * 2**20  # float32 region vectors per chunk of a batch, on the CPU
ACCELERATOR_REGION_CHUNK_BYTES = 256 * 2**20  # the same on a GPU (its allocator reuses memory)
SWAP_CANDIDATES = 1024  # swap refinement draws on the chosen and this many most affine
WHOLE_POOL_SHARE = 0.5  # a verification set above this share of the pool is the whole pool
SMALL_POOL = 4_096  # up to this, a verification set is the whole pool (no threshold pass)
MAX_REGROWTHS = 3  # then the verification set is the whole pool
DIRECT_POOL = 4_096  # up to this, one problem's greedy runs over the whole pool directly
TOP_SAMPLE_STRIDE = 16  # the top of a ranking is cut from every 16th key first (_top)


def region_chunk_bytes(device: torch.device) -> int:
    """Bytes of ``(B', L, d)`` float32 region vectors one chunk of a batch may hold."""
    return REGION_CHUNK_BYTES if device.type == "cpu" else ACCELERATOR_REGION_CHUNK_BYTES


class TopRegions:
    """Regions made of the top of a ranking of the pool, ``ranking: (B, n)``: the affinity;
    the inner product when the affinity increases with it (``ranked_by`` ``"inner"``); or
    seeded uniform scores for the random method (``"random"``). ``inner: (B, m, n)``."""

    def __init__(
        self, scorer: AffinityScorer, ranking: torch.Tensor, inner: torch.Tensor, ranked_by: str
    ) -> None:
        self.scorer = scorer
        self.ranking = ranking
        self.inner = inner
        self.ranked_by = ranked_by

    def build(
        self, rows: slice | torch.Tensor, size: int, keep: torch.Tensor | None = None
    ) -> CandidateRegion:
        """The ``size`` best candidates of the problems ``rows`` (a slice: views, no copies of
        the ``(B, n)`` rankings; or a tensor of problem indices); with ``keep: (B', L)`` (a
        smaller region of the same rows) its candidates stay first, in their order."""
        ranking = self.ranking[rows]
        take = min(size + 1, ranking.shape[1])
        top_value, top_index = torch.topk(ranking, take, dim=1)
        index = top_index[:, :size]
        if keep is not None:
            kept = torch.zeros_like(ranking, dtype=torch.bool)
            kept.scatter_(1, keep, True)
            fresh = ~torch.gather(kept, 1, index)
            added = torch.stack([row[mask] for row, mask in zip(index, fresh, strict=True)])
            index = torch.cat([keep, added], dim=1)
        excluded = torch.full((ranking.shape[0],), -math.inf, device=ranking.device)
        if take > size:
            excluded = self.affinity_of_key(top_value[:, size])
        return self.of_index(rows, index, excluded)

    def affinity_of_key(self, key: torch.Tensor) -> torch.Tensor:
        """The affinity of a candidate whose ranking key is ``key`` (any shape): the kernel of
        the inner product for an inner-product ranking, else the key itself."""
        if self.ranked_by != "inner":
            return key
        return torch.where(torch.isneginf(key), key, self.scorer.kernel.from_inner(key))

    def host_region(
        self, index: np.ndarray, excluded: torch.Tensor, whole: bool = False, row: int = 0
    ) -> CandidateRegion:
        """Problem ``row``'s region of the pool indices ``index: (L,)`` on the CPU (``whole``: every
        candidate, in pool order, its vectors uncopied), whose affinity outside is at most
        ``excluded: (1,)``: what :meth:`of_index` gives, built from the scan's host arrays
        when the affinity is the kernel of the inner product (one target point, no output
        side), without the batched gathers."""
        scorer = self.scorer
        pool = scorer.pool
        vectors = pool.vectors.unsqueeze(0) if whole else None
        tensor_index = torch.from_numpy(index).unsqueeze(0)
        if self.ranked_by != "inner" or pool.device.type != "cpu":
            rows = slice(row, row + 1)
            return self.of_index(rows, tensor_index.to(pool.device), excluded, vectors)
        inner = self.inner[row, 0]  # (n,): one target point
        region_inner = inner if whole else inner.index_select(0, tensor_index[0])
        if vectors is None:
            # np.take: 1.6-3.5 % less per selection than fancy indexing (10,000 vectors of
            # three kinds, side by side, 2026-12-03).
            vectors = torch.from_numpy(np.take(pool.host_vectors, index, axis=0)).unsqueeze(0)
        return CandidateRegion(
            pool_index=tensor_index,
            vectors=vectors,
            affinity=scorer.kernel.from_inner(region_inner).unsqueeze(0),
            similarity=region_inner.unsqueeze(0),
            excluded_affinity=excluded,
            kernel=scorer.kernel,
        )

    def of_index(
        self,
        rows: slice | torch.Tensor,
        index: torch.Tensor,
        excluded: torch.Tensor,
        vectors: torch.Tensor | None = None,
    ) -> CandidateRegion:
        """The region of the candidates ``index: (B', L)`` of the problems ``rows``, whose
        affinity outside is at most ``excluded: (B',)``; ``vectors`` when they are at hand."""
        inner = self.inner[rows]
        region_inner = torch.gather(inner, 2, index.unsqueeze(1).expand(-1, inner.shape[1], -1))
        affinity, similarity = self.scorer.affinity(region_inner, index, rows)
        region = self.scorer.region(index, affinity, similarity, excluded, vectors)
        if self.ranked_by == "random":
            region.random_scores = torch.gather(self.ranking[rows], 1, index)
        return region


@dataclass
class SingleAnswer:
    """One problem's exact greedy: ``outcome`` over the region refinement draws on (the
    region fourfold growth would have certified, so a batch row refines as the single call),
    and ``searched``, how many candidates the search held at the end."""

    outcome: GreedyOutcome
    searched: int


def exact_single(
    regions: TopRegions,
    plan: ConstraintPlan,
    size: int,
    k_min: int,
    k: int,
    refines: bool = True,
    row: int = 0,
) -> SingleAnswer:
    """The pool's greedy for problem ``row`` of ``regions`` (``mmd``, static masks only, on the
    CPU), speculated on the ``size`` best candidates and verified where the certificate
    fails (module docstring). Without ``refines`` (no refinement or beam search to follow),
    the outcome's region is the search's last, not the one refinement draws on."""
    ranking = regions.ranking[row]
    # A pool of at most DIRECT_POOL: the greedy over all of it as the first region, one
    # product a step, no ranking, speculation or certificate (they cost more than they spare).
    direct = ranking.shape[0] <= DIRECT_POOL
    if direct:
        top = np.arange(ranking.shape[0])
        small = regions.host_region(top, torch.full((1,), -math.inf), whole=True, row=row)
    else:
        # The top of the ranking once: the small region, and what every verification set
        # holds (the prefixes refinement may draw on, see _refinement_outcome).
        count = min(max(size, SWAP_CANDIDATES + k + 1) + 1, ranking.shape[0])
        top = _top(ranking.numpy(), count)
        excluded_key = (
            ranking[torch.from_numpy(top[size : size + 1])]
            if count > size
            else torch.full((1,), -math.inf)
        )
        small = regions.host_region(top[:size], regions.affinity_of_key(excluded_key), row=row)

    def answer(run: HostRun) -> SingleAnswer:
        """The search ended on the small region; refinement after a direct greedy draws on
        the prefix a speculated search would have refined on."""
        if direct and refines:
            return SingleAnswer(_refinement_outcome(run, small, plan, size, k), small.size)
        return SingleAnswer(host_outcome(run, k, False, False, small), small.size)

    allowed = _allowed(small, plan)
    run = HostRun.on(small, allowed)
    pins = [] if plan.pinned is None else plan.pinned.tolist()
    if pins:  # the pinned candidates head the ranking, so the small region: taken first
        positions = _positions(small.pool_index[0].cpu().numpy(), pins, ordered=direct)
        for position, column in zip(positions, small.host_columns(positions), strict=True):
            run.commit(position, math.nan, column)
    excluded = float(small.excluded_affinity[0])
    certified, threshold = True, math.inf
    while run.step <= k:  # a step boundary
        checkpoint()
        scores = run.scores()
        best = int(scores.argmin())
        value = float(scores[best])
        least = small.least_redundancy(run.step)
        if not math.isfinite(value):
            if excluded == -math.inf:  # every allowed candidate is here: the pool has no more
                _check_feasible(run, k_min, plan)
                return answer(run)
            certified = False
            break
        if excluded != -math.inf:
            threshold = min(threshold, run.threshold(value, least))
            certified = certified and value <= run.bound(excluded, least)
        run.commit(best, value, small.host_column(best))
    if certified:
        return answer(run)
    speculated = small.pool_index[0, run.chosen].tolist()
    chosen: list[int] = list(pins)  # pool indices of the certified steps
    values: list[float] = [math.nan] * len(pins)
    for growth in range(MAX_REGROWTHS + 1):
        whole = growth == MAX_REGROWTHS
        region = _verification_set(regions, top, threshold, whole, row)
        outcome = _verify(region, plan, size, chosen, values, speculated, k_min, k)
        if isinstance(outcome, HostRun):
            if not refines:
                return SingleAnswer(host_outcome(outcome, k, False, False, region), region.size)
            refined = _refinement_outcome(outcome, region, plan, size, k)
            return SingleAnswer(refined, region.size)
        threshold = min(threshold, outcome)
        speculated = []
    raise AssertionError("a verification set of the whole pool needs no certificate")


def _top(key: np.ndarray, count: int) -> np.ndarray:
    """The positions of the ``count`` largest of ``key: (n,)``, largest first (a partition,
    then a sort of those alone: several times faster than ``torch.topk`` on the CPU).

    A strided sample of ``key`` gives a cut that about ``1.5 count`` keys reach; the partition
    then runs on those alone (100,000 keys: 0.11 against 0.91 ms; 1,000,000: 0.74 against
    10.7 ms). When fewer than ``count`` reach the cut, the whole of ``key`` is partitioned."""
    size = key.shape[0]
    if count >= size:
        part = np.arange(size)
    else:
        part = np.flatnonzero(key >= _sampled_cut(key, count))
        if part.shape[0] < count:
            part = np.arange(size)
        part = part[np.argpartition(key[part], part.shape[0] - count)[part.shape[0] - count :]]
    return part[np.argsort(-key[part], kind="stable")]


def _sampled_cut(key: np.ndarray, count: int) -> float:
    """A value about ``1.5 count`` of ``key: (n,)`` reach, from every ``TOP_SAMPLE_STRIDE``-th
    key (``-inf`` when the sample is too small to tell)."""
    sample = key[::TOP_SAMPLE_STRIDE]
    wanted = count * 3 // (2 * TOP_SAMPLE_STRIDE) + 16
    if wanted >= sample.shape[0]:
        return -math.inf
    return float(np.partition(sample, sample.shape[0] - wanted)[sample.shape[0] - wanted])


def _allowed(region: CandidateRegion, plan: ConstraintPlan) -> np.ndarray:
    """``(L,)`` bool: the region's candidates the static masks allow."""
    index = region.pool_index[0].cpu().numpy()
    if not plan.has_static_filter:
        return index >= 0
    return plan.host_static_mask[np.maximum(index, 0)] & (index >= 0)


def _check_feasible(run: HostRun, k_min: int, plan: ConstraintPlan) -> None:
    if run.step <= k_min:
        raise InfeasibleConstraintError(
            "metadata_filter" if plan.has_static_filter else "pool_size",
            f"no subset of {k_min} candidates satisfies the constraints",
        )


def _verification_set(
    regions: TopRegions, top: np.ndarray, threshold: float, whole: bool, row: int = 0
) -> CandidateRegion:
    """Every candidate whose affinity may reach ``threshold``, and the ``top`` of the
    ranking (pool indices, in order): the whole pool (its vectors uncopied, in pool order)
    when that is most of it; else those candidates in pool order, whose affinity outside is
    at most the threshold's and the top's last."""
    scorer = regions.scorer
    pool = scorer.pool
    key = regions.ranking[row]
    if not whole and pool.size > SMALL_POOL:
        if regions.ranked_by == "inner":
            cut = scorer.kernel.inner_threshold(threshold) - 1e-6
        else:
            cut = threshold - 1e-9 * max(1.0, abs(threshold))
        inside = key.numpy() >= cut
        inside[top[:-1]] = True
        chosen = np.flatnonzero(inside)
        if chosen.size <= WHOLE_POOL_SHARE * pool.size:
            bound = regions.affinity_of_key(torch.tensor(cut, dtype=key.dtype))
            excluded = torch.minimum(bound, regions.affinity_of_key(key[int(top[-1])]))
            return regions.host_region(chosen, excluded.reshape(1), row=row)
    excluded = torch.full((1,), -math.inf)
    return regions.host_region(np.arange(pool.size), excluded, whole=True, row=row)


def _verify(
    region: CandidateRegion,
    plan: ConstraintPlan,
    size: int,
    chosen: list[int],
    values: list[float],
    speculated: list[int],
    k_min: int,
    k: int,
) -> HostRun | float:
    """The greedy over the verification set ``region``, from the certified steps ``chosen``
    (pool indices, their step ``values``; both extended in place), trying the ``speculated``
    picks first. Returns the finished run, or, when the certificate against the candidates
    outside fails, the affinity threshold a larger set needs."""
    pool_index = region.pool_index[0].cpu().numpy()
    run = HostRun.on(region, _allowed(region, plan))
    if chosen:
        positions = _positions(pool_index, chosen)
        for position, value, column in zip(
            positions, values, region.host_columns(positions), strict=True
        ):
            run.commit(position, value, column)
    excluded = float(region.excluded_affinity[0])
    pending = [p for p in _positions(pool_index, speculated, missing=True)[len(chosen) :]]
    while run.step <= k:
        # One product gives every candidate's kernel with each pick still to verify.
        columns = region.host_columns(pending) if pending else np.empty((0, region.size))
        taken = 0
        while run.step <= k:  # a step boundary: one greedy step per pass
            checkpoint()
            scores = run.scores()
            best = int(scores.argmin())
            value = float(scores[best])
            least = region.least_redundancy(run.step)
            if excluded != -math.inf and (
                not math.isfinite(value) or value > run.bound(excluded, least)
            ):
                return run.threshold(value, least) if math.isfinite(value) else -math.inf
            if not math.isfinite(value):
                _check_feasible(run, k_min, plan)
                return run
            if taken < len(pending) and pending[taken] >= 0 and scores[pending[taken]] <= value:
                run.commit(pending[taken], value, columns[taken])
                taken += 1
            else:
                # Speculate as far again as the last guess held, at least one step: a guess
                # that keeps failing (near-copies crowd the candidates it is made on) then
                # costs a column or two per product, not the rest of the steps.
                ahead = max(1, 2 * (taken - 1)) if pending else k
                pending = [best, *_speculate(region, run, best, value, size, ahead, k)]
                break
            chosen.append(int(pool_index[run.chosen[-1]]))
            values.append(value)
    return run


def _positions(
    pool_index: np.ndarray, indices: list[int], missing: bool = False, ordered: bool = True
) -> list[int]:
    """The region positions of the pool ``indices`` (``-1`` for one the region lacks, when
    ``missing``); ``pool_index`` is increasing (the region is in pool order) unless not
    ``ordered``."""
    if not indices:
        return []
    if not ordered:
        where = {int(index): position for position, index in enumerate(pool_index.tolist())}
        assert missing or all(index in where for index in indices)
        return [where.get(index, -1) for index in indices]
    found = np.searchsorted(pool_index, indices)
    found = np.minimum(found, len(pool_index) - 1)
    hit = pool_index[found] == np.asarray(indices)
    assert missing or bool(hit.all())
    return np.where(hit, found, -1).tolist()


def _speculate(
    region: CandidateRegion, run: HostRun, best: int, value: float, size: int, ahead: int, k: int
) -> list[int]:
    """Up to ``ahead`` greedy steps (of ``k`` in all) after choosing ``best`` (at ``value``)
    in ``run``, speculated on the ``size`` candidates of ``region`` that score best now
    (region positions, unverified)."""
    remaining = min(ahead, k - run.step)
    if remaining <= 0:
        return []
    scores = run.scores()
    take = min(size, region.size)
    near = np.argpartition(scores, take - 1)[:take] if take < region.size else np.arange(take)
    near = np.union1d(near, [best])
    local = region.restrict(torch.from_numpy(near).unsqueeze(0))
    guess = HostRun(run.affinity[near], run.penalty[near].copy(), run.diagonal)
    guess.redundancy = run.redundancy[near].copy()
    guess.sum_chosen, guess.sum_affinity = run.sum_chosen, run.sum_affinity
    guess.chosen = [-1] * len(run.chosen)  # only the step count matters here
    start = int(np.searchsorted(near, best))
    guess.commit(start, value, local.host_column(start))
    for _ in range(remaining):
        scores = guess.scores()
        pick = int(scores.argmin())
        if not math.isfinite(float(scores[pick])):
            break
        guess.commit(pick, float(scores[pick]), local.host_column(pick))
    return near[guess.chosen[len(run.chosen) + 1 :]].tolist()


def _refinement_outcome(
    run: HostRun, region: CandidateRegion, plan: ConstraintPlan, size: int, k: int
) -> GreedyOutcome:
    """The outcome over the region swap refinement draws on: the prefix of the ranking that
    fourfold growth from ``size`` would have certified (a batch's problems grow that way), or
    the verification set itself when that prefix is larger than refinement looks."""
    affinity = run.affinity
    key = np.where(_allowed(region, plan), affinity, -math.inf)
    count = min(key.size, SWAP_CANDIDATES + k + 2)
    top = np.argpartition(-key, count - 1)[:count] if count < key.size else np.arange(count)
    order = top[np.argsort(-key[top], kind="stable")]
    feasible = plan.feasible_count
    least = region.least_redundancy
    pinned = plan.pinned_count  # their steps are given, not certified
    prefix = size
    while prefix < min(feasible, region.size) and prefix <= SWAP_CANDIDATES + k:
        excluded = float(affinity[order[prefix]])
        bounds = run.bounds(excluded, least)
        if all(v <= b for v, b in zip(run.values[pinned:], bounds[pinned:], strict=True)):
            break
        prefix = min(prefix * 4, feasible)
    if prefix > SWAP_CANDIDATES + k or prefix >= region.size:
        return host_outcome(run, k, False, False, region)
    # The chosen always belong to the region they are refined in. The certificate's test is
    # ``<=``: a chosen candidate ranked exactly at ``prefix`` whose bound is tight (the joint
    # kernel's zero redundancy across labels makes the bound exact) passes it from outside.
    keep = np.union1d(order[:prefix], np.asarray(run.chosen, dtype=order.dtype))
    local = region.restrict(torch.from_numpy(keep).unsqueeze(0))
    mapped = HostRun(affinity[keep], run.penalty[keep], run.diagonal)
    mapped.chosen = np.searchsorted(keep, run.chosen).tolist()
    mapped.values = run.values
    mapped.columns = [column[keep] for column in run.columns]
    return host_outcome(mapped, k, False, False, local)
