"""Waiting for a background job (an import or a calibration) to end.

Hand-written, not generated: ``scripts/clients.sh`` keeps this file when it regenerates the
package around it.

    from mmdshot_client.wait import wait_for_job
    job = wait_for_job(api, started.id, timeout=120)   # raises JobFailed unless it succeeded
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .api.imports import imports_get
from .client import AuthenticatedClient, Client
from .models import ErrorBody, Job

__all__ = ["JobFailed", "JobTimeout", "wait_for_job"]

RUNNING = frozenset({"queued", "running"})


class JobFailed(RuntimeError):
    """The job ended in a status other than ``succeeded``; ``job`` is its last state."""

    def __init__(self, job: Job) -> None:
        super().__init__(f"job {job.id} {job.status}: {job.message or 'no message'}")
        self.job = job


class JobTimeout(TimeoutError):
    """The job was still queued or running after ``timeout`` seconds; ``job`` is its last
    state (it keeps running on the server)."""

    def __init__(self, job: Job, timeout: float) -> None:
        super().__init__(
            f"job {job.id} still {job.status} after {timeout:g} s ({job.done}/{job.total} done)"
        )
        self.job = job


def wait_for_job(
    client: Client | AuthenticatedClient,
    job_id: str,
    *,
    timeout: float = 600.0,
    interval: float = 0.25,
    progress: Callable[[Job], object] | None = None,
    raise_on_failure: bool = True,
) -> Job:
    """Polls ``GET /v1/jobs/{job_id}`` every ``interval`` seconds until the job ends and
    returns it. ``progress`` is called with every state polled (``done`` of ``total``).
    Raises :class:`JobFailed` when it ended other than ``succeeded`` (unless
    ``raise_on_failure`` is false), :class:`JobTimeout` after ``timeout`` seconds, and
    ``RuntimeError`` with the server's message when the job cannot be read (unknown id)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = imports_get.sync_detailed(job_id, client=client)
        if not isinstance(answer.parsed, Job):
            message = (
                answer.parsed.error.message
                if isinstance(answer.parsed, ErrorBody)
                else answer.content.decode(errors="replace")
            )
            raise RuntimeError(f"GET /v1/jobs/{job_id}: {answer.status_code}: {message}")
        job = answer.parsed
        if progress is not None:
            progress(job)
        if job.status not in RUNNING:
            if raise_on_failure and job.status != "succeeded":
                raise JobFailed(job)
            return job
        if time.monotonic() >= deadline:
            raise JobTimeout(job, timeout)
        time.sleep(interval)
