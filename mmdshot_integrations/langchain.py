"""LangChain example selectors that choose demonstrations by MMD: drop-ins for
``SemanticSimilarityExampleSelector`` in ``FewShotPromptTemplate(example_selector=...)``.

``MmdshotExampleSelector`` asks a running mmdshot (``add_example`` upserts into its pool);
``LocalMmdExampleSelector`` runs the ``selector`` library in-process over examples it holds.
Both build the query from the input variables as ``SemanticSimilarityExampleSelector`` does:
the values of ``query_keys`` (default: every input variable) sorted by key, joined by spaces.
For chat models, :func:`few_shot_chat_messages` puts either selector in a
``FewShotChatMessagePromptTemplate`` (a human/AI message pair per demonstration); set
``query_keys`` when the chat prompt has variables besides the query (a system hint, history).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from langchain_core.example_selectors import BaseExampleSelector
from langchain_core.prompts import ChatPromptTemplate, FewShotChatMessagePromptTemplate
from mmdshot_client import AuthenticatedClient

from mmdshot_integrations.remote import (
    ExampleKeys,
    PrefixCache,
    add_examples,
    as_client,
    select_examples,
)
from selector import Embedder, SentenceTransformerEmbedder, select


@dataclass(kw_only=True)
class _MmdExampleSelector(BaseExampleSelector):
    k: int = 4
    keys: ExampleKeys = field(default_factory=ExampleKeys)
    query_keys: Sequence[str] | None = None

    def query(self, input_variables: Mapping[str, Any]) -> str:
        names = sorted(input_variables if self.query_keys is None else self.query_keys)
        return " ".join(str(input_variables[name]) for name in names)


@dataclass(kw_only=True)
class MmdshotExampleSelector(_MmdExampleSelector):
    """The ``k`` demonstrations a running mmdshot chooses from ``pool``; ``options`` are further
    select-request fields (``kernel``, ``constraints``, ``method``, ...). ``client`` is a
    generated client or the service's base URL, which is reached with ``api_key`` (default:
    ``$MMDSHOT_API_KEY``). With ``prefix`` (a prefix of the pool) the examples are the
    prefix's, always the same and first, then ``k`` more chosen around them."""

    client: AuthenticatedClient | str
    pool: str
    options: Mapping[str, Any] = field(default_factory=dict)
    api_key: str | None = field(default=None, repr=False)
    prefix: str | None = None

    def __post_init__(self) -> None:
        self._api = as_client(self.client, self.api_key)
        self._prefix = None if self.prefix is None else PrefixCache(self.prefix)

    def add_example(self, example: dict[str, str]) -> str:
        """Upsert ``example`` into the pool; returns its id (an existing one for a duplicate)."""
        result = add_examples(self._api, self.pool, [self.keys.to_example(example)])
        return (result.inserted + result.updated + [d.existing_id for d in result.duplicates])[0]

    def select_examples(self, input_variables: dict[str, str]) -> list[dict[str, Any]]:
        query = self.query(input_variables)
        chosen = select_examples(self._api, self.pool, query, self.k, self.options, self._prefix)
        return [self.keys.to_dict(example) for example in chosen]


@dataclass(kw_only=True)
class LocalMmdExampleSelector(_MmdExampleSelector):
    """The ``k`` of ``examples`` whose embedded inputs are closest in MMD to the query, chosen
    in-process by :func:`selector.select`; with a ``keys.label_key`` that every example has,
    the joint (input, label) distribution is matched. Examples come back in prompt order (most
    relevant last)."""

    examples: list[dict[str, Any]]
    embedder: Embedder = field(default_factory=SentenceTransformerEmbedder)
    kernel: str = "softmax"
    seed: int = 0

    def __post_init__(self) -> None:
        texts = [str(example[self.keys.input_key]) for example in self.examples]
        self._vectors = self.embedder.embed(texts)

    def add_example(self, example: dict[str, str]) -> None:
        vector = self.embedder.embed([str(example[self.keys.input_key])])
        self.examples.append(example)
        self._vectors = np.concatenate([self._vectors, vector])

    def select_examples(self, input_variables: dict[str, str]) -> list[dict[str, Any]]:
        target = self.embedder.embed([self.query(input_variables)])[0]
        label_key = self.keys.label_key
        labels = None
        if label_key is not None and all(label_key in example for example in self.examples):
            labels = [example[label_key] for example in self.examples]
        result = select(
            self._vectors,
            target,
            min(self.k, len(self.examples)),
            kernel=self.kernel,
            labels=labels,
            device="cpu",
            seed=self.seed,
        )
        return [self.examples[index] for index in result.prompt_order]


def few_shot_chat_messages(
    selector: MmdshotExampleSelector | LocalMmdExampleSelector,
    example_prompt: ChatPromptTemplate | None = None,
) -> FewShotChatMessagePromptTemplate:
    """``selector``'s demonstrations as chat messages, for a ``ChatPromptTemplate``: by
    default a human message with the example's input and an AI message with its output (the
    selector's ``keys``); the query variables are the selector's ``query_keys`` (all the
    prompt's variables when None)."""
    keys = selector.keys
    prompt = example_prompt or ChatPromptTemplate.from_messages(
        [("human", f"{{{keys.input_key}}}"), ("ai", f"{{{keys.output_key}}}")]
    )
    return FewShotChatMessagePromptTemplate(
        example_selector=selector,
        example_prompt=prompt,
        input_variables=list(selector.query_keys or [keys.input_key]),
    )
