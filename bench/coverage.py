"""Set-BSR: coverage-based demonstration selection (Gupta, Gardner and Singh, 2023), a peer in
``python -m bench icl``.

BERTScore recall of a query ``x`` by a demonstration ``z`` is the idf-weighted mean, over the
query's tokens, of each token's best cosine similarity to any of ``z``'s tokens (contextual
token embeddings). Set-BSR scores a *set* ``Z`` the same way with the max taken over every
token of every member, so a set that covers each query token once scores as well as one that
repeats the best match: it rewards coverage, not redundancy. The set is built greedily, one
demonstration at a time, each step adding the candidate with the largest set score; when no
candidate raises it any more the coverage state is reset and the greedy goes on from scratch
(the paper's ``decomposed_coverage_greedy``). Token embeddings come from the bundled MiniLM
(``output_value="token_embeddings"``), without its [CLS] and [SEP]; idf weights are BERTScore's
``log((N + 1) / (df + 1))`` over the pool, [CLS]/[SEP] excluded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class TokenSet:
    """Unit token embeddings of several texts laid end to end: ``vectors: (T, d)``, text ``i``
    at rows ``offsets[i]:offsets[i + 1]``, and the token ids ``ids: (T,)``."""

    vectors: np.ndarray
    ids: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def rows(self, i: int) -> slice:
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))


def token_set(per_text: Sequence[tuple[np.ndarray, np.ndarray]]) -> TokenSet:
    """``per_text``: ``(vectors (t_i, d), ids (t_i,))`` for each text, at least one token each."""
    lengths = [len(ids) for _, ids in per_text]
    if min(lengths, default=1) < 1:
        raise ValueError("every text needs at least one token")
    vectors = np.concatenate([v for v, _ in per_text]).astype(np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return TokenSet(
        vectors,
        np.concatenate([ids for _, ids in per_text]).astype(np.int64),
        np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
    )


def embed_tokens(texts: Sequence[str], model_path: str | None = None) -> TokenSet:
    """Contextual token embeddings of ``texts`` from the bundled MiniLM (or ``model_path``),
    [CLS] and [SEP] dropped (a text of no other token keeps its [CLS])."""
    from sentence_transformers import SentenceTransformer

    from selector.embedding import bundled_model_path

    path = model_path or str(bundled_model_path())
    model = SentenceTransformer(path, device="cpu", local_files_only=True)
    tokenizer = model.tokenizer
    encoded = model.encode(list(texts), output_value="token_embeddings", batch_size=64)
    special = {tokenizer.cls_token_id, tokenizer.sep_token_id}
    per_text = []
    for text, vectors in zip(texts, encoded, strict=True):
        ids = tokenizer(text, truncation=True, max_length=model.max_seq_length)["input_ids"]
        array = np.asarray(vectors.cpu() if hasattr(vectors, "cpu") else vectors)[: len(ids)]
        keep = np.array([i not in special for i in ids])
        if not keep.any():
            keep[0] = True
        per_text.append((array[keep], np.asarray(ids)[keep]))
    return token_set(per_text)


def idf_weights(pool: TokenSet) -> dict[int, float]:
    """BERTScore's idf over the pool's texts: ``log((N + 1) / (df + 1))`` per token id."""
    documents: Counter[int] = Counter()
    for i in range(len(pool)):
        documents.update(set(pool.ids[pool.rows(i)].tolist()))
    count = len(pool)
    return {token: float(np.log((count + 1) / (df + 1))) for token, df in documents.items()}


def partial_scores(
    query: np.ndarray, query_ids: np.ndarray, pool: TokenSet, idf: dict[int, float]
) -> np.ndarray:
    """``(n, t)``: for each pool text, each query token's best cosine to its tokens, times the
    query token's idf weight (weights summing to 1 over the query's tokens, uniform when all
    are zero). Its row sum is that text's BERTScore recall of the query."""
    count = len(pool)
    weights = np.array([idf.get(int(i), float(np.log(count + 1))) for i in query_ids])
    weights = (
        weights / weights.sum() if weights.sum() > 0 else np.full(len(weights), 1 / len(weights))
    )
    similarity = pool.vectors @ query.T  # (T, t)
    best = np.maximum.reduceat(similarity, pool.offsets[:-1], axis=0)  # (n, t)
    return (best * weights[None, :]).astype(np.float64)


def coverage_greedy(scores: np.ndarray, k: int) -> list[int]:
    """Greedy set coverage of ``scores: (n, t)`` (each candidate's weighted per-token match):
    each step adds the candidate maximising ``sum_t max(state_t, scores[i, t])``; when none
    raises the set score the state resets and the greedy goes on. Returns the ``k`` chosen
    rows in the order chosen."""
    if not 0 < k <= len(scores):
        raise ValueError(f"k must lie in [1, {len(scores)}]")
    chosen: list[int] = []
    state = np.full(scores.shape[1], -np.inf)
    set_score = -np.inf
    while len(chosen) < k:
        candidate = np.maximum(scores, state[None, :]).sum(axis=1)
        candidate[chosen] = -np.inf
        best = int(np.argmax(candidate))
        if candidate[best] > set_score:
            chosen.append(best)
            state = np.maximum(state, scores[best])
            set_score = float(candidate[best])
        else:
            state = np.full(scores.shape[1], -np.inf)
            set_score = -np.inf
    return chosen


def set_bsr(pool: TokenSet, queries: TokenSet, k: int, idf: dict[int, float]) -> list[list[int]]:
    """The Set-BSR choice of ``k`` pool texts for each query, in the order chosen."""
    return [
        coverage_greedy(
            partial_scores(
                queries.vectors[queries.rows(q)], queries.ids[queries.rows(q)], pool, idf
            ),
            k,
        )
        for q in range(len(queries))
    ]
