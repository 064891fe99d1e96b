"""Constraints hold inside the greedy (hypothesis), and infeasible ones say which failed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selector import Constraints, select, select_batch
from selector.errors import InfeasibleConstraintError, InvalidInputError
from tests.selector.reference import unit_rows


@st.composite
def constrained_problems(draw: st.DrawFn) -> dict:
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(12, 80))
    k = draw(st.integers(1, 6))
    pool = unit_rows(rng.standard_normal((n, 6)))
    labels = rng.integers(0, 3, n).tolist()
    tokens = rng.integers(1, 30, n).tolist()
    colours = rng.choice(["red", "blue"], n).tolist()
    fields: dict = {}
    if draw(st.booleans()):
        fields["token_budget"] = int(np.sort(tokens)[:k].sum()) + draw(st.integers(0, 60))
        fields["token_counts"] = tokens
    if draw(st.booleans()):
        fields["exclude"] = sorted(set(rng.integers(0, n, draw(st.integers(0, 5))).tolist()))
    if draw(st.booleans()):
        fields["metadata"] = [{"colour": c} for c in colours]
        fields["metadata_filter"] = {"colour": "red"}
    if draw(st.booleans()):
        fields["dedup_threshold"] = draw(st.floats(0.3, 0.99))
    quota = draw(st.sampled_from(["none", "balanced", "quotas"]))
    if quota == "balanced":
        fields["balance_labels"] = True
    elif quota == "quotas":
        fields["label_quotas"] = {
            0: (draw(st.integers(0, 1)), None),
            1: (None, draw(st.integers(1, 3))),
        }
    return {
        "pool": pool,
        "labels": labels,
        "k": k,
        "constraints": Constraints(**fields),
        "query": unit_rows(rng.standard_normal((1, 6)))[0],
        "method": draw(st.sampled_from(["mmd", "knn", "mmr", "random"])),
        "seed": seed,
    }


def check_subset(case: dict, indices: list[int]) -> None:
    constraints: Constraints = case["constraints"]
    pool, labels, k = case["pool"], case["labels"], case["k"]
    assert len(indices) == k and len(set(indices)) == k
    if constraints.token_budget is not None:
        assert sum(constraints.token_counts[i] for i in indices) <= constraints.token_budget
    assert not set(indices) & set(constraints.exclude)
    if constraints.metadata_filter:
        assert all(constraints.metadata[i]["colour"] == "red" for i in indices)
    if constraints.dedup_threshold is not None:
        chosen = pool[indices]
        similarity = chosen @ chosen.T - 3 * np.eye(k)
        assert similarity.max() <= constraints.dedup_threshold + 1e-6
    counts = np.bincount([labels[i] for i in indices], minlength=3)
    if constraints.balance_labels:
        allowed = {
            i
            for i in range(len(pool))
            if i not in set(constraints.exclude)
            and (not constraints.metadata_filter or constraints.metadata[i]["colour"] == "red")
        }
        present = sorted({labels[i] for i in allowed})
        low, high = k // len(present), -(-k // len(present))
        assert all(low <= counts[label] <= high for label in present)
    if constraints.label_quotas:
        for label, (low, high) in constraints.label_quotas.items():
            assert counts[label] >= (low or 0)
            assert counts[label] <= (k if high is None else high)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(constrained_problems())
def test_every_returned_subset_satisfies_every_constraint(case: dict) -> None:
    arguments = {
        "labels": case["labels"],
        "constraints": case["constraints"],
        "method": case["method"],
        "seed": case["seed"],
        "joint": False,
    }
    try:
        result = select(case["pool"], case["query"], case["k"], **arguments)
    except InfeasibleConstraintError as error:
        # Allowed only when no subset exists at all; the error names a real constraint.
        assert error.constraint in {
            "token_budget",
            "label_quotas",
            "metadata_filter",
            "exclude",
            "dedup_threshold",
            "pool_size",
        }
        return
    check_subset(case, result.indices)
    assert result.indices == select(case["pool"], case["query"], case["k"], **arguments).indices
    batch = select_batch(case["pool"], case["query"][None, :], case["k"], **arguments)
    check_subset(case, batch[0].indices)


def test_constraints_act_inside_the_greedy_not_after_it() -> None:
    rng = np.random.default_rng(0)
    pool = unit_rows(rng.standard_normal((200, 8)))
    query = pool[0]
    budget_free = select(pool, query, 5)
    tokens = np.full(200, 10)
    tokens[budget_free.indices] = 100  # the unconstrained choice is now too long
    result = select(pool, query, 5, constraints=Constraints(token_budget=60, token_counts=tokens))
    assert len(result.indices) == 5
    assert not set(result.indices) & set(budget_free.indices)


@pytest.mark.parametrize(
    ("constraints", "name"),
    [
        (Constraints(token_budget=5, token_counts=[10] * 30), "token_budget"),
        (Constraints(exclude=list(range(28))), "exclude"),
        (
            Constraints(metadata=[{"a": 1}] * 2 + [{"a": 2}] * 28, metadata_filter={"a": 1}),
            "metadata_filter",
        ),
        (Constraints(label_quotas={"x": (4, None)}), "label_quotas"),
        (Constraints(label_quotas={"x": (2, None), "y": (2, None)}), "label_quotas"),
        (Constraints(dedup_threshold=-0.99), "dedup_threshold"),
    ],
)
def test_infeasible_constraints_name_themselves(constraints: Constraints, name: str) -> None:
    rng = np.random.default_rng(1)
    pool = unit_rows(rng.standard_normal((30, 4)))
    labels = ["x"] * 3 + ["y"] * 27
    with pytest.raises(InfeasibleConstraintError) as caught:
        select(pool, pool[0], 3, labels=labels, constraints=constraints)
    assert caught.value.constraint == name


def test_malformed_constraints_are_invalid_input() -> None:
    pool = unit_rows(np.random.default_rng(2).standard_normal((10, 4)))
    with pytest.raises(InvalidInputError):
        select(pool, pool[0], 2, constraints=Constraints(token_budget=10))
    with pytest.raises(InvalidInputError):
        select(pool, pool[0], 2, constraints=Constraints(exclude=[99]))
    with pytest.raises(InvalidInputError):
        select(pool, pool[0], 2, constraints=Constraints(label_quotas={"a": (0, 1)}))
    with pytest.raises(InvalidInputError):
        select(
            pool, pool[0], 2, labels=["a"] * 10, constraints=Constraints(label_quotas={"a": (2, 1)})
        )
    with pytest.raises(InfeasibleConstraintError):
        select(
            pool,
            pool[0],
            2,
            labels=["a"] * 10,
            constraints=Constraints(label_quotas={"b": (1, None)}),
        )
    absent = select(
        pool, pool[0], 2, labels=["a"] * 10, constraints=Constraints(label_quotas={"b": (0, 1)})
    )
    assert len(absent.indices) == 2
    with pytest.raises(InvalidInputError):
        select(pool, pool[0], 2, constraints=Constraints(dedup_threshold=2.0))


def test_auto_k_respects_the_token_budget() -> None:
    rng = np.random.default_rng(3)
    pool = unit_rows(rng.standard_normal((100, 8)))
    tokens = rng.integers(5, 40, 100)
    constraints = Constraints(token_budget=90, token_counts=tokens)
    result = select(pool, pool[0], k_range=(2, 10), constraints=constraints)
    assert 2 <= result.k <= 10
    assert tokens[result.indices].sum() <= 90
    assert torch.tensor(result.indices).unique().numel() == result.k
