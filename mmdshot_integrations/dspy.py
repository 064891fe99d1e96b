"""DSPy demonstrations from mmdshot: ``mmdshot_demos`` returns ``dspy.Example`` objects for a
query, ready for ``Predict.demos``, ``LabeledFewShot``-style trainsets or ``dspy.context``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dspy
from mmdshot_client import Client

from mmdshot_integrations.remote import ExampleKeys, select_examples


def mmdshot_demos(
    client: Client,
    pool: str,
    query: str,
    k: int = 4,
    *,
    keys: ExampleKeys | None = None,
    options: Mapping[str, Any] | None = None,
) -> list[dspy.Example]:
    """The ``k`` demonstrations mmdshot chooses from ``pool`` for ``query``, in prompt order,
    as ``dspy.Example`` objects whose inputs are ``keys.input_key`` (give the signature's
    field names, e.g. ``ExampleKeys("question", "answer")``); ``options`` are further
    select-request fields."""
    keys = keys or ExampleKeys()
    chosen = select_examples(client, pool, query, k, options or {})
    return [dspy.Example(**keys.to_dict(example)).with_inputs(keys.input_key) for example in chosen]
