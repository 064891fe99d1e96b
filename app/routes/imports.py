"""Large imports as background jobs, and the progress of every job (imports, calibrations)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, status

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


@router.post(
    "/v1/pools/{pool}/imports",
    name="create",
    response_model=Job,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Import examples in the background; bad lines are reported, good ones kept",
    openapi_extra=_BODY,
    responses=error_responses(404, 413, 415, 422, 429, 503),
    dependencies=[Depends(require_media_type("application/x-ndjson", "application/json"))],
)
async def create_import(pool: PoolPath, request: Request, response: Response, jobs: JobsDep) -> Job:
    job = Job(**jobs.submit(pool, await request.body()))
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job


@router.get(
    "/v1/jobs/{job_id}",
    name="get",
    response_model=Job,
    summary="A job's status and progress: an import's per-line errors, a calibration's result",
    responses=error_responses(404, 422),
)
async def get_job(job_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")], jobs: JobsDep) -> Job:
    return Job(**jobs.store.get_job(job_id))
