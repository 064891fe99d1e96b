"""The front door: :func:`select` and :func:`select_batch`.

Both take the candidates as an ``(n, d)`` array (numpy or torch) or a prepared
:class:`~selector.pool.Pool`, and return :class:`SelectionResult` objects whose ``indices`` are
pool indices in selection order. Internally every call is a batch of B problems, each with a
target of m weighted points: one query (B = 1, m = 1), a weighted target set (B = 1, m), or B
independent queries (B, m = 1).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from selector import report
from selector.cancel import checkpoint, stop_when
from selector.constraints import (
    ConstraintPlan,
    Constraints,
    ConstraintState,
    compile_constraints,
    subset_satisfies,
)
from selector.device import cpu_threads_for, torch_threads_for
from selector.errors import InfeasibleConstraintError, InvalidInputError
from selector.joint import AffinityScorer, Targets
from selector.kernels import Kernel, resolve_kernel
from selector.mmd import generalization_bound
from selector.pool import Pool, as_matrix, normalize_rows
from selector.regions import (
    SWAP_CANDIDATES,
    TopRegions,
    exact_single,
    region_chunk_bytes,
)
from selector.report import RankedSubset
from selector.search import (
    METHODS,
    CandidateRegion,
    GreedyOutcome,
    beam_search,
    greedy,
    subset_objective,
    swap_refine,
)


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


@dataclass(frozen=True)
class SelectOptions:
    """Every knob of a selection besides the data; see :func:`select` for their meaning."""

    k: int = 8
    kernel: str = "softmax"
    tau: float | str | None = None
    method: str = "mmd"
    joint: bool | None = None
    output_tau: float = 0.2
    label_tau: float = 0.05
    label_neighbors: int = 16
    constraints: Constraints | None = None
    k_range: tuple[int, int] | None = None
    num_subsets: int = 1
    beam_width: int | None = None
    refine: bool = True
    bias_constant: float = 1.0
    complexity_constant: float = 1.0
    mmr_lambda: float = 0.5
    fetch_k: int | None = None
    prefilter: bool | None = None
    prefilter_size: int = 1024
    initial_region: int | None = None
    compare_baselines: bool = False
    seed: int = 0
    should_stop: Callable[[], bool] | None = None
    pinned: Sequence[int] | None = None


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
    settings = SelectOptions(k=k, kernel=kernel, tau=tau, method=method, pinned=pinned, **options)  # type: ignore[arg-type]
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
        return _solve(pool, targets, settings)[0]


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
    settings = SelectOptions(k=k, kernel=kernel, tau=tau, method=method, pinned=pinned, **options)  # type: ignore[arg-type]
    pool = _as_pool(candidates, labels, output_embeddings, device)
    points = normalize_rows(as_matrix(queries, "queries", pool.dimension), "queries")
    batch = points.shape[0]
    targets = Targets(
        torch.from_numpy(points).to(pool.device).unsqueeze(1),
        torch.ones(batch, 1, dtype=torch.float32, device=pool.device),
    )
    with stop_when(settings.should_stop):
        return _solve(pool, targets, settings)


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


def _pinned(values: Sequence[int] | None, pool_size: int) -> tuple[int, ...]:
    """The pinned pool indices, checked: integers, in range, distinct."""
    if values is None:
        return ()
    try:
        array = np.asarray(list(values))
    except TypeError as exc:
        raise InvalidInputError(f"pinned must be a sequence of pool indices: {exc}") from exc
    if array.size == 0:
        return ()
    if array.ndim != 1 or not (
        np.issubdtype(array.dtype, np.integer) and not np.issubdtype(array.dtype, np.bool_)
    ):
        raise InvalidInputError("pinned must be a flat sequence of integer pool indices")
    if array.min() < 0 or array.max() >= pool_size:
        raise InvalidInputError(f"pinned holds an index outside the pool ({pool_size} candidates)")
    if np.unique(array).size != array.size:
        raise InvalidInputError("pinned holds an index twice")
    return tuple(int(value) for value in array)


def _check_options(settings: SelectOptions, pool: Pool, pinned: int) -> tuple[int, int]:
    """Validate the options against the pool (``pinned`` candidates taken already); returns
    ``(k_min, k_max)``."""
    if settings.method not in METHODS:
        raise InvalidInputError(
            f"unknown method {settings.method!r}; expected one of {', '.join(METHODS)}"
        )
    if settings.k_range is not None:
        k_min, k_max = settings.k_range
        if not 1 <= k_min <= k_max:
            raise InvalidInputError("k_range must satisfy 1 <= k_min <= k_max")
    else:
        k_min = k_max = settings.k
    if k_max < 1:
        raise InvalidInputError("k must be at least 1")
    if k_max > pool.size - pinned:
        left = f" besides the {pinned} pinned" if pinned else ""
        raise InvalidInputError(
            f"k={k_max} is larger than the pool ({pool.size - pinned} candidates{left})"
        )
    if settings.num_subsets < 1:
        raise InvalidInputError("num_subsets must be at least 1")
    if not 0.0 <= settings.mmr_lambda <= 1.0:
        raise InvalidInputError("mmr_lambda must lie in [0, 1]")
    if settings.label_neighbors < 1 or settings.label_tau <= 0 or settings.output_tau <= 0:
        raise InvalidInputError("label_neighbors, label_tau and output_tau must be positive")
    if settings.prefilter and pool.index is None:
        raise InvalidInputError("prefilter asked for but the pool has no index")
    return k_min, k_max


@torch.inference_mode()  # no autograd bookkeeping: a step is dozens of small tensor ops
def _solve(pool: Pool, targets: Targets, settings: SelectOptions) -> list[SelectionResult]:
    pins = _pinned(settings.pinned, pool.size)
    k_min, k_max = _check_options(settings, pool, len(pins))
    started = time.perf_counter()
    kernel = resolve_kernel(settings.kernel, settings.tau, pool.vectors, settings.seed)
    joint = settings.joint
    has_outputs = pool.label_ids is not None or pool.output_vectors is not None
    if joint is None:
        joint = settings.method == "mmd" and has_outputs
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
    use_prefilter = use_prefilter and settings.method != "random"
    scorer = AffinityScorer(
        pool, targets, kernel, output_kernel, joint, settings.label_neighbors, settings.label_tau
    )
    batch = targets.points.shape[0]
    # Internally the greedy's steps count the whole prompt: the pinned candidates first.
    k_min, k_max = k_min + len(pins), k_max + len(pins)
    if use_prefilter:
        with cpu_threads_for(pool.device, torch_threads_for(batch)):
            regions = _prefiltered_regions(scorer, plan, settings, k_min, k_max)
    else:
        # A few problems keep one torch thread from the scan to the end: switching threads
        # between their stages cost more than it saved (100k pool: 27 against 19 ms per
        # single selection). A large batch's stages choose their own (_batched_rounds).
        with cpu_threads_for(pool.device, 1) if batch < 16 else contextlib.nullcontext():
            regions = _exact_regions(scorer, plan, settings, k_min, k_max)
    searched = time.perf_counter()
    with cpu_threads_for(pool.device, 1):
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
    will_refine = settings.method == "mmd" and settings.refine
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
        )

    def single(self) -> CandidateRegion:
        """The problem's own region, as a batch of one."""
        assert self.region is not None
        return self.region.take(torch.tensor([self.local], device=self.positions.device))


def _settle(solved: list[_Solved], plan: ConstraintPlan, settings: SelectOptions, k: int) -> None:
    """Swap-refine freshly solved problems together, then let go of their regions' vectors
    unless auto-k or beam search still needs them (a large batch would otherwise hold a
    region per problem until the end)."""
    if not solved:
        return
    if settings.method == "mmd" and settings.refine and settings.k_range is None:
        _refine_together(solved, plan, k)
    if settings.k_range is None and settings.num_subsets == 1:
        for problem in solved:
            problem.region = None


def _run_greedy(
    plan: ConstraintPlan,
    settings: SelectOptions,
    region: CandidateRegion,
    k_min: int,
    k_max: int,
    extend: Callable[[CandidateRegion], CandidateRegion] | None = None,
) -> GreedyOutcome:
    """The greedy over ``region``; raises when the whole pool cannot meet the constraints."""
    state = ConstraintState(plan, region.pool_index, k_max)
    outcome = greedy(
        region,
        state,
        k_max,
        method=settings.method,
        k_min=k_min,
        mmr_lambda=settings.mmr_lambda,
        extend=extend,
    )
    if bool(outcome.infeasible.any()):
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

    A batch runs together on regions of the initial size, then its problems whose
    certificate failed together on larger ones (:func:`_batched_rounds`); a single problem
    runs alone, its region growing fourfold in place. ``k_min``, ``k_max`` count the pinned
    candidates, which head every region."""
    regions = _ranked_pool(scorer, plan, settings)
    feasible = plan.feasible_count
    pinned = plan.pinned_count
    if settings.method == "mmr":
        size = settings.fetch_k or max(20, 4 * (k_max - pinned))
    else:
        size = settings.initial_region or max(256, 64 * (k_max - pinned))
    size = min(size + pinned, feasible)
    solved: dict[int, _Solved] = {}
    pending = list(range(scorer.batch))
    if scorer.batch > 1:
        pending, size = _batched_rounds(regions, plan, settings, size, k_min, k_max, solved)
    if (
        pending == [0]
        and settings.method == "mmd"
        and plan.static_only
        and plan.pinned is None
        and scorer.pool.device.type == "cpu"
    ):
        answer = exact_single(regions, plan, size, k_min, k_max)
        solved[0] = _Solved.of(answer.outcome, 0, answer.searched)
        _settle([solved[0]], plan, settings, k_max)
        pending = []
    for row in pending:
        rows = slice(row, row + 1)

        def extend(region: CandidateRegion, rows: slice = rows) -> CandidateRegion:
            larger = min(region.size * 4, feasible)
            return regions.build(rows, larger, keep=region.pool_index)

        outcome = _run_greedy(plan, settings, regions.build(rows, size), k_min, k_max, extend)
        solved[row] = _Solved.of(outcome, 0)
        _settle([solved[row]], plan, settings, k_max)
    return [solved[row] for row in range(scorer.batch)]


def _ranked_pool(
    scorer: AffinityScorer, plan: ConstraintPlan, settings: SelectOptions
) -> TopRegions:
    """Scan the pool once: the inner products ``(B, m, n)`` with every target point, the
    output estimate, and the ranking the regions are cut from."""
    inner = scorer.inner_with_pool()  # (B, m, n)
    scorer.estimate_outputs(inner, None)
    if settings.method == "random":
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
        scorer.estimate_outputs(inner, index)
        affinity, similarity = scorer.affinity(inner, index)
        scorer.scan_finished = time.perf_counter()
        # The index answers approximately: no certificate, the region counts as complete.
        excluded = torch.full((batch,), -math.inf, device=pool.device)
        region = scorer.region(index, affinity, similarity, excluded, gathered)
        state = ConstraintState(plan, region.pool_index, k_max)
        outcome = greedy(
            region,
            state,
            k_max,
            method=settings.method,
            k_min=k_min,
            mmr_lambda=settings.mmr_lambda,
        )
        if not bool(outcome.infeasible.any()):
            answers = [_Solved.of(outcome, row) for row in range(batch)]
            _settle(answers, plan, settings, k_max)
            return answers
        if size >= pool.size:
            raise InfeasibleConstraintError(
                state.describe_binding(),
                f"no subset of {k_min} candidates satisfies the constraints",
            )
        size *= 4


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
        refined = _refined(region, plan, positions, k)
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
    constant = scorer.constant(row)
    pinned = plan.pinned_count
    positions, objective = solved.positions, solved.objective
    length = int((positions >= 0).sum())
    pool_index = solved.pool_index
    bounds_by_k: dict[int, float] | None = None
    k = length
    if settings.k_range is not None:
        bounds_by_k = {}
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
    if settings.method == "mmd" and settings.refine and not solved.refined:
        chosen = _refined(solved.single(), plan, chosen, k)
    candidates.append(chosen[0].tolist())
    if settings.num_subsets > 1 and settings.method == "mmd":
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
    for subset in candidates:
        positions = torch.tensor(subset, device=pool_index.device)
        indices = pool_index[positions].tolist()
        affinity_of.update(zip(indices, solved.affinity[positions].tolist(), strict=True))
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
    if settings.method == "mmd":
        primary = ranked[0]
    ranked = [primary] + [subset for subset in ranked if subset is not primary]
    ranked = ranked[: settings.num_subsets]
    prompt_order = sorted(primary.indices, key=lambda index: affinity_of[index])
    pins = [] if plan.pinned is None else plan.pinned.tolist()
    chosen_mmd2 = primary.mmd2
    if pins:
        chosen_mmd2 = max(scorer.evaluate(row, primary.indices), 0.0)
    baselines = (
        report.baselines(
            scorer, plan, settings.seed, row, solved.pool_index, solved.affinity, k - pinned
        )
        if settings.compare_baselines
        else {}
    )
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
    region: CandidateRegion, plan: ConstraintPlan, chosen: torch.Tensor, k: int
) -> torch.Tensor:
    """Swap-refine ``chosen: (B, k)`` region positions under the constraints.

    Swaps draw on the chosen and the ``SWAP_CANDIDATES`` most affine candidates of the
    region: refinement is a heuristic that never makes a subset worse, and a swap with a
    far-down candidate rarely pays for scanning a large region again and again. Only allowed
    candidates count among the most affine (a verification set of the whole pool holds the
    ones a static mask forbids)."""
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
    columns = region.columns_of(chosen)
    state.choose_all(chosen, columns[1])
    before = subset_objective(region, chosen)
    after_positions = swap_refine(region, state, chosen, columns=columns)
    after = subset_objective(region, after_positions)
    return torch.where((after <= before).unsqueeze(1), after_positions, chosen)
