"""Kernels and MMD^2 against the naive double-loop reference, and their properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from selector import Kernel, mmd2, resolve_kernel, select
from selector.errors import InvalidInputError, UnknownKernelError
from tests.selector.reference import kernel_value, naive_mmd2, unit_rows

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


@pytest.mark.parametrize("name", KERNELS)
def test_gram_is_symmetric_psd_with_unit_diagonal(name: str) -> None:
    x = torch.from_numpy(random_unit(30, 6, 2))
    gram = Kernel(name, 0.2)(x, x)
    assert torch.allclose(gram, gram.T)
    assert torch.allclose(torch.diagonal(gram), torch.ones(30, dtype=gram.dtype))
    assert float(torch.linalg.eigvalsh(gram).min()) > -1e-8


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
    pool = random_unit(30, 6, 10)
    outputs = random_unit(30, 4, 11)
    result = select(pool, pool[0], 4, output_embeddings=outputs)
    assert result.joint and len(set(result.indices)) == 4
    assert result.mmd2 >= 0.0


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
    assert mmd2(half_a, half_b, kernel) >= -1e-9
