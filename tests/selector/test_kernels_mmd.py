"""Kernels and MMD^2 against the naive double-loop reference, and their properties."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from selector import Kernel, Pool, mmd2, resolve_kernel, select
from selector.errors import InvalidInputError, UnknownKernelError
from selector.joint import AffinityScorer, Targets
from selector.mmd import mmd2_from_gram
from tests.selector.reference import (
    estimated_outputs,
    kernel_matrix,
    kernel_value,
    naive_greedy,
    naive_mmd2,
    naive_problem,
    unit_rows,
)

KERNELS = ["softmax", "rbf", "laplace", "cosine"]


def random_unit(rows: int, dimension: int, seed: int) -> np.ndarray:
    return unit_rows(np.random.default_rng(seed).standard_normal((rows, dimension)))


@pytest.mark.parametrize("name", KERNELS)
def test_kernel_matches_formula(name: str) -> None:
    x, y = random_unit(7, 5, 0), random_unit(4, 5, 1)
    kernel = Kernel(name, 0.3)
    values = kernel(torch.from_numpy(x), torch.from_numpy(y)).numpy()
    expected = np.array([[kernel_value(name, 0.3, a, b) for b in y] for a in x])
    np.testing.assert_allclose(values, expected, rtol=1e-10, atol=1e-12)


unit_points = arrays(
    np.float64, st.tuples(st.integers(2, 16), st.integers(2, 6)), elements=st.floats(-1, 1)
).filter(lambda a: (np.linalg.norm(a, axis=1) > 0.1).all())


@settings(max_examples=80, deadline=None)
@given(unit_points, st.sampled_from(KERNELS), st.floats(0.05, 2.0))
def test_gram_is_symmetric_psd_with_unit_diagonal(
    points: np.ndarray, name: str, tau: float
) -> None:
    x = unit_rows(points)
    gram = Kernel(name, tau)(torch.from_numpy(x), torch.from_numpy(x))
    assert torch.allclose(gram, gram.T)
    assert torch.allclose(torch.diagonal(gram), torch.ones(len(x), dtype=gram.dtype), atol=1e-6)
    assert float(torch.linalg.eigvalsh(gram).min()) >= -1e-6
    np.testing.assert_allclose(gram.numpy(), kernel_matrix(name, tau, x, x), atol=1e-6)


def test_median_heuristic_and_errors() -> None:
    x = torch.from_numpy(random_unit(50, 4, 3)).float()
    rbf = resolve_kernel("rbf", None, x)
    distances = torch.cdist(x, x) ** 2
    upper = distances[torch.triu_indices(50, 50, 1).unbind()]
    assert rbf.tau == pytest.approx(float(upper.median()) / 2, rel=1e-5)
    assert resolve_kernel("softmax", None, x).tau == 0.2
    with pytest.raises(UnknownKernelError):
        resolve_kernel("gaussian", None, x)
    with pytest.raises(InvalidInputError):
        Kernel("softmax", -1.0)
    with pytest.raises(InvalidInputError):
        resolve_kernel("softmax", "mean", x)


@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize("weighted", [False, True])
def test_selection_mmd2_matches_naive_reference(name: str, weighted: bool) -> None:
    pool = random_unit(60, 8, 4)
    target = random_unit(5, 8, 5)
    weights = np.array([0.1, 0.4, 0.2, 0.2, 0.1]) if weighted else None
    result = select(
        pool, target, 6, kernel=name, tau=0.25 if name != "cosine" else None, target_weights=weights
    )
    expected = naive_mmd2(name, result.tau, pool[result.indices], target, weights)
    assert result.mmd2 == pytest.approx(max(expected, 0.0), abs=1e-5)
    assert result.mmd == pytest.approx(np.sqrt(max(expected, 0.0)), abs=1e-4)


def test_joint_kernel_mmd2_with_given_label_distribution() -> None:
    pool = random_unit(40, 6, 6)
    labels = np.random.default_rng(7).integers(0, 3, 40)
    target = random_unit(3, 6, 8)
    distribution = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]])
    # Labels are numbered by first appearance in the pool.
    order = list(dict.fromkeys(labels.tolist()))
    given_in_order = distribution[:, order]
    result = select(pool, target, 5, labels=labels, target_label_distribution=given_in_order)
    assert result.joint
    relabel = {label: position for position, label in enumerate(order)}
    chosen_labels = [relabel[int(labels[i])] for i in result.indices]
    expected = naive_mmd2(
        "softmax", 0.2, pool[result.indices], target, None, chosen_labels, given_in_order
    )
    assert result.mmd2 == pytest.approx(expected, abs=1e-5)


def test_joint_kernel_estimates_the_target_label_from_neighbours() -> None:
    rng = np.random.default_rng(9)
    centers = unit_rows(rng.standard_normal((2, 16)))
    pool = unit_rows(np.repeat(centers, 30, axis=0) + 0.05 * rng.standard_normal((60, 16)))
    labels = ["pos"] * 30 + ["neg"] * 30
    result = select(pool, centers[1], 4, labels=labels)
    assert result.target_label_distribution is not None
    assert result.target_label_distribution["neg"] > 0.99
    assert all(labels[i] == "neg" for i in result.indices)


def test_free_text_output_kernel() -> None:
    """Output embeddings make the joint kernel ``k_x * k_y``, ``k_y`` the softmax kernel of
    bandwidth ``output_tau`` on the outputs, the target's output the mixture of its
    ``label_neighbors`` nearest candidates' outputs weighted by ``softmax((<x, q> - 1) /
    label_tau)``: the greedy is the naive greedy on that MMD^2, the reported MMD^2 the double
    loop's, for one query and a weighted target set."""
    pool = random_unit(30, 6, 10)
    outputs = random_unit(30, 4, 11)
    cases = [  # target, its weights, output_tau, label_neighbors, label_tau
        (pool[:1], None, 0.2, 16, 0.05),  # the defaults
        (random_unit(3, 6, 12), np.array([0.5, 0.3, 0.2]), 0.5, 5, 0.1),
    ]
    for target, weights, output_tau, neighbours, label_tau in cases:
        estimate = estimated_outputs(
            pool, target, outputs, "softmax", output_tau, neighbours, label_tau
        )
        problem = naive_problem("softmax", 0.2, pool, target, weights, estimate)
        expected, gap = naive_greedy(problem, 4)
        assert gap > 1e-6  # no near tie for float32 to break
        arguments = {
            "target_weights": weights,
            "output_embeddings": outputs,
            "output_tau": output_tau,
            "label_neighbors": neighbours,
            "label_tau": label_tau,
        }
        greedy_only = select(pool, target, 4, refine=False, **arguments)
        refined = select(pool, target, 4, **arguments)
        assert greedy_only.joint and refined.joint
        assert greedy_only.indices == expected
        assert refined.mmd2 <= greedy_only.mmd2 + 1e-12
        for result in (greedy_only, refined):
            chosen = replace(estimate, candidate=outputs[result.indices])
            chosen_points = pool[result.indices]
            naive = naive_mmd2("softmax", 0.2, chosen_points, target, weights, outputs=chosen)
            assert result.mmd2 == pytest.approx(max(naive, 0.0), abs=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float64, (12, 4), elements=st.floats(-1, 1)).filter(
        lambda a: (np.linalg.norm(a, axis=1) > 0.1).all()
    ),
    st.sampled_from(KERNELS),
    st.permutations(list(range(12))),
)
def test_mmd_properties(points: np.ndarray, name: str, permutation: list[int]) -> None:
    x = torch.from_numpy(unit_rows(points))
    kernel = Kernel(name, 0.3)
    assert abs(mmd2(x, x, kernel)) < 1e-9
    half_a, half_b = x[:6], x[6:]
    assert mmd2(half_a, half_b, kernel) == pytest.approx(mmd2(half_b, half_a, kernel), abs=1e-6)
    shuffled = x[torch.tensor(permutation)]
    assert mmd2(shuffled[:6], x, kernel) == pytest.approx(
        mmd2(shuffled[:6].flip(0), x, kernel), abs=1e-6
    )
    assert mmd2(half_a, shuffled, kernel) == pytest.approx(mmd2(half_a, x, kernel), abs=1e-6)
    assert mmd2(half_a, half_b, kernel) >= -1e-9
    # 1e-7: laplace takes ||x - y|| as sqrt(2 - 2 <x, y>), the reference from the differences;
    # near-equal rows put the square root's rounding (about 1e-8 per pair) into the sum.
    assert mmd2(half_a, half_b, kernel) == pytest.approx(
        naive_mmd2(name, 0.3, half_a.numpy(), half_b.numpy()), abs=1e-7
    )


@settings(max_examples=60, deadline=None)
@given(unit_points, st.sampled_from(KERNELS), st.floats(0.05, 2.0))
def test_numpy_and_torch_kernels_and_mmd_agree(points: np.ndarray, name: str, tau: float) -> None:
    """One formula for both array kinds: ``Kernel`` and ``mmd2_from_gram`` on numpy arrays
    give what they give on torch tensors (the host report and the batched one), and the host
    loops' float32 columns are ``from_inner`` on float32."""
    x = unit_rows(points)
    kernel = Kernel(name, tau)
    host, batched = kernel(x, x), kernel(torch.from_numpy(x), torch.from_numpy(x)).numpy()
    assert isinstance(host, np.ndarray)
    # 1e-6: laplace's sqrt(2 - 2 <x, y>) turns the two products' rounding near the diagonal
    # (about 1e-16) into about 1e-8 / tau; the other kernels agree to float64 rounding.
    np.testing.assert_allclose(host, batched, rtol=0, atol=1e-6 if name == "laplace" else 1e-12)
    inner = (x @ x.T).astype(np.float32)
    columns = kernel.host_from_inner(inner)
    assert columns.dtype == np.float64
    # numpy's and torch's float32 exp are different implementations, each off by a few
    # float32 ulps, and an ulp of the exponent y is a relative error of |y| ulps in exp(y):
    # 1.1e-6 apart was seen for laplace at tau 0.05 (2,000 x 200 values a kernel and tau).
    np.testing.assert_allclose(
        columns, kernel.from_inner(torch.from_numpy(inner)).numpy(), rtol=5e-6, atol=1e-9
    )
    size = max(1, len(x) // 2)
    weights = np.linspace(1.0, 2.0, len(x) - size)
    weights /= weights.sum()
    parts = (host[:size, :size], host[:size, size:], host[size:, size:], weights)
    value = mmd2_from_gram(*parts)
    assert not isinstance(value, torch.Tensor)  # computed in numpy
    expected = mmd2_from_gram(*(torch.from_numpy(np.ascontiguousarray(p)) for p in parts))
    assert float(value) == pytest.approx(float(expected), abs=1e-12)  # the same Gram
    # 1e-6: laplace's square root, as above, summed over the pairs.
    assert float(value) == pytest.approx(
        naive_mmd2(name, tau, x[:size], x[size:], weights), abs=1e-6
    )


@pytest.mark.parametrize("outputs", ["none", "labels", "free text"])
def test_report_evaluates_alike_on_host_and_batched(outputs: str) -> None:
    """A CPU pool's report evaluates subsets in numpy, a GPU pool's in torch: the same
    ``MMD^2`` for input-only, label and free-text joint kernels, against a weighted target."""
    vectors = random_unit(40, 6, 20)
    labels = [i % 3 for i in range(40)] if outputs == "labels" else None
    output_embeddings = random_unit(40, 4, 21) if outputs == "free text" else None
    pool = Pool.from_arrays(
        vectors, labels=labels, output_embeddings=output_embeddings, device="cpu"
    )
    points = torch.from_numpy(random_unit(3, 6, 22).astype(np.float32)).unsqueeze(0)
    weights = torch.tensor([[0.5, 0.3, 0.2]])
    scorer = AffinityScorer(
        pool,
        Targets(points, weights),
        Kernel("softmax", 0.2),
        Kernel("softmax", 0.3),
        outputs != "none",
        16,
        0.05,
    )
    scorer.estimate_outputs(scorer.inner_with_pool(), None)
    rows = torch.tensor([0, 0])
    index = torch.tensor([[0, 5, 9, 30], [1, 2, 3, 39]])
    host = scorer.evaluate_many(rows, index)
    together = torch.cat([pool.rows(index), points[rows]], dim=1).to(torch.float64)
    batched = scorer._mmd2_of(together, weights[rows], rows, index)
    assert isinstance(batched, torch.Tensor)
    np.testing.assert_allclose(host.numpy(), batched.numpy(), rtol=0, atol=1e-12)
    if outputs == "none":  # and both are the double loop's
        for subset, value in zip(index.tolist(), host.tolist(), strict=True):
            expected = naive_mmd2(
                "softmax",
                0.2,
                vectors[subset],
                points[0].numpy().astype(np.float64),
                [0.5, 0.3, 0.2],
            )
            assert value == pytest.approx(expected, abs=1e-6)
