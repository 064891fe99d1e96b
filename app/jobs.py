"""Background imports: parse a JSONL (or JSON array) body, then embed and commit it chunk by
chunk on one worker thread. Each chunk and the job's counters commit in one transaction, so
``done`` is exactly what the pool holds; a job left unfinished by a crash is marked failed at
the next start."""

from __future__ import annotations

import json
import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from app.engine import Engine
from app.errors import ApiError
from app.schemas import ExampleIn

logger = logging.getLogger(__name__)

INTERRUPTED = "the server stopped before the import finished"


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
        except json.JSONDecodeError as exc:
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
class _Task:
    job_id: str
    pool: str
    parsed: ParsedImport


class ImportWorker:
    """One thread that runs import jobs in order from a bounded queue (429 when full)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = engine.store
        self.chunk_size = engine.settings.import_chunk_size
        self._tasks: queue.Queue[_Task] = queue.Queue(maxsize=engine.settings.import_queue)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="imports", daemon=True)

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
        try:
            self._tasks.put_nowait(_Task(job_id, pool, parsed))
        except queue.Full as exc:
            self.store.set_job_status(job_id, "failed", "the import queue is full")
            raise ApiError(429, "overloaded", "too many imports are waiting; retry later") from exc
        return self.store.get_job(job_id)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                task = self._tasks.get(timeout=0.2)
            except queue.Empty:
                continue
            self._run(task)

    def _run(self, task: _Task) -> None:
        self.store.set_job_status(task.job_id, "running")
        examples, lines = task.parsed.examples, task.parsed.lines
        try:
            for start in range(0, len(examples), self.chunk_size):
                if self._stopping.is_set():
                    return  # stop() marks the job failed
                chunk = slice(start, start + self.chunk_size)
                prepared = self.engine.prepare(examples[chunk])
                self.store.upsert(task.pool, prepared, lines[chunk], job_id=task.job_id)
        except ApiError as exc:  # the pool was deleted, or the model changed under the job
            self.store.set_job_status(task.job_id, "failed", exc.message)
            return
        except Exception:
            logger.exception("import %s failed", task.job_id)
            self.store.set_job_status(task.job_id, "failed", "internal error during the import")
            return
        self.store.set_job_status(task.job_id, "succeeded")
