"""The real service on loopback (the ``Server`` of ``tests/app``), started with API keys and
reached through the generated client with a write key."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest
from mmdshot_client import AuthenticatedClient

from tests.app.conftest import Server

WRITE_KEY = "clients-write-" + secrets.token_hex(8)
READ_KEY = "clients-read-" + secrets.token_hex(8)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(
        tmp_path_factory.mktemp("clients"), api_keys=f"{WRITE_KEY},{READ_KEY}:read"
    ).start()
    yield running
    running.stop()


@pytest.fixture
def api(server: Server) -> Iterator[AuthenticatedClient]:
    timeout = httpx.Timeout(60.0)
    with AuthenticatedClient(
        base_url=server.url, token=WRITE_KEY, timeout=timeout, raise_on_unexpected_status=True
    ) as client:
        yield client
