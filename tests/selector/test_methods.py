"""The methods are objects the loops ask (selector/methods.py), not names they compare: a new
method is a subclass, and the batched greedy follows its step values and certificate."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from selector.constraints import ConstraintState, compile_constraints
from selector.errors import InvalidInputError
from selector.kernels import Kernel
from selector.methods import METHODS, Knn, Method, Mmr, RunState, resolve_method
from selector.search import CandidateRegion, greedy
from tests.selector.reference import unit_rows


@dataclass(frozen=True)
class LeastAffine(Knn):
    """A method no caller knows by name: the least target-affine candidates first."""

    name: str = "least"

    def step_values(self, run: RunState, step: int) -> torch.Tensor:
        return run.affinity.clone()


def region_of(seed: int, n: int) -> CandidateRegion:
    rng = np.random.default_rng(seed)
    vectors = torch.from_numpy(unit_rows(rng.standard_normal((n, 5)))).float()
    query = torch.from_numpy(unit_rows(rng.standard_normal((1, 5)))[0]).float()
    affinity = Kernel("softmax", 0.5).from_inner(vectors @ query)
    return CandidateRegion(
        pool_index=torch.arange(n).unsqueeze(0).repeat(2, 1),
        vectors=vectors.unsqueeze(0).repeat(2, 1, 1),
        affinity=affinity.unsqueeze(0).repeat(2, 1),
        similarity=(vectors @ query).unsqueeze(0).repeat(2, 1),
        excluded_affinity=torch.full((2,), -float("inf")),
        kernel=Kernel("softmax", 0.5),
    )


def test_the_greedy_follows_a_method_object() -> None:
    region = region_of(1, 50)
    plan = compile_constraints(None, 50, 4, None, None, torch.device("cpu"))
    outcome = greedy(region, ConstraintState(plan, region.pool_index, 4), 4, method=LeastAffine())
    expected = torch.argsort(region.affinity[0])[:4]
    assert outcome.positions[0].tolist() == expected.tolist()
    knn = greedy(region, ConstraintState(plan, region.pool_index, 4), 4, method="knn")
    assert knn.positions[0].tolist() == torch.argsort(-region.affinity[0])[:4].tolist()


def test_methods_resolve_by_name_and_say_what_applies() -> None:
    assert METHODS == ("mmd", "knn", "mmr", "random")
    mmd, knn, mmr, random = (resolve_method(name, 0.3) for name in METHODS)
    assert isinstance(mmr, Mmr)
    assert mmd.minimises_mmd and mmd.speculates and mmd.prefilters
    assert not knn.minimises_mmd and knn.prefilters
    assert mmr.mmr_lambda == 0.3 and mmr.uses_similarity
    assert random.draws_at_random and not random.prefilters
    assert mmr.initial_region(8, None, None) == 32 and mmd.initial_region(8, None, None) == 512
    assert isinstance(resolve_method(mmd), Method)
    with pytest.raises(InvalidInputError):
        resolve_method("nearest")
