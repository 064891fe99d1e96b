"""bench/coverage.py (Set-BSR) against naive references, and OpenICL's DPP on given vectors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import coverage
from bench.peers import PrecomputedDPPRetriever


def random_tokens(rng: np.random.Generator, texts: int, dim: int = 6) -> coverage.TokenSet:
    per_text = []
    for _ in range(texts):
        length = int(rng.integers(1, 5))
        per_text.append((rng.normal(size=(length, dim)), rng.integers(0, 12, size=length)))
    return coverage.token_set(per_text)


def naive_recall(
    query: np.ndarray, query_ids: np.ndarray, members: list[np.ndarray], idf: dict[int, float]
) -> float:
    """BERTScore recall of ``query`` by the union of ``members``' tokens, term by term."""
    count_default = max(idf.values(), default=0.0)
    weights = [idf.get(int(i), count_default) for i in query_ids]
    total = 0.0
    for token, weight in zip(query, weights, strict=True):
        best = max(float(token @ other) for member in members for other in member)
        total += weight * best
    return total / sum(weights)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000))
def test_partial_scores_sum_to_the_recall_of_each_text(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pool = random_tokens(rng, 7)
    queries = random_tokens(rng, 1)
    idf = coverage.idf_weights(pool)
    q, ids = queries.vectors[queries.rows(0)], queries.ids[queries.rows(0)]
    scores = coverage.partial_scores(q, ids, pool, idf)
    assert scores.shape == (7, len(ids))
    for i in range(7):
        # Unseen query tokens get the largest idf, log(N + 1): exactly what naive_recall uses
        # only when some pool token is unseen too, so compare with the same weights here.
        weights = np.array([idf.get(int(t), np.log(len(pool) + 1)) for t in ids])
        expected = (
            sum(
                w * max(float(token @ other) for other in pool.vectors[pool.rows(i)])
                for token, w in zip(q, weights, strict=True)
            )
            / weights.sum()
        )
        assert scores[i].sum() == pytest.approx(expected, abs=1e-5)


def test_idf_is_bertscores_over_the_pool() -> None:
    pool = coverage.token_set(
        [(np.eye(3)[:2], np.array([1, 2])), (np.eye(3)[1:], np.array([2, 3]))]
    )
    idf = coverage.idf_weights(pool)
    assert idf[2] == pytest.approx(np.log(3 / 3))  # in both texts: weight 0
    assert idf[1] == pytest.approx(np.log(3 / 2)) and idf[3] == pytest.approx(np.log(3 / 2))


def naive_greedy(scores: list[list[float]], k: int) -> list[int]:
    """The coverage greedy in plain Python: set score = sum over tokens of the best member."""
    chosen: list[int] = []
    covered: list[int] = []  # members since the last reset
    while len(chosen) < k:

        def value(members: list[int]) -> float:
            return sum(max(scores[m][t] for m in members) for t in range(len(scores[0])))

        current = value(covered) if covered else float("-inf")
        rest = [i for i in range(len(scores)) if i not in chosen]
        best = max(rest, key=lambda i: (value([*covered, i]), -i))
        if value([*covered, best]) > current:
            chosen.append(best)
            covered.append(best)
        else:
            covered = []
    return chosen


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 6))
def test_coverage_greedy_matches_the_plain_python_greedy(seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0, 1, size=(6, 3)).round(2)
    chosen = coverage.coverage_greedy(scores, k)
    assert len(set(chosen)) == k
    assert chosen[0] == int(np.argmax(scores.sum(1)))
    assert chosen == naive_greedy(scores.tolist(), k)


def test_a_covered_query_resets_and_goes_on() -> None:
    # Text 0 covers both query tokens perfectly; nothing can add to it, so the greedy resets
    # and picks the best remaining single text rather than stopping or repeating.
    scores = np.array([[1.0, 1.0], [0.2, 0.9], [0.6, 0.6], [0.1, 0.1]])
    assert coverage.coverage_greedy(scores, 3) == [0, 2, 1]


def test_set_bsr_picks_the_covering_pair_over_two_near_copies() -> None:
    # The query has two tokens (e1, e2). Texts 0 and 1 both match e1 only (near copies); text
    # 2 matches e2 only. The best pair by coverage is {0 or 1, 2}, never {0, 1}.
    e = np.eye(4)
    pool = coverage.token_set(
        [
            (e[[0]], np.array([5])),
            (0.99 * e[[0]] + 0.01 * e[[3]], np.array([5])),
            (e[[1]] + 0.1 * e[[3]], np.array([6])),
            (e[[2]], np.array([7])),
        ]
    )
    query = coverage.token_set([(e[[0, 1]], np.array([5, 6]))])
    idf = {5: 1.0, 6: 1.0, 7: 1.0}
    chosen = coverage.set_bsr(pool, query, 2, idf)[0]
    assert chosen[0] in (0, 1) and chosen[1] == 2
    brute = max(
        itertools.combinations(range(4), 2),
        key=lambda pair: naive_recall(
            query.vectors, query.ids, [pool.vectors[pool.rows(i)] for i in pair], idf
        ),
    )
    assert 2 in brute and set(chosen) & {0, 1}


def test_embed_tokens_drops_cls_and_sep_and_keeps_unit_rows() -> None:
    tokens = coverage.embed_tokens(["self-driving cars are great", "no"])
    assert len(tokens) == 2
    np.testing.assert_allclose(np.linalg.norm(tokens.vectors, axis=1), 1.0, atol=1e-5)
    assert 101 not in tokens.ids.tolist() and 102 not in tokens.ids.tolist()  # [CLS], [SEP]
    assert tokens.rows(1).stop - tokens.rows(1).start == 1


def naive_dpp(vectors: np.ndarray, query: np.ndarray, k: int, candidates: int) -> list[int]:
    """The two-stage DPP written out: the nearest ``candidates``, then greedy MAP inference
    of ``det(L_S)`` on OpenICL's kernel, then the chosen by relevance, descending."""
    similarity = vectors @ query
    near = list(np.argsort(-similarity, kind="stable")[:candidates])
    relevance = (similarity[near] + 1) / 2
    relevance = np.exp((relevance - relevance.max()) / (2 * 0.1))
    kernel = relevance[:, None] * ((vectors[near] @ vectors[near].T + 1) / 2) * relevance[None]
    chosen: list[int] = []
    for _ in range(k):
        best = max(
            (i for i in range(len(near)) if i not in chosen),
            key=lambda i: np.linalg.det(kernel[np.ix_([*chosen, i], [*chosen, i])]),
        )
        chosen.append(best)
    chosen.sort(key=lambda i: -relevance[i])
    return [int(near[i]) for i in chosen]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_openicl_dpp_on_given_vectors_matches_the_written_out_dpp(seed: int) -> None:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(60, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[:3] + 0.1 * rng.normal(size=(3, 8)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    chosen = PrecomputedDPPRetriever(vectors, 4, candidates=12).select(queries)
    for row, query in enumerate(queries):
        assert chosen[row] == naive_dpp(vectors.astype(np.float64), query, 4, 12)
