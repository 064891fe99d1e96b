"""Large imports as background jobs, and the progress of every job (imports, calibrations):
get, cancel, resume."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response, status
from starlette.concurrency import run_in_threadpool

from app.auth import ReadAccess, WriteAccess
from app.deps import JobsDep, PoolPath
from app.errors import error_responses, require_media_type
from app.schemas import Job

router = APIRouter(tags=["imports"])

_BODY = {
    "requestBody": {
        "required": True,
        "description": "Examples as JSON lines (one ExampleIn per line) or a JSON array.",
        "content": {
            "application/x-ndjson": {
                "schema": {"type": "string"},
                "example": '{"input": "great ride", "output": "positive"}\n'
                '{"input": "it crashed", "output": "negative"}\n',
            },
            "application/json": {
                "schema": {"type": "array", "items": {"$ref": "#/components/schemas/ExampleIn"}}
            },
        },
    }
}
_WRITE_BYTES = 2**20
JobPath = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="Job id.")]


@router.post(
    "/v1/pools/{pool}/imports",
    name="create",
    response_model=Job,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Import examples in the background; bad lines are reported, good ones kept",
    description="The body is written to the store as it arrives (at most `max_import_bytes`, "
    "413 beyond) and parsed by the job, one line (or array element) at a time: `total` is "
    "known once the job has counted the records. A body that is not a JSON array nor JSON "
    "lines fails the job with a message; each bad line is one of its `errors`.",
    openapi_extra=_BODY,
    dependencies=[
        WriteAccess,
        Depends(require_media_type("application/x-ndjson", "application/json")),
    ],
    responses=error_responses(401, 403, 404, 413, 415, 422, 429, 503, 507),
)
async def create_import(pool: PoolPath, request: Request, response: Response, jobs: JobsDep) -> Job:
    declared = request.headers.get("content-length")
    size = int(declared) if declared is not None and declared.isdigit() else None
    writer = await run_in_threadpool(jobs.check_import, pool, size)
    try:
        # Written off the event loop in blocks of about 1 MiB; never held whole.
        pending: list[bytes] = []
        buffered = 0
        async for data in request.stream():
            pending.append(data)
            buffered += len(data)
            if buffered >= _WRITE_BYTES:
                await run_in_threadpool(writer.write, b"".join(pending))
                pending, buffered = [], 0
        await run_in_threadpool(writer.write, b"".join(pending))
        spooled = await run_in_threadpool(writer.finish)
    except BaseException:
        await run_in_threadpool(writer.discard)
        raise
    job = Job(**await run_in_threadpool(jobs.submit_import, pool, spooled))
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job


@router.get(
    "/v1/jobs/{job_id}",
    name="get",
    response_model=Job,
    summary="A job's status and progress: an import's per-line errors, a calibration's result",
    dependencies=[ReadAccess],
    responses=error_responses(401, 404, 422),
)
def get_job(job_id: JobPath, jobs: JobsDep) -> Job:
    return Job(**jobs.store.get_job(job_id))


def _job_action(action: str, summary: str, description: str, status_code: int) -> Any:
    """The route decorator of ``POST /v1/jobs/{job_id}/<action>`` (cancel, resume)."""
    return router.post(
        f"/v1/jobs/{{job_id}}/{action}",
        name=action,
        response_model=Job,
        status_code=status_code,
        summary=summary,
        description=description,
        dependencies=[WriteAccess],
        responses=error_responses(401, 403, 404, 409, 422, 507),
    )


@_job_action(
    "cancel",
    "Cancel a queued or running job",
    "A queued job never starts; a running one commits nothing after this answer "
    "and the chunks it staged are dropped (an import is all or nothing). 409 for a job that "
    "already ended.",
    status.HTTP_200_OK,
)
def cancel_job(job_id: JobPath, jobs: JobsDep) -> Job:
    return Job(**jobs.store.cancel_job(job_id))


@_job_action(
    "resume",
    "Queue again a job that failed resumably (e.g. storage_full)",
    "The job continues after its last committed chunk. 409 for a job that is not `resumable`.",
    status.HTTP_202_ACCEPTED,
)
def resume_job(job_id: JobPath, jobs: JobsDep) -> Job:
    job = Job(**jobs.store.resume_job(job_id))
    jobs.wake()
    return job
