"""One call's work, from the scan to the report: every call is a batch of B problems
(:class:`~selector.joint.Targets`), solved over regions of the pool that grow until the
certificate holds (in batched rounds, or one problem's speculation and verification,
:func:`selector.regions.exact_single`), or over the prefilter's candidates; then auto-k, swap
refinement, beam search and the report (:mod:`selector.report`) of each problem."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from selector import report
from selector.cancel import checkpoint
from selector.constraints import (
    ConstraintPlan,
    ConstraintState,
    compile_constraints,
    subset_satisfies,
)
from selector.device import cpu_threads_for, finishing_threads, search_threads, torch_threads_for
from selector.errors import InfeasibleConstraintError, InvalidInputError
from selector.joint import AffinityScorer, Targets
from selector.kernels import Kernel, resolve_kernel
from selector.mmd import generalization_bound
from selector.options import SelectOptions, check_options, pinned_indices
from selector.pool import Pool
from selector.regions import (
    SWAP_CANDIDATES,
    TopRegions,
    exact_single,
    region_chunk_bytes,
)
from selector.report import RankedSubset, SelectionResult
from selector.search import (
    CandidateRegion,
    GreedyOutcome,
    beam_search,
    greedy,
    host_subset_objective,
    host_swap_rounds,
    subset_objective,
    swap_refine,
)

# A CPU batch over a pool larger than this solves its problems one by one on host arrays
# (speculation and verification) instead of growing their regions fourfold together: a batch of
# 256 over 100k isotropic vectors grew every region to 8,192 candidates (6.4 s on the loaded
# 2-core machine, one BLAS thread, against 1.6 s one by one; over 10k, 7.9 s in rounds). Small
# pools gain as much: 256 queries over 1,000 isotropic vectors took 1.00 s in rounds against
# 0.33 s one by one, over 4,000 1.52 against 0.54 s, over 64 0.13 against 0.11 s, with the
# same subsets (quiet Intel 2-core machine, side by side; docs/design.md). So every CPU batch
# goes one by one; the rounds serve the GPU and the constraints that are not static masks (a
# test raises this bound to run them on the CPU).
BATCH_ONE_BY_ONE_ABOVE = 0


@torch.inference_mode()  # no autograd bookkeeping: a step is dozens of small tensor ops
def solve(pool: Pool, targets: Targets, settings: SelectOptions) -> list[SelectionResult]:
    """Every problem of ``targets`` over ``pool``: one result per problem."""
    pins = pinned_indices(settings.pinned, pool.size)
    k_min, k_max = check_options(settings, pool, len(pins))
    started = time.perf_counter()
    kernel = resolve_kernel(settings.kernel, settings.tau, pool.vectors, settings.seed)
    joint = settings.joint
    has_outputs = pool.label_ids is not None or pool.output_vectors is not None
    if joint is None:
        joint = settings.strategy.minimises_mmd and has_outputs
    elif joint and not has_outputs:
        raise InvalidInputError("the joint kernel needs labels or output embeddings")
    output_kernel = Kernel("softmax", settings.output_tau)
    plan = compile_constraints(
        settings.constraints,
        pool.size,
        k_max,
        pool.label_ids,
        pool.label_names,
        pool.device,
        pins,
    )
    use_prefilter = pool.index is not None if settings.prefilter is None else settings.prefilter
    use_prefilter = use_prefilter and settings.strategy.prefilters
    scorer = AffinityScorer(
        pool, targets, kernel, output_kernel, joint, settings.label_neighbors, settings.label_tau
    )
    batch = targets.points.shape[0]
    # Internally the greedy's steps count the whole prompt: the pinned candidates first.
    k_min, k_max = k_min + len(pins), k_max + len(pins)
    one_by_one = _one_by_one(settings, plan, pool, batch)
    with search_threads(pool.device, batch, use_prefilter, one_by_one):
        if use_prefilter:
            regions = _prefiltered_regions(scorer, plan, settings, k_min, k_max)
        else:
            regions = _exact_regions(scorer, plan, settings, k_min, k_max)
    searched = time.perf_counter()
    with finishing_threads(pool.device):
        if batch > 1 and settings.k_range is None:
            _prime_primaries(scorer, regions, settings)
        results = [
            _finish(scorer, plan, settings, row, regions[row], k_min, joint) for row in range(batch)
        ]
    scan_seconds = (scorer.scan_finished or searched) - started
    for result in results:
        # A batch is one computation: each result carries its share of the shared stages.
        result.timings.update(
            {"scan": scan_seconds / batch, "select": (searched - started - scan_seconds) / batch}
        )
        object.__setattr__(result, "prefiltered", use_prefilter)
    return results


def _prime_primaries(
    scorer: AffinityScorer, regions: list[_Solved], settings: SelectOptions
) -> None:
    """Evaluate, in one batch, the subsets :func:`_finish` will report for the problems
    whose greedy answer is final (refined already, or not to be refined)."""
    will_refine = settings.strategy.minimises_mmd and settings.refine
    rows = [row for row, solved in enumerate(regions) if solved.refined or not will_refine]
    subsets = []
    for row in rows:
        positions = regions[row].positions
        subsets.append(regions[row].pool_index[positions[positions >= 0]].tolist())
    scorer.prime(rows, subsets)


@dataclass
class _Solved:
    """One problem's greedy answer: ``positions: (k,)`` region positions (``-1`` past the end)
    with their step ``objective``, the region's ``pool_index: (L,)`` and ``affinity: (L,)``,
    and (while a later stage still needs the candidates' vectors) row ``local`` of the batched
    ``region`` it was solved in."""

    region: CandidateRegion | None
    local: int
    positions: torch.Tensor
    objective: torch.Tensor
    pool_index: torch.Tensor
    affinity: torch.Tensor
    refined: bool = False
    searched: int | None = None  # candidates the search held, when not the region's
    columns: np.ndarray | None = None  # (j, L) the chosen's kernel columns (a host run's)

    @classmethod
    def of(cls, outcome: GreedyOutcome, local: int, searched: int | None = None) -> _Solved:
        region = outcome.region
        return cls(
            region,
            local,
            outcome.positions[local],
            outcome.objective[local],
            region.pool_index[local],
            region.affinity[local],
            searched=searched,
            columns=outcome.host_columns if region.batch_size == 1 else None,
        )

    def compact(self) -> None:
        """Keep the pool indices and affinities of the chosen alone (``positions`` then index
        them): a verification set may be the whole pool, and a batch solved one by one would
        hold one per problem until the report."""
        valid = self.positions >= 0
        chosen = self.positions[valid]
        self.pool_index = self.pool_index[chosen]
        self.affinity = self.affinity[chosen]
        self.positions = torch.where(valid, torch.cumsum(valid, 0) - 1, -1)

    def single(self) -> CandidateRegion:
        """The problem's own region, as a batch of one."""
        assert self.region is not None
        return self.region.take(slice(self.local, self.local + 1))


def _settle(solved: list[_Solved], plan: ConstraintPlan, settings: SelectOptions, k: int) -> None:
    """Swap-refine freshly solved problems together, then let go of their regions' vectors
    unless auto-k or beam search still needs them (a large batch would otherwise hold a
    region per problem until the end)."""
    if not solved:
        return
    if settings.strategy.minimises_mmd and settings.refine and settings.k_range is None:
        _refine_together(solved, plan, k)
    if settings.k_range is None and settings.num_subsets == 1:
        for problem in solved:
            problem.region = None
            problem.columns = None
            if problem.searched is not None:
                problem.compact()


def _run_greedy(
    plan: ConstraintPlan,
    settings: SelectOptions,
    region: CandidateRegion,
    k_min: int,
    k_max: int,
    extend: Callable[[CandidateRegion], CandidateRegion] | None = None,
    final: bool = True,
) -> GreedyOutcome:
    """The greedy over ``region``; raises when the whole pool cannot meet the constraints
    (the region is the ``final`` one to try: it holds every candidate that could help)."""
    state = ConstraintState(plan, region.pool_index, k_max)
    outcome = greedy(region, state, k_max, method=settings.strategy, k_min=k_min, extend=extend)
    if final and bool(outcome.infeasible.any()):
        raise InfeasibleConstraintError(
            state.describe_binding(),
            f"no subset of {k_min} candidates satisfies the constraints",
        )
    return outcome


def _exact_regions(
    scorer: AffinityScorer,
    plan: ConstraintPlan,
    settings: SelectOptions,
    k_min: int,
    k_max: int,
) -> list[_Solved]:
    """Greedy over the top of the target affinity, extending a problem's region until the
    exactness certificate holds (see :mod:`selector.search`).

    On the CPU, greedy MMD under static masks solves each problem by speculation and
    verification (:func:`selector.regions.exact_single`), a batch's problems one after
    another. Otherwise a batch runs together on regions of the initial size, then its
    problems whose certificate failed together on larger ones (:func:`_batched_rounds`); a
    single problem runs alone, its region growing fourfold in place. ``k_min``, ``k_max``
    count the pinned candidates, which head every region."""
    regions = _ranked_pool(scorer, plan, settings)
    feasible = plan.feasible_count
    pinned = plan.pinned_count
    size = settings.strategy.initial_region(
        k_max - pinned, settings.initial_region, settings.fetch_k
    )
    size = min(size + pinned, feasible)
    solved: dict[int, _Solved] = {}
    pending = list(range(scorer.batch))
    if _one_by_one(settings, plan, scorer.pool, scorer.batch):
        # Every problem by speculation and verification on host arrays, one after another
        # from the call's one scan: a few small products each, where batched fourfold growth
        # held (B, L, d) regions (a batch of 256 over 100k isotropic vectors: regions of
        # 8,192 each, about 25 s on the 2-core machine).
        refines = settings.refine or settings.num_subsets > 1  # then it needs the region
        for row in pending:
            answer = exact_single(regions, plan, size, k_min, k_max, refines, row)
            solved[row] = _Solved.of(answer.outcome, 0, answer.searched)
            _settle([solved[row]], plan, settings, k_max)
        pending = []
    elif scorer.batch > 1:
        pending, size = _batched_rounds(regions, plan, settings, size, k_min, k_max, solved)
    for row in pending:
        rows = slice(row, row + 1)

        def extend(region: CandidateRegion, rows: slice = rows) -> CandidateRegion:
            larger = min(region.size * 4, feasible)
            return regions.build(rows, larger, keep=region.pool_index)

        outcome = _run_greedy(plan, settings, regions.build(rows, size), k_min, k_max, extend)
        solved[row] = _Solved.of(outcome, 0)
        _settle([solved[row]], plan, settings, k_max)
    return [solved[row] for row in range(scorer.batch)]


def _one_by_one(settings: SelectOptions, plan: ConstraintPlan, pool: Pool, problems: int) -> bool:
    """Whether every problem is solved alone by speculation and verification on host
    arrays (:func:`selector.regions.exact_single`): greedy MMD under static masks, the pool
    on the CPU, one problem or a batch over more than ``BATCH_ONE_BY_ONE_ABOVE`` candidates
    (every pool: one by one was faster at every size measured, 64 to 100,000)."""
    host = settings.strategy.speculates and plan.static_only and pool.device.type == "cpu"
    return host and (problems == 1 or pool.size > BATCH_ONE_BY_ONE_ABOVE)


def _ranked_pool(
    scorer: AffinityScorer, plan: ConstraintPlan, settings: SelectOptions
) -> TopRegions:
    """Scan the pool once: the inner products ``(B, m, n)`` with every target point, the
    output estimate, and the ranking the regions are cut from."""
    inner = scorer.inner_with_pool()  # (B, m, n)
    scorer.scan_inner = inner
    scorer.estimate_outputs(inner, None)
    if settings.strategy.draws_at_random:
        # A seeded uniform order, problem b drawn from seed + b (a batch row equals the
        # single call with that seed): the random baseline is knn on random scores.
        ranked_by = "random"
        ranking = torch.stack(
            [
                torch.rand(scorer.pool.size, generator=torch.Generator().manual_seed(seed))
                for seed in range(settings.seed, settings.seed + scorer.batch)
            ]
        ).to(inner.device)
    elif inner.shape[1] == 1 and scorer.estimate is None:
        # One target point, no output factor: t = k(<x, q>) increases with <x, q>, so rank by
        # the inner product and evaluate the kernel on the region alone.
        ranked_by, ranking = "inner", inner[:, 0, :]
    else:
        ranked_by, ranking = "affinity", scorer.affinity(inner, None)[0]
    if plan.has_static_filter:
        ranking = ranking.masked_fill(~plan.static_mask.unsqueeze(0), -math.inf)
    if plan.pinned is not None:  # the pinned candidates head every region
        ranking = ranking.index_fill(1, plan.pinned, math.inf)
    scorer.scan_finished = time.perf_counter()
    return TopRegions(scorer, ranking, inner, ranked_by)


def _batched_rounds(
    regions: TopRegions,
    plan: ConstraintPlan,
    settings: SelectOptions,
    size: int,
    k_min: int,
    k_max: int,
    solved: dict[int, _Solved],
) -> tuple[list[int], int]:
    """Solve a batch's problems together on regions of ``size``, then the ones whose
    certificate failed together again on regions four times larger, until none is left or
    a region holds every feasible candidate (which needs no certificate, so none is left
    then). Fills ``solved``; returns the problems left for :func:`_exact_regions`'s
    one-at-a-time path and the region size they would start from.

    A dense pool fails the certificate at the first size for every problem of a batch (1M
    clustered vectors: all 256 went on to regions of 8,192); growing them together costs a
    few batched greedy runs instead of one run per problem.
    """
    scorer = regions.scorer
    feasible = plan.feasible_count
    pending = list(range(scorer.batch))
    while pending:
        # Chunks of problems keep each (B', L, d) region small enough for the allocator to
        # reuse its memory: fresh 100 MB tensors cost more in page faults than in arithmetic.
        chunk = max(1, region_chunk_bytes(scorer.pool.device) // (size * scorer.pool.dimension * 4))
        failed: list[int] = []
        threads = torch_threads_for(min(chunk, len(pending)))
        with cpu_threads_for(scorer.pool.device, threads):
            for start in range(0, len(pending), chunk):  # a batch-chunk boundary
                checkpoint()
                members = pending[start : start + chunk]
                rows: slice | torch.Tensor = (
                    slice(members[0], members[-1] + 1)
                    if members[-1] - members[0] + 1 == len(members)
                    else torch.tensor(members, device=scorer.pool.device)
                )
                outcome = _run_greedy(plan, settings, regions.build(rows, size), k_min, k_max)
                fresh = []
                for local, row in enumerate(members):
                    if bool(outcome.needs_larger_region[local]):
                        failed.append(row)
                    else:
                        solved[row] = _Solved.of(outcome, local)
                        fresh.append(solved[row])
                _settle(fresh, plan, settings, k_max)
        pending = failed
        if size >= feasible:
            break
        size = min(size * 4, feasible)
    return pending, size


def _prefiltered_regions(
    scorer: AffinityScorer, plan: ConstraintPlan, settings: SelectOptions, k_min: int, k_max: int
) -> list[_Solved]:
    """Greedy over the candidates the pool's index finds for each target point (and the
    pinned ones; ``k_min``, ``k_max`` count them)."""
    pool = scorer.pool
    assert pool.index is not None
    pinned = np.zeros(0, dtype=np.int64) if plan.pinned is None else plan.pinned.cpu().numpy()
    batch, count, dimension = scorer.targets.points.shape
    size = max(settings.prefilter_size, 4 * k_max)
    while True:
        found = pool.index.search(
            scorer.targets.points.reshape(batch * count, dimension).cpu().numpy(), size
        ).reshape(batch, count * min(size, pool.size))
        rows = [np.unique(np.concatenate([row[row >= 0], pinned])) for row in found]
        width = max(len(row) for row in rows)
        padded = np.full((batch, width), -1, dtype=np.int64)
        for position, row in enumerate(rows):
            padded[position, : len(row)] = row
        index = torch.from_numpy(padded).to(pool.device)
        gathered = pool.rows(index.clamp_min(0))  # (B, L, d)
        inner = torch.bmm(scorer.targets.points, gathered.transpose(1, 2))  # (B, m, L)
        inner = inner.masked_fill((index < 0).unsqueeze(1), -2.0)
        scorer.candidate_inner = (index, inner)  # the knn baseline ranks these candidates
        scorer.estimate_outputs(inner, index)
        affinity, similarity = scorer.affinity(inner, index)
        scorer.scan_finished = time.perf_counter()
        # The index answers approximately: no certificate, the region counts as complete.
        excluded = torch.full((batch,), -math.inf, device=pool.device)
        region = scorer.region(index, affinity, similarity, excluded, gathered)
        final = size >= pool.size
        if batch > 1 and _one_by_one(settings, plan, pool, batch):
            # As on the exact path: each problem's greedy and refinement on host arrays, one
            # after another, is the single call's computation and faster than the batched
            # torch loop (docs/design.md, "Batches, prefilter, devices").
            answers = _prefiltered_one_by_one(region, plan, settings, k_min, k_max, final)
            if answers is not None:
                return answers
        else:
            outcome = _run_greedy(plan, settings, region, k_min, k_max, final=final)
            if not bool(outcome.infeasible.any()):
                answers = [_Solved.of(outcome, row) for row in range(batch)]
                _settle(answers, plan, settings, k_max)
                return answers
        size *= 4


def _prefiltered_one_by_one(
    region: CandidateRegion,
    plan: ConstraintPlan,
    settings: SelectOptions,
    k_min: int,
    k_max: int,
    final: bool,
) -> list[_Solved] | None:
    """Every problem of the prefiltered ``region`` (a batch of B) solved alone: row b's
    candidates as a batch of one, the greedy and refinement of a single call; None when a
    problem cannot meet the constraints on these candidates (and ``final`` is false)."""
    answers = []
    for row in range(region.batch_size):
        single = region.take(slice(row, row + 1))  # views, not a copy of (1, L, d)
        outcome = _run_greedy(plan, settings, single, k_min, k_max, final=final)
        if bool(outcome.infeasible.any()):
            return None
        answers.append(_Solved.of(outcome, 0))
        _settle([answers[-1]], plan, settings, k_max)
    return answers


def _refine_together(solved: list[_Solved], plan: ConstraintPlan, k: int) -> None:
    """Swap-refine every problem, one batched call per region batch they were solved in."""
    groups: dict[int, list[_Solved]] = {}
    for problem in solved:
        groups.setdefault(id(problem.region), []).append(problem)
    for members in groups.values():
        region = members[0].region
        assert region is not None
        local_rows = [member.local for member in members]
        if local_rows != list(range(region.batch_size)):
            region = region.take(torch.tensor(local_rows, device=region.affinity.device))
        positions = torch.stack([member.positions[:k] for member in members])
        columns = members[0].columns if len(members) == 1 else None
        refined = _refined(region, plan, positions, k, columns)
        for member, row in zip(members, refined, strict=True):
            member.positions = row
            member.refined = True


def _finish(
    scorer: AffinityScorer,
    plan: ConstraintPlan,
    settings: SelectOptions,
    row: int,
    solved: _Solved,
    k_min: int,
    joint: bool,
) -> SelectionResult:
    """Auto-k, swap refinement, ranked alternatives and the report for problem ``row``.

    ``solved.positions`` and ``k_min`` count the pinned candidates, which come first; the
    result's ``k`` and ``indices`` are the chosen slice after them."""
    checkpoint()
    refine_started = time.perf_counter()
    pinned = plan.pinned_count
    positions, objective = solved.positions, solved.objective
    length = int((positions >= 0).sum())
    pool_index = solved.pool_index
    bounds_by_k: dict[int, float] | None = None
    k = length
    if settings.k_range is not None:
        bounds_by_k = {}
        constant = scorer.constant(row)
        for size in range(k_min, length + 1):
            prefix = pool_index[positions[:size]].tolist()
            if not subset_satisfies(plan, prefix, scorer.pool.vectors):
                continue
            mmd = math.sqrt(max(float(objective[size - 1]) + constant, 0.0))
            bounds_by_k[size - pinned] = generalization_bound(
                mmd, size, settings.bias_constant, settings.complexity_constant
            )
        if not bounds_by_k:
            raise InfeasibleConstraintError(
                "label_quotas", "no prefix of the greedy selection satisfies the constraints"
            )
        k = pinned + min(bounds_by_k, key=lambda size: (bounds_by_k[size], size))
    chosen = positions[:k].unsqueeze(0)
    candidates: list[list[int]] = []
    if settings.strategy.minimises_mmd and settings.refine and not solved.refined:
        columns = None if solved.columns is None else solved.columns[:k]
        chosen = _refined(solved.single(), plan, chosen, k, columns)
    candidates.append(chosen[0].tolist())
    if settings.num_subsets > 1 and settings.strategy.minimises_mmd:
        width = max(settings.beam_width or 2 * settings.num_subsets, settings.num_subsets)
        region = solved.single()
        state = ConstraintState(plan, region.pool_index, k)
        beams = beam_search(region, state, k, width)
        if beams:
            # Alternatives stay as the beam found them: refining them would mostly collapse
            # them onto the same local optimum, and a ranked list of one helps nobody.
            candidates.extend(beam for beam, _ in beams)
    ranked: list[RankedSubset] = []
    seen: set[frozenset[int]] = set()
    affinity_of: dict[int, float] = {}
    subsets: list[list[int]] = []  # the candidates' pool indices
    for subset in candidates:
        positions = torch.tensor(subset, device=pool_index.device)
        subsets.append(pool_index[positions].tolist())
        affinity_of.update(zip(subsets[-1], solved.affinity[positions].tolist(), strict=True))
    baseline_subsets = (
        report.baseline_subsets(scorer, plan, settings.seed, row, k - pinned, solved.pool_index)
        if settings.compare_baselines
        else {}
    )
    # Every subset this report evaluates, in one computation per size (each evaluation of a
    # few small tensors costs about as much in torch's per-op overhead as several of them).
    evaluated = subsets + list(baseline_subsets.values())
    scorer.prime([row] * len(evaluated), evaluated)
    for indices in subsets:
        key = frozenset(indices)
        if key in seen:
            continue
        seen.add(key)
        ranked.append(
            report.ranked(
                scorer.evaluate(row, indices),
                indices[pinned:],
                settings.bias_constant,
                settings.complexity_constant,
                len(indices),
            )
        )
    primary = ranked[0]
    ranked.sort(key=lambda subset: subset.mmd2)
    if settings.strategy.minimises_mmd:
        primary = ranked[0]
    ranked = [primary] + [subset for subset in ranked if subset is not primary]
    ranked = ranked[: settings.num_subsets]
    prompt_order = sorted(primary.indices, key=lambda index: affinity_of[index])
    pins = [] if plan.pinned is None else plan.pinned.tolist()
    chosen_mmd2 = primary.mmd2
    if pins:
        chosen_mmd2 = max(scorer.evaluate(row, primary.indices), 0.0)
    baselines = {
        name: max(scorer.evaluate(row, indices), 0.0) for name, indices in baseline_subsets.items()
    }
    distribution = report.label_distribution(scorer, row)
    refined = time.perf_counter()
    return SelectionResult(
        indices=primary.indices,
        mmd2=primary.mmd2,
        mmd=primary.mmd,
        bias_bound=primary.bias_bound,
        bound=primary.bound,
        k=k - pinned,
        subsets=ranked,
        prompt_order=prompt_order,
        method=settings.method,
        kernel=scorer.kernel.name,
        tau=scorer.kernel.tau,
        joint=joint,
        prefiltered=False,
        region_size=solved.searched or int((pool_index >= 0).sum()),
        chosen_mmd2=chosen_mmd2,
        chosen_mmd=math.sqrt(chosen_mmd2),
        pinned=tuple(pins),
        target_label_distribution=distribution,
        bounds_by_k=bounds_by_k,
        baselines=baselines,
        timings={"refine": refined - refine_started},
    )


def _refined(
    region: CandidateRegion,
    plan: ConstraintPlan,
    chosen: torch.Tensor,
    k: int,
    columns: np.ndarray | None = None,
) -> torch.Tensor:
    """Swap-refine ``chosen: (B, k)`` region positions under the constraints.

    Swaps draw on the chosen and the ``SWAP_CANDIDATES`` most affine candidates of the
    region: refinement is a heuristic that never makes a subset worse, and a swap with a
    far-down candidate rarely pays for scanning a large region again and again. Only allowed
    candidates count among the most affine (a verification set of the whole pool holds the
    ones a static mask forbids). ``columns: (k, L)``: the chosen's kernel columns over the
    region, when a host search has them (one problem)."""
    if region.batch_size == 1 and plan.static_only and region.affinity.device.type == "cpu":
        refined = _host_refined(region, plan, chosen[0].tolist(), columns)
        return torch.tensor([refined], dtype=chosen.dtype)
    if region.size > SWAP_CANDIDATES + k:
        allowed = plan.static_mask[region.pool_index.clamp_min(0)] & (region.pool_index >= 0)
        affinity = region.affinity.masked_fill(~allowed, -math.inf)
        top = torch.topk(affinity, SWAP_CANDIDATES, dim=1).indices
        keep = torch.cat([chosen, top], dim=1)
        # Drop repeats of the chosen (their first copies come first) by pushing them to the end.
        is_repeat = torch.zeros_like(keep, dtype=torch.bool)
        is_repeat[:, k:] = (top.unsqueeze(2) == chosen.unsqueeze(1)).any(2)
        order = torch.argsort(is_repeat.to(torch.int8), dim=1, stable=True)
        keep = torch.gather(keep, 1, order)[:, :SWAP_CANDIDATES]
        inside = region.restrict(keep)
        local = torch.arange(k, device=chosen.device).expand(chosen.shape[0], -1)
        refined_local = _refined(inside, plan, local, k)
        return torch.gather(keep, 1, refined_local)
    state = ConstraintState(plan, region.pool_index, k)
    gram = region.columns_of(chosen)
    state.choose_all(chosen, gram[1])
    before = subset_objective(region, chosen)
    after_positions = swap_refine(region, state, chosen, columns=gram)
    after = subset_objective(region, after_positions)
    return torch.where((after <= before).unsqueeze(1), after_positions, chosen)


def _host_refined(
    region: CandidateRegion,
    plan: ConstraintPlan,
    chosen: list[int],
    columns: np.ndarray | None = None,
) -> list[int]:
    """:func:`_refined` of one problem under static masks, its region on the CPU, in numpy
    (the same candidates: the chosen and the region's ``SWAP_CANDIDATES`` most affine
    allowed ones; the same swaps, :func:`selector.search.host_swap_rounds`). ``columns:
    (k, L)``, the chosen's kernel columns over the region, spare a product when given."""
    k = len(chosen)
    if k == 0 or region.size <= k:
        return chosen
    index = region.pool_index[0].numpy()
    allowed = index >= 0
    if plan.has_static_filter:
        allowed &= plan.host_static_mask[np.maximum(index, 0)]
    affinity, column = region.host_affinity, region.host_column  # (L,), position -> (L,)
    keep: np.ndarray | None = None  # the region positions refinement draws on
    if region.size > SWAP_CANDIDATES + k:
        key = np.where(allowed, region.affinity[0].numpy(), -math.inf)
        top = np.argpartition(key, key.size - SWAP_CANDIDATES)[key.size - SWAP_CANDIDATES :]
        top = top[np.argsort(-key[top], kind="stable")]
        first = np.asarray(chosen)
        repeat = (top[:, None] == first[None, :]).any(1)  # (S,); np.isin costs more at small k
        kept = np.concatenate([first, top[~repeat]])[:SWAP_CANDIDATES]
        # The kept candidates' own region is made when a column over them is first needed:
        # given the chosen's columns, at the first swap, and a quarter to nine tenths of the
        # refinements swap nothing (64 queries on each data kind, 2,000 to 100,000
        # candidates); the copy took 0.05 ms hot to 0.27 ms cold at 10,000 candidates.
        restricted = functools.cache(lambda: region.restrict(torch.from_numpy(kept)[None]))
        affinity, allowed = affinity[kept], allowed[kept]
        columns = restricted().host_columns(range(k)) if columns is None else columns[:, kept]

        def column(position: int) -> np.ndarray:
            return restricted().host_column(position)

        keep = kept
        chosen = list(range(k))
    else:  # the swaps update the columns in place
        columns = region.host_columns(chosen) if columns is None else columns.copy()  # (k, L)
    before = host_subset_objective(affinity, columns, chosen)
    allowed = allowed.copy()
    allowed[chosen] = False
    after_positions = host_swap_rounds(
        affinity, region.diagonal, column, columns, allowed, chosen, plan.pinned_count
    )
    if after_positions != chosen:
        after = host_subset_objective(affinity, columns, after_positions)
        if after <= before:
            chosen = after_positions
    return chosen if keep is None else keep[chosen].tolist()
