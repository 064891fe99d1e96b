"""LangChain's example selectors and OpenICL's TopkRetriever on precomputed embeddings, for
side-by-side timing.

Each peer is given the same vectors mmdshot gets in place of its embedding step, so the peers
spend no time embedding: the comparison is selection against selection.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import faiss
import numpy as np
from langchain_core.embeddings import Embeddings
from langchain_core.example_selectors import (
    MaxMarginalRelevanceExampleSelector,
    SemanticSimilarityExampleSelector,
)
from langchain_core.vectorstores import InMemoryVectorStore
from openicl import DPPRetriever, TopkRetriever
from openicl.icl_retriever.icl_dpp_retriever import fast_map_dpp


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


class PrecomputedTopkRetriever(TopkRetriever):
    """OpenICL's TopkRetriever over given vectors: its retrieval (``retrieve``, which runs
    ``knn_search``: one faiss search per test entry) is OpenICL's code, unchanged.

    Two of its steps cannot run here. The constructor loads a tokenizer and a
    sentence-transformers model from the Hugging Face hub, and ``create_index`` tokenizes the
    pool with ``encode_plus``, which transformers 5 removed (OpenICL pins transformers 4.28).
    So the pool's rows go into the index ``create_index`` builds (an ``IndexIDMap`` over an
    ``IndexFlatIP``, ids = row numbers), and ``forward``, which embeds the test set, returns
    the query vectors it is given.
    """

    def __init__(self, examples: np.ndarray, k: int) -> None:
        """``examples: (n, d)`` float32 unit rows; ``k`` examples per query (``ice_num``)."""
        self.ice_num = k
        self.is_main_process = False  # in a retriever, this only switches the progress bar off
        # retrieve() logs a line at INFO on every call.
        logging.getLogger(TopkRetriever.__module__).setLevel(logging.WARNING)
        self.index = faiss.IndexIDMap(faiss.IndexFlatIP(examples.shape[1]))
        self.index.add_with_ids(examples, np.arange(len(examples), dtype=np.int64))
        self.dataloader = examples[:0]

    def forward(
        self, dataloader: np.ndarray, process_bar: bool = False, information: str = ""
    ) -> list[dict[str, Any]]:
        """OpenICL's embedded test entries, from ``dataloader``: the query vectors ``(m, d)``."""
        return [{"embed": vector, "metadata": {"id": i}} for i, vector in enumerate(dataloader)]

    def select(self, queries: np.ndarray) -> list[list[int]]:
        """``queries: (m, d)`` -> the ``k`` pool rows OpenICL retrieves for each query."""
        self.dataloader = queries
        return self.retrieve()


class PrecomputedDPPRetriever(PrecomputedTopkRetriever, DPPRetriever):
    """OpenICL's DPPRetriever over given vectors: the ``candidate_num`` nearest pool rows from
    the faiss index, OpenICL's ``get_kernel`` (``rel_i * (1 + <x_i, x_j>) / 2 * rel_j`` with
    ``rel = exp(((1 + <q, x>) / 2) / (2 * scale_factor))``) and its ``fast_map_dpp`` greedy MAP
    inference, then the chosen rows by relevance, descending. The index and the embedded test
    set come in as for :class:`PrecomputedTopkRetriever`.

    ``dpp_search`` is OpenICL's loop with one fix: it indexes the list ``fast_map_dpp``
    returns with an array (``samples_ids[order]``), which raises a TypeError on any numpy;
    here the list becomes an array first."""

    def __init__(
        self, examples: np.ndarray, k: int, candidates: int = 50, scale_factor: float = 0.1
    ) -> None:
        """``candidates``: the first stage's size (OpenICL's ``candidate_num``);
        ``scale_factor``: its relevance-diversity balance (OpenICL's default 0.1)."""
        super().__init__(examples, k)
        logging.getLogger(DPPRetriever.__module__).setLevel(logging.WARNING)
        self.candidate_num = candidates
        self.scale_factor = scale_factor
        self.seed = 1

    def dpp_search(self) -> list[list[int]]:
        chosen = []
        for entry in self.forward(self.dataloader):
            embed = np.expand_dims(entry["embed"], axis=0)
            near = self.index.search(embed, self.candidate_num)[1][0].tolist()
            _, relevance, kernel = self.get_kernel(embed, near)
            samples = np.asarray(fast_map_dpp(kernel, self.ice_num))
            samples = samples[(-relevance[samples]).argsort()]
            chosen.append([int(near[i]) for i in samples])
        return chosen
