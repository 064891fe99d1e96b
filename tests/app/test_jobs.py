"""The job worker in process: the streaming record reader against ``json``, and a worker that
survives failing jobs and its own thread's death."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app import jobs
from app.config import Settings
from app.engine import Engine
from app.errors import ApiError
from app.jobs import ImportBodyError, JobWorker, import_records, validate_record
from tests.app.conftest import jsonl, make_examples

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def records_of(body: bytes) -> list[tuple[int, Any]]:
    return list(import_records(io.BytesIO(body)))


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(JSON_VALUES, max_size=12),
    block=st.integers(1, 40),
    indent=st.sampled_from([None, 0, 2]),
    ascii_only=st.booleans(),
)
def test_a_json_array_is_read_element_by_element(
    values: list[Any], block: int, indent: int | None, ascii_only: bool
) -> None:
    """Whatever the block boundaries (a few bytes, inside numbers and multi-byte
    characters), the elements are those ``json.loads`` reads."""
    body = json.dumps(values, indent=indent, ensure_ascii=ascii_only).encode()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jobs, "_READ_BYTES", block)
        assert records_of(b" \n" + body + b"\n") == list(enumerate(values, start=1))


@pytest.mark.parametrize(
    "body",
    [b"[1, ", b"[1 2]", b"[1,]", b"[1] 2", b"[" * 5000 + b"]" * 5000, b'["\xff"]', b"[tru]"],
)
def test_a_broken_json_array_is_refused(body: bytes, monkeypatch: Any) -> None:
    monkeypatch.setattr(jobs, "_READ_BYTES", 3)
    with pytest.raises(ImportBodyError, match="not"):
        records_of(body)


def test_json_lines_are_numbered_by_line_and_long_lines_refused(monkeypatch: Any) -> None:
    monkeypatch.setattr(jobs, "MAX_RECORD_BYTES", 100)
    body = b'{"input": "a"}\n\n  \n' + b'{"input": "' + b"x" * 300 + b'"}\n{"input": "b"}\r\n'
    records = records_of(body)
    assert [number for number, _ in records] == [1, 4, 5]
    checked = [validate_record(record) for _, record in records]
    assert checked[1] == "the line is longer than 100 bytes"
    assert [example.input for example in checked if not isinstance(example, str)] == ["a", "b"]
    # Nesting deep enough for a RecursionError in a parser is one bad line, not a crash.
    deep = b'{"input": "a", "metadata": {"k": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    assert isinstance(validate_record(deep), str)
    assert isinstance(validate_record({"input": "a", "metadata": nested(100_000)}), str)


def nested(depth: int) -> Any:
    value: Any = {}
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[JobWorker]:
    settings = Settings(
        data_dir=tmp_path, embedder="hashing", import_chunk_size=10, job_lease_s=0.5
    )
    engine = Engine(settings)
    engine.load_models()
    running = JobWorker(engine)
    running.start()
    engine.create_pool("p", "")
    yield running
    running.stop(5.0)
    engine.close()


def submit(worker: JobWorker, examples: list[dict[str, Any]]) -> str:
    writer = worker.check_import("p", None)
    writer.write(jsonl(examples))
    job_id: str = worker.submit_import("p", writer.finish())["id"]
    return job_id


def finished(worker: JobWorker, job_id: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = worker.store.get_job(job_id)
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.02)
    raise TimeoutError(job_id)


def test_a_failing_job_fails_alone(worker: JobWorker, monkeypatch: Any) -> None:
    prepare = worker.engine.prepare
    calls = iter(range(1_000))

    def fails_on_the_second_chunk(examples: Any, **options: Any) -> Any:
        if next(calls) == 1:
            raise RuntimeError("a bug in one job")
        return prepare(examples, **options)

    monkeypatch.setattr(worker.engine, "prepare", fails_on_the_second_chunk)
    failed = finished(worker, submit(worker, make_examples(30)))
    assert failed["status"] == "failed"
    assert failed["message"] == "internal error during the job (RuntimeError)"
    assert failed["done"] == 10 and not failed["resumable"]
    assert worker.store.get_pool("p")["size"] == 0, "a failed import adds nothing"
    after = finished(worker, submit(worker, make_examples(30, start=100)))
    assert (after["status"], after["inserted"]) == ("succeeded", 30)
    assert worker.store.get_pool("p")["size"] == 30


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_worker_thread_is_restarted_and_its_job_resumed(
    worker: JobWorker, monkeypatch: Any
) -> None:
    run = worker._run
    died = threading.Event()

    def dies_once(job: dict[str, Any]) -> None:
        if not died.is_set():
            died.set()
            raise SystemExit("the thread dies with the job claimed")
        run(job)

    monkeypatch.setattr(worker, "_run", dies_once)
    job_id = submit(worker, make_examples(25))
    # Restarted; the job it held is claimed again once its lease (0.5 s) ran out.
    job = finished(worker, job_id)
    assert died.is_set() and worker.restarts == 1
    assert (job["status"], job["inserted"], job["duplicates"]) == ("succeeded", 25, 0)


def test_too_little_free_space_refuses_an_import(worker: JobWorker) -> None:
    worker.settings.min_free_bytes = 2**62
    with pytest.raises(ApiError) as refused:
        worker.check_import("p", 10)
    assert (refused.value.status, refused.value.type) == (507, "storage_full")
    assert list(worker.store.spool_dir.iterdir()) == []


def test_a_job_past_its_time_limit_fails_at_a_chunk_boundary(
    worker: JobWorker, monkeypatch: Any
) -> None:
    prepare = worker.engine.prepare

    def slow(examples: Any, **options: Any) -> Any:
        time.sleep(0.1)
        return prepare(examples, **options)

    monkeypatch.setattr(worker.engine, "prepare", slow)
    monkeypatch.setattr(worker.settings, "job_timeout_s", 0.35)
    job = finished(worker, submit(worker, make_examples(200)))
    assert job["status"] == "failed" and "time limit of 0.35 s" in job["message"]
    assert 0 < job["done"] < 200 and worker.store.get_pool("p")["size"] == 0


def test_an_import_bumps_the_version_once(worker: JobWorker, monkeypatch: Any) -> None:
    """Chunks (10 rows here) commit one by one beside the pool; readers see none of them
    until the import ends, in one transaction and one version; an import of duplicates
    only changes nothing and bumps nothing."""
    start = worker.store.pool_version("p")
    prepare = worker.engine.prepare
    seen: list[tuple[int, int]] = []

    def watched(examples: Any, **options: Any) -> Any:
        seen.append((worker.store.pool_version("p"), worker.store.get_pool("p")["size"]))
        return prepare(examples, **options)

    monkeypatch.setattr(worker.engine, "prepare", watched)
    job = finished(worker, submit(worker, make_examples(35)))
    assert (job["status"], job["inserted"]) == ("succeeded", 35)
    assert seen == [(start, 0)] * 4  # chunks of 10, 10, 10, 5: all before any is visible
    assert worker.store.pool_version("p") == start + 1
    assert finished(worker, submit(worker, make_examples(20)))["duplicates"] == 20
    assert worker.store.pool_version("p") == start + 1
    again = make_examples(20) + make_examples(15, start=35)  # 20 duplicates, then new rows
    job = finished(worker, submit(worker, again))
    assert (job["inserted"], job["duplicates"]) == (15, 20)
    assert worker.store.pool_version("p") == start + 2
    assert worker.store.read_pool("p").version == start + 2
