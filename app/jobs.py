"""Background jobs on one worker thread, from one bounded queue (429 when full).

Imports: parse a JSONL (or JSON array) body, then embed and commit it chunk by chunk. Each
chunk and the job's counters commit in one transaction, so ``done`` is exactly what the pool
holds. Calibrations: choose the pool's tau on a validation split carved from it (validated
when submitted, so bad input is refused at once); the result and the job's success commit
together. A job left unfinished by a crash is marked failed at the next start."""

from __future__ import annotations

import json
import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from app.engine import CalibrationPlan, Engine
from app.errors import ApiError
from app.schemas import CalibrateRequest, ExampleIn
from selector.errors import SelectorError

logger = logging.getLogger(__name__)

INTERRUPTED = "the server stopped before the job finished"


@dataclass(frozen=True)
class ParsedImport:
    """The valid examples with their line numbers, and one error per bad line."""

    examples: list[ExampleIn]
    lines: list[int]
    errors: list[dict[str, Any]]

    @property
    def total(self) -> int:
        return len(self.examples) + len(self.errors)


def _validation_message(exc: ValidationError) -> str:
    problem = exc.errors()[0]
    where = ".".join(str(part) for part in problem["loc"])
    return f"{where}: {problem['msg']}" if where else problem["msg"]


def parse_import(body: bytes) -> ParsedImport:
    """Split ``body`` into records: a JSON array (numbered by element) or JSON lines
    (numbered by line, blank lines skipped), and validate each on its own."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(422, "invalid_input", f"the body is not UTF-8: {exc}") from exc
    records: list[tuple[int, str | Any]] = []
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:  # RecursionError: nested too deep
            raise ApiError(422, "invalid_input", f"the body is not a JSON array: {exc}") from exc
        records = list(enumerate(items, start=1))
    else:
        records = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not records:
        raise ApiError(422, "invalid_input", "the import holds no records")
    parsed = ParsedImport([], [], [])
    for line, record in records:
        try:
            if isinstance(record, str):
                example = ExampleIn.model_validate_json(record)
            else:
                example = ExampleIn.model_validate(record)
        except ValidationError as exc:
            parsed.errors.append({"line": line, "message": _validation_message(exc)})
            continue
        parsed.examples.append(example)
        parsed.lines.append(line)
    return parsed


@dataclass(frozen=True)
class _ImportTask:
    job_id: str
    pool: str
    parsed: ParsedImport


@dataclass(frozen=True)
class _CalibrationTask:
    job_id: str
    pool: str
    plan: CalibrationPlan


class JobWorker:
    """One thread that runs import and calibration jobs in order from a bounded queue."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = engine.store
        self.chunk_size = engine.settings.import_chunk_size
        self._tasks: queue.Queue[_ImportTask | _CalibrationTask] = queue.Queue(
            maxsize=engine.settings.import_queue
        )
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="jobs", daemon=True)

    def start(self) -> None:
        self.store.fail_unfinished_jobs(INTERRUPTED)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current chunk; unfinished jobs are marked failed."""
        self._stopping.set()
        self._thread.join()
        self.store.fail_unfinished_jobs(INTERRUPTED)

    def submit(self, pool: str, body: bytes) -> dict[str, Any]:
        """Parse ``body`` and queue its valid records; returns the job."""
        self.engine.require_ready()
        self.store.pool_version(pool)  # 404 before parsing a large body
        parsed = parse_import(body)
        job_id = self.store.create_job(pool, parsed.total, len(parsed.errors), parsed.errors)
        return self._queue(_ImportTask(job_id, pool, parsed))

    def submit_calibration(self, pool: str, request: CalibrateRequest) -> dict[str, Any]:
        """Check ``request`` against the pool (4xx at once) and queue the calibration; returns
        the job, whose ``total`` counts the settings to score (each tau, and knn)."""
        plan = self.engine.plan_calibration(pool, request)
        job_id = self.store.create_job(pool, plan.settings, 0, [], kind="calibration")
        return self._queue(_CalibrationTask(job_id, pool, plan))

    def _queue(self, task: _ImportTask | _CalibrationTask) -> dict[str, Any]:
        try:
            self._tasks.put_nowait(task)
        except queue.Full as exc:
            self.store.set_job_status(task.job_id, "failed", "the job queue is full")
            raise ApiError(429, "overloaded", "too many jobs are waiting; retry later") from exc
        return self.store.get_job(task.job_id)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                task = self._tasks.get(timeout=0.2)
            except queue.Empty:
                continue
            self._run(task)

    def _run(self, task: _ImportTask | _CalibrationTask) -> None:
        self.store.set_job_status(task.job_id, "running")
        try:
            if isinstance(task, _ImportTask):
                self._import(task)
            else:
                calibration = self.engine.calibrate(task.plan)
                created_at = task.plan.snapshot.rows.created_at
                self.store.save_calibration(task.pool, created_at, calibration, task.job_id)
        # The pool was deleted, or the model changed under the job; or the library refused.
        except (ApiError, SelectorError) as exc:
            self.store.set_job_status(task.job_id, "failed", exc.message)
        except Exception:
            logger.exception("job %s failed", task.job_id)
            self.store.set_job_status(task.job_id, "failed", "internal error during the job")

    def _import(self, task: _ImportTask) -> None:
        examples, lines = task.parsed.examples, task.parsed.lines
        for start in range(0, len(examples), self.chunk_size):
            if self._stopping.is_set():
                return  # stop() marks the job failed
            chunk = slice(start, start + self.chunk_size)
            prepared = self.engine.prepare(examples[chunk])
            self.store.upsert(task.pool, prepared, lines[chunk], job_id=task.job_id)
        self.store.set_job_status(task.job_id, "succeeded")
