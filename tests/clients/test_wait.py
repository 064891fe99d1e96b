"""mmdshot_client.wait.wait_for_job: against the running service (an import to its end), and
over a scripted transport for the outcomes a real job rarely shows on cue (a failure, a job
that outlasts the timeout, an unknown id)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from mmdshot_client import Client
from mmdshot_client.api.imports import imports_create
from mmdshot_client.api.pools import pools_create, pools_get
from mmdshot_client.models import ExampleIn, Job, PoolCreate, PoolInfo
from mmdshot_client.wait import JobFailed, JobTimeout, wait_for_job

from tests.app.conftest import make_examples

JOB_ID = "0" * 32


def test_waits_for_an_import_to_commit_everything(api: Client) -> None:
    pools_create.sync(client=api, body=PoolCreate(name="waited"))
    body = [ExampleIn.from_dict(example) for example in make_examples(250)]
    started = imports_create.sync("waited", client=api, body=body)
    assert isinstance(started, Job)
    seen: list[Job] = []
    job = wait_for_job(api, started.id, timeout=60, interval=0.01, progress=seen.append)
    assert (job.status, job.done, job.total, job.inserted) == ("succeeded", 250, 250, 250)
    assert seen[-1] is job and [state.done for state in seen] == sorted(s.done for s in seen)
    pool = pools_get.sync("waited", client=api)
    assert isinstance(pool, PoolInfo) and pool.size == 250


def job_body(status: str, done: int, message: str | None = None) -> dict[str, object]:
    return {
        "id": JOB_ID,
        "kind": "import",
        "pool": "p",
        "status": status,
        "total": 10,
        "done": done,
        "inserted": done,
        "updated": 0,
        "duplicates": 0,
        "errors": [],
        "message": message,
        "calibration": None,
        "created_at": 0.0,
        "updated_at": 0.0,
        "created_at_iso": "1970-01-01T00:00:00+00:00",
        "updated_at_iso": "1970-01-01T00:00:00+00:00",
    }


def scripted(answers: Iterator[tuple[int, dict[str, object]]]) -> Client:
    """A client whose every request gets the next of ``answers``."""

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == f"/v1/jobs/{JOB_ID}"
        status, body = next(answers)
        return httpx.Response(status, content=json.dumps(body).encode())

    return Client(
        base_url="http://mmdshot.test", httpx_args={"transport": httpx.MockTransport(answer)}
    )


def test_a_failed_job_raises_with_its_last_state() -> None:
    answers = iter([(200, job_body("running", 4)), (200, job_body("failed", 6, "disk full"))])
    with pytest.raises(JobFailed, match="disk full") as failed:
        wait_for_job(scripted(answers), JOB_ID, interval=0)
    assert failed.value.job.done == 6
    answers = iter([(200, job_body("failed", 6, "disk full"))])
    job = wait_for_job(scripted(answers), JOB_ID, raise_on_failure=False)
    assert job.status == "failed"


def test_a_job_still_running_at_the_timeout_raises() -> None:
    answers = iter([(200, job_body("running", 3))] * 1000)
    with pytest.raises(JobTimeout, match=r"still running after 0.05 s \(3/10 done\)"):
        wait_for_job(scripted(answers), JOB_ID, timeout=0.05, interval=0.01)


def test_an_unknown_job_raises_the_service_message() -> None:
    error = {"error": {"type": "not_found", "message": "job 000 does not exist", "detail": None}}
    with pytest.raises(RuntimeError, match="404: job 000 does not exist"):
        wait_for_job(scripted(iter([(404, error)])), JOB_ID)
