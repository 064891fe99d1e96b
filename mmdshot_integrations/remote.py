"""The calls the framework adapters make to a running mmdshot, through the generated client,
and the mapping between a framework's example dicts and mmdshot's examples."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from mmdshot_client import Client
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

    def to_dict(self, example: SelectedExample) -> dict[str, Any]:
        fields: dict[str, Any] = dict(example.metadata.additional_properties)
        fields[self.input_key] = example.input_
        fields[self.output_key] = example.output
        if self.label_key is not None and example.label is not None:
            fields[self.label_key] = example.label
        return fields


def select_examples(
    client: Client, pool: str, query: str, k: int, options: Mapping[str, Any]
) -> list[SelectedExample]:
    """The ``k`` examples of ``pool`` mmdshot chooses for ``query``, in prompt order (most
    relevant last); ``options`` are further fields of the select request (``kernel``,
    ``constraints``, ...)."""
    body = PoolSelectRequest.from_dict({**options, "query": query, "k": k})
    selection: PoolSelection = expect(
        selection_select.sync_detailed(pool, client=client, body=body)
    )
    return selection.examples


def add_examples(client: Client, pool: str, examples: Sequence[ExampleIn]) -> UpsertResult:
    """Upsert ``examples`` into ``pool``."""
    body = ExamplesUpsert(examples=list(examples))
    return expect(examples_upsert.sync_detailed(pool, client=client, body=body))
