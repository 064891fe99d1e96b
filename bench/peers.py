"""LangChain's example selectors on precomputed embeddings, for side-by-side timing.

The embeddings object looks texts up in a table of the same vectors mmdshot gets, so the
peers spend no time embedding: the comparison is selection against selection.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from langchain_core.embeddings import Embeddings
from langchain_core.example_selectors import (
    MaxMarginalRelevanceExampleSelector,
    SemanticSimilarityExampleSelector,
)
from langchain_core.vectorstores import InMemoryVectorStore


class PrecomputedEmbeddings(Embeddings):
    """Returns the stored vector of each text (``"example 17"``, ``"query 3"``)."""

    def __init__(self, examples: np.ndarray, queries: np.ndarray) -> None:
        self.examples = examples
        self.queries = queries

    def _vector(self, text: str) -> list[float]:
        kind, number = text.rsplit(" ", 1)
        table = self.examples if kind == "example" else self.queries
        return [float(value) for value in table[int(number)]]

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._vector(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)


def langchain_selectors(
    examples: np.ndarray, queries: np.ndarray, k: int
) -> dict[str, SemanticSimilarityExampleSelector | MaxMarginalRelevanceExampleSelector]:
    """Both LangChain selectors over ``examples: (n, d)``, built the documented way."""
    embeddings = PrecomputedEmbeddings(examples, queries)
    rows = [{"input": f"example {i}"} for i in range(len(examples))]
    semantic = SemanticSimilarityExampleSelector.from_examples(
        rows, embeddings, InMemoryVectorStore, k=k, input_keys=["input"]
    )
    mmr = MaxMarginalRelevanceExampleSelector(
        vectorstore=semantic.vectorstore, k=k, fetch_k=20, input_keys=["input"]
    )
    return {"langchain_semantic": semantic, "langchain_mmr": mmr}
