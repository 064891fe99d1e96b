"""The calls the framework adapters make to a running mmdshot, through the generated client,
and the mapping between a framework's example dicts and mmdshot's examples."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from mmdshot_client import AuthenticatedClient
from mmdshot_client.api.examples import examples_upsert
from mmdshot_client.api.selection import selection_select
from mmdshot_client.models import (
    ErrorBody,
    ExampleIn,
    ExamplesUpsert,
    PoolSelection,
    PoolSelectRequest,
    SelectedExample,
    UpsertResult,
)
from mmdshot_client.types import Response

Parsed = TypeVar("Parsed")

API_KEY_VARIABLE = "MMDSHOT_API_KEY"


def connect(
    base_url: str, api_key: str | None = None, timeout: float = 60.0
) -> AuthenticatedClient:
    """A generated client of the service at ``base_url`` that sends ``api_key`` (default:
    ``$MMDSHOT_API_KEY``) as its bearer token, or no Authorization header without one (a
    service started without keys needs none)."""
    token = api_key if api_key is not None else os.environ.get(API_KEY_VARIABLE, "")
    client = AuthenticatedClient(base_url=base_url, token=token, timeout=httpx.Timeout(timeout))
    if not token:  # an empty bearer header is not valid HTTP: an httpx client without one
        client.set_httpx_client(httpx.Client(base_url=base_url, timeout=httpx.Timeout(timeout)))
    return client


def as_client(client: AuthenticatedClient | str, api_key: str | None) -> AuthenticatedClient:
    """``client`` itself, or :func:`connect` for a base URL with ``api_key``."""
    if isinstance(client, str):
        return connect(client, api_key)
    if api_key is not None:
        raise ValueError("api_key goes with a base URL; a client carries its own token")
    return client


class MmdshotError(Exception):
    """mmdshot answered with its error body (``status``, ``type``, ``message``)."""

    def __init__(self, status: int, type_: str, message: str) -> None:
        super().__init__(f"{status} {type_}: {message}")
        self.status = status
        self.type = type_
        self.message = message


def expect(response: Response[ErrorBody | Parsed]) -> Parsed:
    """The parsed success body, or :class:`MmdshotError` for the service's error body."""
    parsed = response.parsed
    if isinstance(parsed, ErrorBody):
        raise MmdshotError(response.status_code, parsed.error.type_, parsed.error.message)
    if parsed is None:
        raise MmdshotError(response.status_code, "unexpected", response.content.decode())
    return parsed


@dataclass(frozen=True)
class ExampleKeys:
    """Where a framework's example dict keeps mmdshot's fields: ``input_key`` the input,
    ``output_key`` the output, ``label_key`` (optional) the label; other keys travel as
    metadata."""

    input_key: str = "input"
    output_key: str = "output"
    label_key: str | None = None

    def to_example(
        self, example: Mapping[str, Any], embedding: Sequence[float] | None = None
    ) -> ExampleIn:
        """``example`` as mmdshot's example; with ``embedding``, its input's vector (a pool
        with provided embeddings)."""
        named = {self.input_key, self.output_key, self.label_key}
        body = {key: value for key, value in example.items() if key not in named}
        record: dict[str, Any] = {
            "input": example[self.input_key],
            "output": example.get(self.output_key, ""),
        }
        if self.label_key is not None and self.label_key in example:
            record["label"] = example[self.label_key]
        if embedding is not None:
            record["embedding"] = [float(value) for value in embedding]
        return ExampleIn.from_dict({**record, "metadata": body})

    def to_dict(self, example: SelectedExample) -> dict[str, Any]:
        fields: dict[str, Any] = dict(example.metadata.additional_properties)
        fields[self.input_key] = example.input_
        fields[self.output_key] = example.output
        if self.label_key is not None and example.label is not None:
            fields[self.label_key] = example.label
        return fields


def select_examples(
    client: AuthenticatedClient,
    pool: str,
    query: str | Sequence[float],
    k: int,
    options: Mapping[str, Any],
) -> list[SelectedExample]:
    """The ``k`` examples of ``pool`` mmdshot chooses for ``query``, in prompt order (most
    relevant last): a text, or a vector for a pool with provided embeddings; ``options``
    are further fields of the select request (``kernel``, ``constraints``, ...)."""
    target: dict[str, Any] = (
        {"query": query}
        if isinstance(query, str)
        else {"query_embedding": [float(value) for value in query]}
    )
    body = PoolSelectRequest.from_dict({**options, **target, "k": k})
    selection: PoolSelection = expect(
        selection_select.sync_detailed(pool, client=client, body=body)
    )
    return selection.examples


def add_examples(
    client: AuthenticatedClient, pool: str, examples: Sequence[ExampleIn]
) -> UpsertResult:
    """Upsert ``examples`` into ``pool``."""
    body = ExamplesUpsert(examples=list(examples))
    return expect(examples_upsert.sync_detailed(pool, client=client, body=body))
