"""Selection around pinned candidates (a shared prompt prefix): the greedy starts from them,
never chooses them again, reports the MMD of the whole prompt and of the chosen slice, and is
the naive greedy conditioned on the pins (tests/selector/reference.py), with every kernel,
the joint kernel, a region that must grow, constraints, beam search, auto-k, the batch path
and the prefilter path."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selector import Constraints, InfeasibleConstraintError, InvalidInputError, select, select_batch
from selector.mmd import generalization_bound
from selector.pool import Pool
from selector.prefilter import PoolIndex
from tests.selector.paths import SEARCH_PATHS, search_path
from tests.selector.reference import (
    NaiveProblem,
    estimated_outputs,
    naive_mmd2,
    naive_problem,
    one_hot,
    unit_rows,
)
from tests.selector.test_exactness import KERNELS, TAU, TIE_FREE, Data


def naive_conditioned_greedy(
    problem: NaiveProblem, pinned: list[int], k: int
) -> tuple[list[int], float]:
    """The naive greedy started from ``pinned``: at each step the candidate whose addition to
    pinned + chosen gives the smallest ``MMD^2`` of the whole prompt. Returns the chosen slice
    and the smallest gap between the best and the second best candidate over the steps."""
    prompt = list(pinned)
    gap = math.inf
    for _ in range(k):
        values = np.array(
            [
                math.inf if index in prompt else problem.mmd2([*prompt, index])
                for index in range(len(problem.affinity))
            ]
        )
        order = np.argsort(values, kind="stable")
        if np.isfinite(values[order[1]]):
            gap = min(gap, float(values[order[1]] - values[order[0]]))
        prompt.append(int(order[0]))
    return prompt[len(pinned) :], gap


cases = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 10_000),
        "n": st.integers(20, 80),
        "pins": st.integers(1, 5),
        "k": st.integers(1, 5),
        "kernel": st.sampled_from(KERNELS),
        "region": st.sampled_from([None, 8]),
    }
)


@settings(max_examples=40, deadline=None)
@given(case=cases)
def test_pinned_greedy_is_the_naive_conditioned_greedy(case: dict) -> None:
    rng = np.random.default_rng(case["seed"])
    pool = unit_rows(rng.standard_normal((case["n"], 5)))
    query = unit_rows(rng.standard_normal((1, 5)))
    pinned = rng.choice(case["n"], case["pins"], replace=False).tolist()
    name, k = case["kernel"], case["k"]
    result = select(
        pool,
        query[0],
        k,
        kernel=name,
        tau=TAU[name],
        refine=False,
        initial_region=case["region"],
        pinned=pinned,
    )
    assert result.pinned == tuple(pinned)
    assert len(result.indices) == result.k == k
    assert not set(result.indices) & set(pinned)  # never re-chosen
    assert sorted(result.prompt_order) == sorted(result.indices)
    whole = naive_mmd2(name, TAU[name], pool[pinned + result.indices], query)
    slice_only = naive_mmd2(name, TAU[name], pool[result.indices], query)
    assert result.mmd2 == pytest.approx(max(whole, 0.0), abs=1e-5)
    assert result.chosen_mmd2 == pytest.approx(max(slice_only, 0.0), abs=1e-5)
    assert result.chosen_mmd == pytest.approx(math.sqrt(result.chosen_mmd2))
    expected, gap = naive_conditioned_greedy(naive_problem(name, TAU[name], pool, query), pinned, k)
    if gap > TIE_FREE:
        assert result.indices == expected


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), kernel=st.sampled_from(KERNELS), k=st.integers(1, 6))
def test_no_pins_is_the_unpinned_selection(seed: int, kernel: str, k: int) -> None:
    rng = np.random.default_rng(seed)
    pool = unit_rows(rng.standard_normal((60, 5)))
    query = unit_rows(rng.standard_normal((1, 5)))[0]
    plain = select(pool, query, k, kernel=kernel, tau=TAU[kernel])
    for pinned in (None, []):
        result = select(pool, query, k, kernel=kernel, tau=TAU[kernel], pinned=pinned)
        assert result.indices == plain.indices
        assert result.mmd2 == plain.mmd2 == result.chosen_mmd2
        assert result.pinned == ()


@pytest.mark.parametrize("side", ["labels", "free_text"])
def test_joint_kernel_counts_the_pins(side: str) -> None:
    data = Data(7, side, n=200)
    query = unit_rows(data.rng.standard_normal((1, 6)))
    pinned = [5, 17, 40]
    result = select(
        data.pool, query[0], 4, refine=False, initial_region=8, pinned=pinned, **data.arguments()
    )
    assert result.joint
    if side == "labels":
        outputs = estimated_outputs(data.pool, query, one_hot(data.labels, 3), "cosine")
    else:
        outputs = estimated_outputs(data.pool, query, data.outputs, "softmax", 0.2)
    problem = naive_problem("softmax", 0.2, data.pool, query, outputs=outputs)
    expected, gap = naive_conditioned_greedy(problem, pinned, 4)
    assert gap > TIE_FREE
    assert result.indices == expected
    assert result.mmd2 == pytest.approx(max(problem.mmd2(pinned + expected), 0.0), abs=1e-5)
    assert result.chosen_mmd2 == pytest.approx(max(problem.mmd2(expected), 0.0), abs=1e-5)


def test_conditioned_greedy_is_near_the_best_slice_given_the_pins() -> None:
    """Exhaustive search of the best slice of 3 given 2 pins, on 30 problems of 16
    candidates: the (swap-refined) conditioned greedy's whole-prompt MMD^2 is within 1 % of
    the optimum on average."""
    gaps = []
    for seed in range(30):
        rng = np.random.default_rng(seed)
        pool = unit_rows(rng.standard_normal((16, 4)))
        query = unit_rows(rng.standard_normal((1, 4)))
        pinned = rng.choice(16, 2, replace=False).tolist()
        problem = naive_problem("softmax", 0.2, pool, query)
        others = [index for index in range(16) if index not in pinned]
        best = min(
            problem.mmd2(pinned + list(chosen)) for chosen in itertools.combinations(others, 3)
        )
        result = select(pool, query[0], 3, pinned=pinned)
        assert result.mmd2 >= best - 1e-6
        gaps.append((result.mmd2 - best) / best)
    assert float(np.mean(gaps)) < 0.01


def test_batch_rows_equal_single_calls_with_the_same_pins() -> None:
    data = Data(11, "labels", n=400, d=12)
    queries = unit_rows(data.rng.standard_normal((12, 12)))
    pinned = [3, 99, 250]
    batch = select_batch(data.pool, queries, 5, pinned=pinned, initial_region=8, labels=data.labels)
    for query, row in zip(queries, batch, strict=True):
        alone = select(data.pool, query, 5, pinned=pinned, initial_region=8, labels=data.labels)
        assert row.indices == alone.indices
        assert row.pinned == tuple(pinned)
        assert row.mmd2 == pytest.approx(alone.mmd2, abs=1e-6)
        assert row.chosen_mmd2 == pytest.approx(alone.chosen_mmd2, abs=1e-6)


def test_swap_refinement_and_beam_keep_the_pins() -> None:
    rng = np.random.default_rng(3)
    pool = unit_rows(rng.standard_normal((300, 8)))
    query = unit_rows(rng.standard_normal((1, 8)))[0]
    pinned = [0, 1, 2, 3]
    greedy_only = select(pool, query, 6, pinned=pinned, refine=False)
    refined = select(pool, query, 6, pinned=pinned)
    assert refined.mmd2 <= greedy_only.mmd2 + 1e-9
    assert not set(refined.indices) & set(pinned)
    beams = select(pool, query, 6, pinned=pinned, num_subsets=4)
    assert len(beams.subsets) > 1
    values = [subset.mmd2 for subset in beams.subsets]
    assert values == sorted(values)
    for subset in beams.subsets:
        assert len(subset.indices) == 6 and not set(subset.indices) & set(pinned)
        whole = naive_mmd2("softmax", 0.2, pool[pinned + subset.indices], query[None])
        assert subset.mmd2 == pytest.approx(max(whole, 0.0), abs=1e-5)
        assert subset.bound == pytest.approx(generalization_bound(subset.mmd, 10, 1.0, 1.0))


def test_auto_k_reads_the_bound_of_the_whole_prompt() -> None:
    rng = np.random.default_rng(4)
    pool = unit_rows(rng.standard_normal((200, 6)))
    query = unit_rows(rng.standard_normal((1, 6)))
    pinned = [10, 20]
    result = select(pool, query[0], k_range=(1, 6), pinned=pinned, refine=False)
    assert result.bounds_by_k is not None and set(result.bounds_by_k) == set(range(1, 7))
    problem = naive_problem("softmax", 0.2, pool, query)
    prefix, _ = naive_conditioned_greedy(problem, pinned, 6)
    for size, bound in result.bounds_by_k.items():
        mmd = math.sqrt(max(problem.mmd2(pinned + prefix[:size]), 0.0))
        assert bound == pytest.approx(generalization_bound(mmd, 2 + size, 1.0, 1.0), abs=1e-5)
    best = min(result.bounds_by_k, key=lambda size: (result.bounds_by_k[size], size))
    assert result.k == best and result.indices == prefix[:best]


def test_constraints_hold_for_the_whole_prompt() -> None:
    rng = np.random.default_rng(5)
    pool = unit_rows(rng.standard_normal((300, 6)))
    query = unit_rows(rng.standard_normal((1, 6)))[0]
    tokens = rng.integers(10, 40, 300)
    pinned = [int(i) for i in np.argsort(-tokens)[:3]]  # the longest examples
    budget = int(tokens[pinned].sum()) + 100
    result = select(
        pool,
        query,
        4,
        pinned=pinned,
        constraints=Constraints(token_budget=budget, token_counts=tokens, dedup_threshold=0.6),
    )
    assert tokens[pinned + result.indices].sum() <= budget
    similarity = pool[result.indices] @ pool[pinned].T
    assert similarity.max() <= 0.6 + 1e-6  # no chosen near-duplicate of a pin
    # The shortest 4 alone fit the budget, but not next to the pinned examples.
    tight = int(tokens[pinned].sum()) + int(np.sort(tokens)[:4].sum()) - 1
    with pytest.raises(InfeasibleConstraintError) as raised:
        select(
            pool,
            query,
            4,
            pinned=pinned,
            constraints=Constraints(token_budget=tight, token_counts=tokens),
        )
    assert raised.value.constraint == "token_budget"
    labels = np.array([0] * 150 + [1] * 150)
    quota = select(
        pool,
        query,
        4,
        pinned=[0, 1],  # two of label 0
        labels=labels,
        constraints=Constraints(label_quotas={0: (None, 3)}),
    )
    assert (labels[quota.indices] == 0).sum() <= 1
    # An excluded candidate may still be pinned: it is in the prompt already.
    excluded = select(pool, query, 4, pinned=[7], constraints=Constraints(exclude=[7, 8]))
    assert 7 not in excluded.indices and 8 not in excluded.indices


def test_other_methods_start_from_the_pins() -> None:
    rng = np.random.default_rng(6)
    pool = unit_rows(rng.standard_normal((100, 6)))
    query = unit_rows(rng.standard_normal((1, 6)))[0]
    order = np.argsort(-(pool @ query), kind="stable")
    pinned = order[:2].tolist()
    knn = select(pool, query, 3, method="knn", pinned=pinned)
    assert knn.indices == order[2:5].tolist()
    for method in ("mmr", "random"):
        result = select(pool, query, 3, method=method, pinned=pinned)
        assert len(result.indices) == 3 and not set(result.indices) & set(pinned)


def test_prefilter_path_holds_the_pins() -> None:
    rng = np.random.default_rng(8)
    vectors = unit_rows(rng.standard_normal((2000, 16)))
    pool = Pool.from_arrays(vectors, index=PoolIndex.build(vectors))
    query = unit_rows(rng.standard_normal((1, 16)))
    far = int(np.argmin(vectors @ query[0]))  # no index search would find it
    result = select(pool, query[0], 4, pinned=[far], prefilter_size=64)
    assert result.prefiltered and far not in result.indices
    whole = naive_mmd2("softmax", 0.2, vectors[[far, *result.indices]], query)
    assert result.mmd2 == pytest.approx(max(whole, 0.0), abs=1e-5)


@pytest.mark.parametrize(
    "pinned",
    [[-1], [50], [3, 3], [1.5], [[1, 2]], "ab", list(range(48))],
    ids=["negative", "outside", "twice", "float", "nested", "text", "too_many"],
)
def test_bad_pins_are_input_errors(pinned: object) -> None:
    rng = np.random.default_rng(9)
    pool = unit_rows(rng.standard_normal((50, 4)))
    with pytest.raises(InvalidInputError):
        select(pool, pool[0], 3, pinned=pinned)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        select_batch(pool, pool[:2], 3, pinned=pinned)  # type: ignore[arg-type]


def column_greedy(pool: np.ndarray, query: np.ndarray, pinned: list[int], k: int) -> list[int]:
    """The softmax (tau 0.2) greedy in float64 over the whole pool, started from ``pinned``:
    each step's whole-prompt MMD^2 (minus the constant) from kernel columns."""
    x = pool.astype(np.float64)

    def column(y: np.ndarray) -> np.ndarray:
        return np.exp((x @ y - 1.0) / 0.2)

    affinity = column(query.astype(np.float64))
    redundancy = np.zeros(len(x))
    allowed = np.ones(len(x), dtype=bool)
    prompt: list[int] = []
    sum_chosen = sum_affinity = 0.0
    for step in range(1, len(pinned) + k + 1):
        if step <= len(pinned):
            best = pinned[step - 1]
        else:
            values = (sum_chosen + 2.0 * redundancy + 1.0) / step**2 - 2.0 * (
                sum_affinity + affinity
            ) / step
            best = int(np.argmin(np.where(allowed, values, np.inf)))
        prompt.append(best)
        allowed[best] = False
        sum_chosen += 2.0 * redundancy[best] + 1.0
        sum_affinity += affinity[best]
        redundancy += column(x[best])
    return prompt[len(pinned) :]


@pytest.mark.parametrize("path", SEARCH_PATHS)
@pytest.mark.parametrize("kind", ["isotropic", "clustered", "duplicates"])
def test_speculation_and_verification_start_from_the_pins(path: str, kind: str) -> None:
    """One problem's exact path (regions.exact_single) with pins, on every kind of data, both
    kinds of verification set and the direct greedy: the conditioned greedy; refined, a batch
    row equals it."""
    with search_path(path):
        _start_from_the_pins(kind)


def _start_from_the_pins(kind: str) -> None:
    from tests.selector.test_verification import pool_of

    pool = pool_of(kind, 3000, 16, seed=21)
    queries = pool_of(kind, 4, 16, seed=22)
    pinned = [int(index) for index in np.random.default_rng(23).choice(3000, 3, replace=False)]
    for query in queries:
        result = select(pool, query, 6, refine=False, initial_region=8, pinned=pinned)
        assert result.indices == column_greedy(pool, query, pinned, 6)
    batch = select_batch(pool, queries, 6, initial_region=8, pinned=pinned)
    for query, row in zip(queries, batch, strict=True):
        single = select(pool, query, 6, initial_region=8, pinned=pinned)
        assert single.indices == row.indices
        assert single.mmd2 == pytest.approx(row.mmd2, abs=1e-9)
