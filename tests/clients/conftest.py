"""The real service on loopback (the fixtures of ``tests/app``), reached through the generated
client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from mmdshot_client import Client

from tests.app.conftest import Server, server

__all__ = ["server"]


@pytest.fixture
def api(server: Server) -> Iterator[Client]:
    timeout = httpx.Timeout(60.0)
    with Client(base_url=server.url, timeout=timeout, raise_on_unexpected_status=True) as client:
        yield client
