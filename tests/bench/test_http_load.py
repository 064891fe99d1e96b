"""The HTTP benchmark's wrk load (bench/http.py): every request carries a query of its own."""

from __future__ import annotations

import json
import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench import http, soak

pytestmark = pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk missing: scripts/test.sh installs Debian's wrk"
)


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[bytes]]]:
    """A loopback server that answers ``{}`` to every POST and keeps the bodies."""
    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers["content-length"])))
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", bodies
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    "target", [http.select_target(8), http.PEER_TARGET], ids=["select", "peer"]
)
def test_wrk_sends_a_distinct_query_per_request(
    recorder: tuple[str, list[bytes]], target: http.Target
) -> None:
    """Two wrk threads (each with a Lua state of its own) at concurrency 8: no query twice, so
    no cache answers a request of the load (with a counter alone, both threads sent the same
    texts, and the service's embedding cache answered about half of them)."""
    url, bodies = recorder
    result = http._wrk(url, ["alpha", 'beta "quoted"', "gamma"], target, 8, 1)
    queries = [json.loads(body).get("query") or json.loads(body)["input"][0] for body in bodies]
    assert len(queries) >= 50 and result["non_2xx"] == 0
    assert Counter(queries).most_common(1)[0][1] == 1
    assert {query.split(" #")[0] for query in queries} == {"alpha", 'beta "quoted"', "gamma"}


def test_the_soak_sends_a_distinct_query_per_request(recorder: tuple[str, list[bytes]]) -> None:
    """The soak's wrk script (its own, as it counts statuses) numbers its threads too."""
    url, bodies = recorder
    result = soak.wrk_selections(url, ["alpha", "beta", "gamma"], 8, 1)
    queries = [json.loads(body)["query"] for body in bodies]
    # Requests still in flight when wrk stops reach the server uncounted.
    assert set(result["statuses"]) == {"200"} and 50 <= result["statuses"]["200"] <= len(queries)
    assert Counter(queries).most_common(1)[0][1] == 1
