"""schemathesis hooks for tests/app/test_schemathesis.py (loaded by ``st run`` through
``SCHEMATHESIS_HOOKS``): how to send an ``application/x-ndjson`` body, the import's JSON lines
(the schema describes it as a string)."""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx: Any, value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogatepass")
