"""Background jobs (imports, calibrations), durable in the store and run by one supervised
worker thread per replica.

An import's body is spooled as it arrives (:class:`SpoolWriter`) and handed to the store with
its job (SQLite: a synced file in ``data_dir/spool``; PostgreSQL: the database), so the queue
is the store's ``jobs`` table and holds no parsed bodies. The worker claims the oldest waiting
job (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, under a lease it renews), reads the body record
by record (:func:`import_records`: JSON lines one line at a time, a JSON array one element at a
time) and commits it chunk by chunk beside the pool (``import_rows``): each chunk and the
job's progress commit in one transaction, so a job resumed elsewhere (its replica died or
handed it back) or after a restart continues after its last committed chunk. At the end one
transaction moves the staged rows into the pool, bumps its version once and ends the job:
every valid line is stored exactly once, and readers see the pool before the import or after
it, never a part of it.

Calibrations are checked (and their cost bounded) when submitted, and checked again between
their settings (cancellation, time limit, shutdown). A job's failure fails that job only; a
storage failure leaves it ``failed`` but ``resumable``.
"""

from __future__ import annotations

import codecs
import errno
import functools
import itertools
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from pydantic import ValidationError

import selector
from app.embedders import EmbeddingUnavailable
from app.engine import Engine
from app.errors import ApiError, from_embedding_error
from app.schemas import CalibrateRequest, ExampleIn
from app.store import ClaimLost, JobStep
from selector.errors import SelectorError

logger = logging.getLogger(__name__)

MAX_RECORD_BYTES = 4 * 2**20
"""The longest JSON line or array element; a longer one is a bad line."""
_READ_BYTES = 2**20
_LOOKAHEAD = 64
_JSON_VALUE = re.compile(r"[^ \t\n\r]")
_NO_SPACE = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
POLL_SECONDS = 0.5


class ImportBodyError(Exception):
    """The body cannot be read as an import at all (a broken JSON array, no records)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _TooLong:
    """Stands for a JSON line longer than :data:`MAX_RECORD_BYTES`."""


def _jsonl_records(body: BinaryIO) -> Iterator[tuple[int, bytes | _TooLong]]:
    """``(line number, line)`` of each non-blank line, read one line at a time."""
    for number in itertools.count(1):
        line = body.readline(MAX_RECORD_BYTES + 1)
        if not line:
            return
        if len(line) > MAX_RECORD_BYTES:
            while line and not line.endswith(b"\n"):
                line = body.readline(_READ_BYTES)
            yield number, _TooLong()
        elif line.strip():
            yield number, line


def _array_records(body: BinaryIO) -> Iterator[tuple[int, Any]]:
    """``(element number, value)`` of each element of a JSON array, decoded one element at a
    time from a buffer of about one element; :class:`ImportBodyError` where it is broken."""
    decoder = json.JSONDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8")()
    text, position, ended, number = "", 0, False, 0

    def read_more() -> bool:
        nonlocal text, position, ended
        if ended:
            return False
        block = body.read(_READ_BYTES)
        ended = not block
        try:
            decoded = utf8.decode(block, final=ended)
        except UnicodeDecodeError as exc:
            raise ImportBodyError(f"the body is not UTF-8: {exc.reason}") from exc
        text, position = text[position:] + decoded, 0
        return True

    def next_char() -> str | None:
        nonlocal position
        while (found := _JSON_VALUE.search(text, position)) is None:
            position = len(text)
            if not read_more():
                return None
        position = found.start()
        return text[position]

    def broken(reason: str) -> ImportBodyError:
        return ImportBodyError(f"the body is not a JSON array: {reason} (element {number})")

    def decode_element() -> tuple[Any, int]:
        while True:
            if next_char() is None:
                raise broken("it ends before ]")
            try:
                value, end = decoder.raw_decode(text, position)
            except json.JSONDecodeError as exc:
                incomplete = exc.pos >= len(text) - _LOOKAHEAD or exc.msg.startswith(
                    "Unterminated string"
                )
                if len(text) - position > MAX_RECORD_BYTES:
                    raise broken(f"an element longer than {MAX_RECORD_BYTES} bytes") from exc
                if incomplete and read_more():
                    continue
                raise broken(exc.msg) from exc
            except RecursionError as exc:
                raise broken("an element nested too deeply") from exc
            # A number or literal that ends the buffer may go on in the next block.
            if end >= len(text) - _LOOKAHEAD and read_more():
                continue
            return value, end

    if next_char() != "[":
        raise broken("it does not start with [")
    position += 1
    if next_char() == "]":
        position += 1
    else:
        while True:
            number += 1
            value, position = decode_element()
            yield number, value
            separator = next_char()
            position += 1
            if separator == "]":
                break
            if separator != ",":
                raise broken("expected , or ] after an element")
    if next_char() is not None:
        raise broken("data after the closing ]")


def import_records(body: BinaryIO) -> Iterator[tuple[int, Any]]:
    """The records of an import body from its start: a JSON array (numbered by element) when
    its first character is ``[``, else JSON lines (numbered by line, blank lines skipped)."""
    body.seek(0)
    while (start := body.read(4096)) and not start.strip():
        pass  # leading blank space
    body.seek(0)
    if start.lstrip().startswith(b"["):
        return _array_records(body)
    return _jsonl_records(body)


def _validation_message(exc: ValidationError) -> str:
    problem = exc.errors()[0]
    where = ".".join(str(part) for part in problem["loc"])
    return f"{where}: {problem['msg']}" if where else problem["msg"]


def validate_record(record: Any) -> ExampleIn | str:
    """The example a record holds, or why it holds none."""
    try:
        if isinstance(record, _TooLong):
            return f"the line is longer than {MAX_RECORD_BYTES} bytes"
        if isinstance(record, bytes):
            return ExampleIn.model_validate_json(record)
        return ExampleIn.model_validate(record)
    except ValidationError as exc:
        return _validation_message(exc)
    except RecursionError:
        return "the record is nested too deeply"


class SpoolWriter:
    """An import body written to a new file in ``folder`` as it arrives: 413 past ``limit``
    bytes, 507 when the disk is full or less than ``min_free`` bytes would be left, 422 for a
    body with no records; :meth:`finish` syncs it and returns its path."""

    def __init__(self, folder: Path, limit: int, min_free: int, on_full: Callable[..., Any]):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.limit, self.min_free, self.on_full = folder, limit, min_free, on_full
        self.path = folder / f"incoming-{uuid.uuid4().hex}"
        self._file = self.path.open("xb")
        self.size = 0
        self._has_content = False

    def check_space(self, needed: int) -> None:
        free = shutil.disk_usage(self.folder).free
        if free < needed + self.min_free:
            raise self.on_full(OSError(errno.ENOSPC, f"{free} bytes free, {needed} needed"))

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise ApiError(413, "payload_too_large", f"the import exceeds {self.limit} bytes")
        self._has_content = self._has_content or bool(data.strip())
        self.check_space(len(data))
        try:
            self._file.write(data)
        except OSError as exc:
            if exc.errno in _NO_SPACE:
                raise self.on_full(exc) from exc
            raise

    def finish(self) -> Path:
        if not self._has_content:
            raise ApiError(422, "invalid_input", "the import holds no records")
        try:
            self._file.flush()
            # Durable before its job is: the job row commits after this.
            os.fsync(self._file.fileno())
        except OSError as exc:
            if exc.errno in _NO_SPACE:
                raise self.on_full(exc) from exc
            raise
        self._file.close()
        return self.path

    def discard(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


class _HandBack(Exception):
    """The replica is shutting down: release the job at this boundary."""


class _TimedOut(Exception):
    pass


class JobWorker:
    """Claims and runs this replica's jobs on one thread; a supervisor thread renews the
    running job's lease and restarts the worker thread should it ever die."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = engine.store
        self.settings = engine.settings
        self._wake = threading.Event()
        self._draining = threading.Event()
        self._closed = threading.Event()
        self._claim_lost = threading.Event()
        self._running: str | None = None
        self._thread: threading.Thread | None = None
        self._supervisor = threading.Thread(target=self._supervise, name="jobs-supervisor")
        self._supervisor.daemon = True
        self.restarts = 0

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self.store.clean_spool()
        self._start_worker()
        self._supervisor.start()

    def _start_worker(self) -> None:
        self._thread = threading.Thread(target=self._work, name="jobs", daemon=True)
        self._thread.start()

    def begin_shutdown(self) -> None:
        """Claim no more jobs; the running one is handed back at its next boundary."""
        self._draining.set()
        self._wake.set()

    @property
    def idle(self) -> bool:
        return self._running is None

    def stop(self, timeout: float) -> None:
        """Shut down within ``timeout`` seconds: a job still running then is handed back
        where it is (its worker's next commit finds the claim gone)."""
        self.begin_shutdown()
        if self._thread is not None:
            self._thread.join(timeout)
        running = self._running
        if running is not None:
            try:
                self.store.release_job(running)
            except Exception:
                logger.exception("could not hand back job %s", running)
        self._closed.set()

    def _supervise(self) -> None:
        renewed = time.monotonic()
        while not self._closed.wait(POLL_SECONDS):
            thread = self._thread
            if thread is not None and not thread.is_alive() and not self._draining.is_set():
                logger.error("the job worker died; restarting it")
                self.restarts += 1
                self._start_worker()
            running = self._running
            if running is None or time.monotonic() - renewed < self.settings.job_lease_s / 3:
                continue
            renewed = time.monotonic()
            try:
                self.store.renew_claim(running)
            except ClaimLost:
                self._claim_lost.set()
            except Exception:
                logger.exception("could not renew the lease of job %s", running)

    # --- submitting ----------------------------------------------------------------------

    def _check_queue(self) -> None:
        if self.store.count_queued_jobs() >= self.settings.import_queue:
            raise ApiError(429, "overloaded", "too many jobs are waiting; retry later")

    def check_import(self, pool: str, declared: int | None) -> SpoolWriter:
        """Refuse an import before its body is read (503, 404, 413, 429, 507); else a writer
        for its body."""
        self.engine.require_ready()
        self.store.pool_version(pool)
        limit = self.settings.max_import_bytes
        if declared is not None and declared > limit:
            raise ApiError(413, "payload_too_large", f"the import exceeds {limit} bytes")
        self._check_queue()
        writer = SpoolWriter(
            self.store.spool_dir, limit, self.settings.min_free_bytes, self.store.note_storage_full
        )
        try:
            writer.check_space(declared or 0)
        except ApiError:
            writer.discard()
            raise
        return writer

    def wake(self) -> None:
        """A job was queued: look for it now rather than at the next poll."""
        self._wake.set()

    def submit_import(self, pool: str, body: Path) -> dict[str, Any]:
        """Queue the import of the spooled ``body``; returns the job."""
        job_id = self.store.create_import_job(pool, body)
        self._wake.set()
        return self.store.get_job(job_id)

    def submit_calibration(self, pool: str, request: CalibrateRequest) -> dict[str, Any]:
        """Check ``request`` against the pool and its cost (4xx at once) and queue the
        calibration; returns the job, whose ``total`` counts the settings (each tau, knn)."""
        plan = self.engine.plan_calibration(pool, request)
        cost = request.validation_size * request.k * plan.settings * plan.snapshot.pool.size
        budget = self.settings.calibration_budget
        if cost > budget:
            raise ApiError(
                422,
                "invalid_input",
                f"the calibration costs validation_size x k x settings x pool size = "
                f"{request.validation_size} x {request.k} x {plan.settings} x "
                f"{plan.snapshot.pool.size} = {cost:.3g}, over the budget of {budget:.3g}; "
                "hold out fewer examples, or try fewer taus or a smaller k",
                {"cost": cost, "budget": budget},
            )
        self._check_queue()
        job_id = self.store.create_calibration_job(pool, plan.settings, request.model_dump_json())
        self._wake.set()
        return self.store.get_job(job_id)

    # --- running -------------------------------------------------------------------------

    def _work(self) -> None:
        while not self._draining.is_set():
            job = None
            if self.engine.ready:  # a job resumed at start waits for the model
                try:
                    job = self.store.claim_job()
                except Exception:
                    logger.exception("could not claim a job")
            if job is None:
                self._wake.wait(POLL_SECONDS)
                self._wake.clear()
                continue
            self._claim_lost.clear()
            self._running = job["id"]
            try:
                self._run(job)
            finally:
                self._running = None

    def _run(self, job: dict[str, Any]) -> None:
        job_id = job["id"]
        deadline = time.monotonic() + self.settings.job_timeout_s
        try:
            if job["kind"] == "import":
                self._import(job, deadline)
            else:
                self._calibrate(job, deadline)
        except _HandBack:
            self._end(self.store.release_job, job_id)
        except ClaimLost:
            logger.info("job %s was cancelled or taken over", job_id)
        except ApiError as exc:
            # A full store keeps the job's body and progress: it resumes once there is room.
            resumable = exc.type == "storage_full"
            self._end(self.store.finish_job, job_id, "failed", exc.message, resumable)
        except EmbeddingUnavailable as exc:
            # Nothing of the failed chunk was stored: resumed, the job embeds it again.
            message = from_embedding_error(exc).message
            self._end(self.store.finish_job, job_id, "failed", message, True)
        except (SelectorError, ImportBodyError) as exc:
            self._end(self.store.finish_job, job_id, "failed", exc.message)
        except _TimedOut:
            message = f"the job ran past its time limit of {self.settings.job_timeout_s:g} s"
            self._end(self.store.finish_job, job_id, "failed", message)
        except Exception as exc:
            logger.exception("job %s failed", job_id)
            message = f"internal error during the job ({type(exc).__name__})"
            self._end(self.store.finish_job, job_id, "failed", message)

    @staticmethod
    def _end(action: Callable[..., None], job_id: str, *args: Any) -> None:
        """Record how a job ended; if even that fails (no space), its lease runs out and the
        job is claimed again later."""
        try:
            action(job_id, *args)
        except ClaimLost:
            pass
        except Exception:
            logger.exception("could not record the end of job %s", job_id)

    def _checkpoint(self, job_id: str, deadline: float, done: int | None = None) -> None:
        """Between chunks and settings: hand back on shutdown, stop a cancelled job or one
        past its time limit."""
        if self._draining.is_set():
            raise _HandBack
        if self._claim_lost.is_set():
            raise ClaimLost(job_id)
        if time.monotonic() > deadline:
            raise _TimedOut
        if done is not None:
            self.store.renew_claim(job_id, done)

    def _prepare(
        self,
        embedder: selector.Embedder,
        examples: list[ExampleIn],
        lines: list[int],
        errors: list[dict[str, Any]],
        tokenizer: str,
    ) -> list[Any]:
        """The chunk's valid examples embedded; a record whose embedding the pool refuses
        (missing, unwanted, a bad vector) becomes a bad line in ``errors`` and leaves
        ``examples`` and ``lines``."""
        kept = []
        for example, line in zip(examples, lines, strict=True):
            problem = self.engine.vector_problem(example, embedder)
            if problem is None:
                kept.append((example, line))
            else:
                errors.append({"line": line, "message": problem})
        errors.sort(key=lambda error: error["line"])
        examples[:] = [example for example, _ in kept]
        lines[:] = [line for _, line in kept]
        return self.engine.prepare(examples, embedder, tokenizer) if examples else []

    def _import(self, job: dict[str, Any], deadline: float) -> None:
        job_id, pool = job["id"], job["pool"]
        tokenizer = self.store.pool_tokenizer(pool)
        embedder = self.engine.embedder_for(pool)
        with self.store.open_job_body(job_id) as body:
            if job["total"] == 0:  # first run: count the records, check a JSON array
                total = sum(1 for _ in import_records(body))
                if total == 0:
                    raise ImportBodyError("the import holds no records")
                self.store.set_job_total(job_id, total)
            records = import_records(body)
            for _ in itertools.islice(records, job["done"]):
                pass  # committed before the job was resumed
            while chunk := list(itertools.islice(records, self.settings.import_chunk_size)):
                self._checkpoint(job_id, deadline)
                examples, lines, errors = [], [], []
                for line, record in chunk:
                    checked = validate_record(record)
                    if isinstance(checked, str):
                        errors.append({"line": line, "message": checked})
                    else:
                        examples.append(checked)
                        lines.append(line)
                prepared = self._prepare(embedder, examples, lines, errors, tokenizer)
                step = JobStep(job_id, self.store.owner, len(chunk), errors)
                self.store.stage_import(pool, prepared, lines, step)
        self._checkpoint(job_id, deadline)
        outcome = self.store.apply_import(pool, job_id)
        if outcome.inserted or outcome.updated:
            self.engine.refresh(pool)  # in this thread, not on the next selection's clock

    def _calibrate(self, job: dict[str, Any], deadline: float) -> None:
        job_id = job["id"]
        plan = self.engine.plan_calibration(
            job["pool"], CalibrateRequest.model_validate_json(job["request"])
        )
        scorer = plan.scorer
        if scorer is None:
            label_ids = plan.snapshot.pool.label_ids
            assert label_ids is not None  # a pool without labels has an output scorer

            def label_purity(rows: np.ndarray, chosen: np.ndarray) -> float:
                return selector.label_purity(label_ids[rows], label_ids[chosen])

            scorer = label_purity
        scored = 0
        self._checkpoint(job_id, deadline, scored)

        @functools.wraps(scorer)
        def checked(rows: np.ndarray, chosen: np.ndarray) -> float:
            nonlocal scored
            score = scorer(rows, chosen)
            scored += 1
            self._checkpoint(job_id, deadline, scored)
            return score

        calibration = self.engine.calibrate(replace(plan, scorer=checked))
        created_at = plan.snapshot.rows.created_at
        self.store.save_calibration(job["pool"], created_at, calibration, job_id)
