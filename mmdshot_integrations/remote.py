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
from mmdshot_client.api.prefixes import prefixes_get
from mmdshot_client.api.selection import selection_select
from mmdshot_client.models import (
    ErrorBody,
    ExampleIn,
    ExamplesUpsert,
    PoolSelection,
    PoolSelectRequest,
    PrefixExample,
    PrefixInfo,
    PrefixSlice,
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

    def to_example(self, example: Mapping[str, Any]) -> ExampleIn:
        named = {self.input_key, self.output_key, self.label_key}
        body = {key: value for key, value in example.items() if key not in named}
        record = {"input": example[self.input_key], "output": example.get(self.output_key, "")}
        if self.label_key is not None and self.label_key in example:
            record["label"] = example[self.label_key]
        return ExampleIn.from_dict({**record, "metadata": body})

    def to_dict(self, example: SelectedExample | PrefixExample) -> dict[str, Any]:
        """The example as a framework's dict (a prefix's examples carry no metadata)."""
        fields: dict[str, Any] = (
            dict(example.metadata.additional_properties)
            if isinstance(example, SelectedExample)
            else {}
        )
        fields[self.input_key] = example.input_
        fields[self.output_key] = example.output
        if self.label_key is not None and example.label is not None:
            fields[self.label_key] = example.label
        return fields


def select_examples(
    client: AuthenticatedClient,
    pool: str,
    query: str,
    k: int,
    options: Mapping[str, Any],
    prefix: PrefixCache | None = None,
) -> list[SelectedExample | PrefixExample]:
    """The ``k`` examples of ``pool`` mmdshot chooses for ``query``, in prompt order (most
    relevant last); ``options`` are further fields of the select request (``kernel``,
    ``constraints``, ...). With ``prefix``, the prefix's examples (always the same, in the
    same order, so a provider's prefix cache can serve them) come first, then a slice of
    ``k`` chosen around them."""
    fields = {**options, "query": query, "k": k}
    if prefix is not None:
        fields["prefix"] = prefix.name
    body = PoolSelectRequest.from_dict(fields)
    selection: PoolSelection = expect(
        selection_select.sync_detailed(pool, client=client, body=body)
    )
    chosen: list[SelectedExample | PrefixExample] = list(selection.examples)
    if prefix is None or not isinstance(selection.prefix, PrefixSlice):
        return chosen
    return [*prefix.examples(client, pool, selection.prefix.prefix_hash), *chosen]


@dataclass
class PrefixCache:
    """A prefix of a pool by ``name``, with its examples fetched once per content hash (a
    rebuild changes the hash, and the examples are fetched again)."""

    name: str
    _hash: str | None = None
    _examples: list[PrefixExample] | None = None

    def examples(self, client: AuthenticatedClient, pool: str, digest: str) -> list[PrefixExample]:
        if self._examples is None or self._hash != digest:
            info: PrefixInfo = expect(prefixes_get.sync_detailed(pool, self.name, client=client))
            self._hash, self._examples = info.prefix_hash, list(info.examples)
        return self._examples


def add_examples(
    client: AuthenticatedClient, pool: str, examples: Sequence[ExampleIn]
) -> UpsertResult:
    """Upsert ``examples`` into ``pool``."""
    body = ExamplesUpsert(examples=list(examples))
    return expect(examples_upsert.sync_detailed(pool, client=client, body=body))
