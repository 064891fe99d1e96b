"""Jobs under control, over real HTTP: cancellation, the calibration budget, a full store or
disk (507 storage_full, nothing lost, the job resumed), and a bounded graceful shutdown that
hands the running job back."""

from __future__ import annotations

import resource
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.app.conftest import NDJSON, Server, assert_error, jsonl, make_examples, wait_for_job
from tests.app.test_durability import all_ids, wait_for_progress


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """This module's server; conftest's ``client`` fixture talks to it."""
    running = Server(
        tmp_path_factory.mktemp("control"),
        import_chunk_size="50",
        calibration_budget="100000",
        max_import_bytes=str(10**16),
    ).start()
    yield running
    running.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path / "data", import_chunk_size="50", shutdown_timeout_s="4")
    yield running
    running.ensure_stopped()


def test_cancel_a_running_and_a_queued_import(client: httpx.Client) -> None:
    client.post("/v1/pools", json={"name": "cancelled"})
    running = client.post(
        "/v1/pools/cancelled/imports", content=jsonl(make_examples(6000)), headers=NDJSON
    )
    waiting = client.post(
        "/v1/pools/cancelled/imports", content=jsonl(make_examples(10, 9000)), headers=NDJSON
    )
    running_id, waiting_id = running.json()["id"], waiting.json()["id"]
    wait_for_progress(client, running_id)
    assert client.get(f"/v1/jobs/{waiting_id}").json()["status"] == "queued"
    queued = client.post(f"/v1/jobs/{waiting_id}/cancel")
    assert queued.status_code == 200 and queued.json()["status"] == "cancelled"
    stopped = client.post(f"/v1/jobs/{running_id}/cancel").json()
    assert stopped["status"] == "cancelled" and stopped["done"] < 6000
    time.sleep(1.0)  # a worker that went on would have committed chunks by now
    job = client.get(f"/v1/jobs/{running_id}").json()
    assert (job["status"], job["done"], job["inserted"]) == ("cancelled", stopped["done"], 0)
    assert client.get("/v1/pools/cancelled").json()["size"] == 0, "a cancelled import adds none"
    assert client.get(f"/v1/jobs/{waiting_id}").json()["done"] == 0, "it never started"
    assert_error(client.post(f"/v1/jobs/{running_id}/cancel"), 409, "conflict")
    assert_error(client.post(f"/v1/jobs/{running_id}/resume"), 409, "conflict")
    assert_error(client.post(f"/v1/jobs/{'0' * 32}/cancel"), 404, "not_found")
    assert_error(client.post("/v1/jobs/nope/cancel"), 422, "validation_error")
    # The worker goes on with the next job.
    after = client.post(
        "/v1/pools/cancelled/imports", content=jsonl(make_examples(5, 7000)), headers=NDJSON
    )
    assert wait_for_job(client, after.json()["id"])["inserted"] == 5


def test_a_calibration_over_its_budget_is_refused_before_it_is_queued(
    client: httpx.Client,
) -> None:
    client.post("/v1/pools", json={"name": "budget"})
    client.post("/v1/pools/budget/examples", json={"examples": make_examples(60)})
    # 50 x 8 x (4 taus + knn) x 60 = 120,000 over the budget of 100,000.
    refused = client.post("/v1/pools/budget/calibrate", json={"validation_size": 50, "k": 8})
    assert_error(refused, 422, "invalid_input")
    assert "100,000" in refused.json()["error"]["message"] or "1e+05" in refused.text
    assert refused.json()["error"]["detail"] == {"cost": 120_000, "budget": 100_000}
    small = client.post(
        "/v1/pools/budget/calibrate", json={"validation_size": 10, "k": 2, "taus": [0.1, 0.5]}
    )
    job = wait_for_job(client, small.json()["id"])
    assert (job["status"], job["done"], job["total"]) == ("succeeded", 3, 3)


def test_an_import_larger_than_the_free_disk_is_refused_before_it_is_read(
    server: Server,
) -> None:
    with server.client() as client:
        client.post("/v1/pools", json={"name": "roomy"})
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(
            b"POST /v1/pools/roomy/imports HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-ndjson\r\nContent-Length: %d\r\n\r\n{}" % 10**15
        )
        answer = b""
        while b'"detail"' not in answer:  # the headers and the body may come apart
            received = raw.recv(65536)
            if not received:
                break
            answer += received
    answer_text = answer.decode()
    assert answer_text.startswith("HTTP/1.1 507"), answer_text
    assert '"type":"storage_full"' in answer_text
    assert list((server.data_dir / "spool").iterdir()) == []


def test_a_full_store_fails_the_import_resumably_and_loses_nothing(tmp_path: Path) -> None:
    """A real SQLITE_FULL (the database capped by ``max_store_bytes``): the import stops
    ``failed`` and ``resumable`` (not stuck running), writes answer 507, ``/ready`` says so;
    with room again it resumes and every line is stored once."""
    total = 6000
    capped = Server(tmp_path / "data", import_chunk_size="100", max_store_bytes="1500000")
    try:
        with capped.start().client() as client:
            client.post("/v1/pools", json={"name": "full"})
            job_id = client.post(
                "/v1/pools/full/imports", content=jsonl(make_examples(total)), headers=NDJSON
            )
            job = wait_for_job(client, job_id.json()["id"], timeout=120)
            assert (job["status"], job["resumable"]) == ("failed", True), job
            assert "out of storage space" in job["message"]
            assert 0 < job["done"] < total and job["inserted"] == 0
            assert client.get("/v1/pools/full").json()["size"] == 0  # all or nothing
            more = client.post(
                "/v1/pools/full/examples", json={"examples": make_examples(50, 10**6)}
            )
            assert_error(more, 507, "storage_full")
            ready = client.get("/ready").json()
            assert ready["storage_full"] is True and ready["ready"] is True
        capped.stop()
        roomy = Server(tmp_path / "data", import_chunk_size="100")
        with roomy.start().client() as client:
            assert client.get("/ready").json()["storage_full"] is False
            resumed = client.post(f"/v1/jobs/{job['id']}/resume")
            assert resumed.status_code == 202 and resumed.json()["status"] == "queued"
            done = wait_for_job(client, job["id"], timeout=120)
            assert (done["status"], done["done"], done["inserted"]) == ("succeeded", total, total)
            assert done["duplicates"] == 0 and done["resumable"] is False
            assert all_ids(client, "full") == [f"ex-{i}" for i in range(total)]
        roomy.stop()
    finally:
        capped.ensure_stopped()


def slow_upload(url: str, pieces: int, results: list[Any]) -> None:
    """An import whose body arrives over ``pieces`` x 0.25 s."""

    def body() -> Iterator[bytes]:
        for number in range(pieces):
            time.sleep(0.25)
            yield jsonl(make_examples(1, start=50_000 + number))

    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            results.append(client.post("/v1/pools/drain/imports", content=body(), headers=NDJSON))
    except httpx.TransportError as exc:
        results.append(exc)


def test_sigterm_drains_hands_the_job_back_and_exits_in_time(fresh_server: Server) -> None:
    total = 6000
    with fresh_server.start().client() as client:
        client.post("/v1/pools", json={"name": "drain"})
        job_id = client.post(
            "/v1/pools/drain/imports", content=jsonl(make_examples(total)), headers=NDJSON
        )
        job_id = job_id.json()["id"]
        wait_for_progress(client, job_id)
        finishing: list[Any] = []
        endless: list[Any] = []
        uploads = [
            threading.Thread(target=slow_upload, args=(fresh_server.url, 6, finishing)),
            threading.Thread(target=slow_upload, args=(fresh_server.url, 400, endless)),
        ]
        for upload in uploads:
            upload.start()
        time.sleep(0.5)  # both uploads are in flight
        assert fresh_server.process is not None
        fresh_server.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        time.sleep(0.2)
        with httpx.Client(base_url=fresh_server.url, timeout=10) as late:
            refused = late.get("/v1/pools")
            assert_error(refused, 503, "shutting_down")
            assert refused.headers["retry-after"] == "5"
            assert late.get("/health").status_code == 200
            assert late.get("/ready").status_code == 503
        fresh_server.process.wait(timeout=30)
        exited = time.monotonic() - signalled
        for upload in uploads:
            upload.join()
    # The timeout (4 s) bounds the drain; uvicorn's close adds at most a second or two.
    assert exited < 4 + 3, exited
    assert finishing[0].status_code == 202, "an in-flight request finishes"
    uploaded = finishing[0].json()["id"]
    with fresh_server.start().client() as client:
        job = wait_for_job(client, job_id, timeout=120)
        assert (job["status"], job["inserted"], job["duplicates"]) == ("succeeded", total, 0)
        assert wait_for_job(client, uploaded)["inserted"] == 6
        assert len(all_ids(client, "drain")) == total + 6


def limit_file_size() -> None:
    """In the server process: no file may grow past 8 MiB (a real EFBIG, as a full disk
    gives ENOSPC), and the write fails rather than the process being killed by SIGXFSZ."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (8 * 2**20, 8 * 2**20))


def test_a_spool_write_that_finds_no_space_answers_507(tmp_path: Path) -> None:
    limited = Server(tmp_path / "data")
    limited.preexec_fn = limit_file_size
    try:
        with limited.start().client() as client:
            client.post("/v1/pools", json={"name": "tight"})
            body = jsonl(make_examples(60_000))  # about 11 MB
            assert len(body) > 8 * 2**20
            refused = client.post("/v1/pools/tight/imports", content=body, headers=NDJSON)
            assert_error(refused, 507, "storage_full")
            assert "File too large" in refused.json()["error"]["message"]
            assert str(tmp_path) not in refused.text, "no paths in answers"
            assert client.get("/ready").json()["storage_full"] is True
            assert list((limited.data_dir / "spool").iterdir()) == [], "the partial body is gone"
            # Nothing else broke: a smaller import goes through, and clears the state.
            small = client.post(
                "/v1/pools/tight/imports", content=jsonl(make_examples(20)), headers=NDJSON
            )
            assert wait_for_job(client, small.json()["id"])["inserted"] == 20
            assert client.get("/ready").json()["storage_full"] is False
    finally:
        limited.ensure_stopped()
