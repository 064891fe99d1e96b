"""DSPy demonstrations from mmdshot: ``mmdshot_demos`` returns ``dspy.Example`` objects for a
query, ready for ``Predict.demos``, ``LabeledFewShot``-style trainsets or ``dspy.context``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dspy
from mmdshot_client import AuthenticatedClient

from mmdshot_integrations.remote import ExampleKeys, PrefixCache, as_client, select_examples


def mmdshot_demos(
    client: AuthenticatedClient | str,
    pool: str,
    query: str,
    k: int = 4,
    *,
    keys: ExampleKeys | None = None,
    options: Mapping[str, Any] | None = None,
    api_key: str | None = None,
    prefix: str | PrefixCache | None = None,
) -> list[dspy.Example]:
    """The ``k`` demonstrations mmdshot chooses from ``pool`` for ``query``, in prompt order,
    as ``dspy.Example`` objects whose inputs are ``keys.input_key`` (give the signature's
    field names, e.g. ``ExampleKeys("question", "answer")``); ``options`` are further
    select-request fields. ``client`` is a generated client or the service's base URL, which
    is reached with ``api_key`` (default: ``$MMDSHOT_API_KEY``). With ``prefix`` (a prefix of
    the pool, by name, or a :class:`PrefixCache` kept across calls so its examples are fetched
    once) the prefix's examples come first, always the same, then ``k`` chosen around them."""
    keys = keys or ExampleKeys()
    cache = PrefixCache(prefix) if isinstance(prefix, str) else prefix
    chosen = select_examples(as_client(client, api_key), pool, query, k, options or {}, cache)
    return [dspy.Example(**keys.to_dict(example)).with_inputs(keys.input_key) for example in chosen]
