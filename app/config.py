"""Service settings, read from ``MMDSHOT_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.schemas import MAX_TARGET_TEXTS, MAX_UPSERT_BATCH

ApiScope = Literal["read", "write"]
DEFAULT_READ_SHARE = 0.9
"""Selections' share of the compute time while writes wait (:attr:`Settings.read_share`)."""
DEFAULT_TOKENIZER = "default"
"""The tokenizer of a pool that names none: the model's ``tokenizer.json``, else the bundled
MiniLM's."""
TOKENIZER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SCOPES: tuple[ApiScope, ...] = ("read", "write")


class ApiKeyError(Exception):
    """A malformed ``MMDSHOT_API_KEYS`` entry or keys file. Deliberately not a ``ValueError``:
    pydantic would wrap that with the raw input, which holds the keys, into its message."""


@dataclass(frozen=True, repr=False)
class ApiKey:
    """One API key and the scope it grants (``read``: list, get, select; ``write``: also
    create, upsert, import, calibrate, delete)."""

    secret: str
    scope: ApiScope

    def __repr__(self) -> str:  # never the secret itself
        return f"ApiKey(scope={self.scope!r})"


def parse_api_keys(entries: Iterable[str], source: str) -> list[ApiKey]:
    """``key`` or ``key:scope`` entries (blank ones skipped) as keys; ``source`` names where
    they came from in errors, which never quote an entry."""
    keys = []
    for number, entry in enumerate(entries, start=1):
        entry = entry.strip()
        if not entry:
            continue
        secret, colon, scope = entry.rpartition(":")
        if not colon:
            secret, scope = entry, "write"
        if scope not in SCOPES:
            raise ApiKeyError(f"{source} {number}: the scope must be read or write")
        if not secret or any(character.isspace() for character in secret):
            raise ApiKeyError(f"{source} {number}: a key is non-empty, without spaces")
        keys.append(ApiKey(secret, scope))
    return keys


class Settings(BaseSettings):
    """Everything the service reads from its environment; tests build one directly."""

    model_config = SettingsConfigDict(env_prefix="MMDSHOT_", extra="ignore")

    data_dir: Path = Field(
        default=Path("./data"), description="Folder of the SQLite store and indexes."
    )
    database_url: str | None = Field(
        default=None,
        description="A PostgreSQL URL (postgresql://user:password@host:5432/db) for a store "
        "shared by several replicas; unset: SQLite in data_dir.",
    )
    database_connections: int = Field(
        default=8, ge=1, le=1000, description="Connections each replica keeps to PostgreSQL."
    )
    embedder: Literal["minilm", "hashing"] = Field(
        default="minilm",
        description="minilm: the bundled sentence-transformers model (or model_path); "
        "hashing: a fast deterministic fake for tests.",
    )
    model_path: Path | None = Field(
        default=None, description="A local sentence-transformers folder."
    )
    embedding_backend: Literal["auto", "onnx", "torch"] = Field(
        default="auto",
        description="How minilm runs: onnx (ONNX Runtime on the CPU, the model exported once "
        "into model_cache), torch (sentence-transformers, any device), auto (onnx on the CPU "
        "when it loads, else torch).",
    )
    model_cache: Path | None = Field(
        default=None,
        description="Folder of exported ONNX models; unset: $XDG_CACHE_HOME/mmdshot "
        "(~/.cache/mmdshot).",
    )
    hashing_dimension: int = Field(default=64, ge=2, le=4096)
    models: str = Field(
        default="",
        description="More local sentence-transformers folders a pool may pick "
        "(name=/path,name2=/path2); the default model and the bundled MiniLM (minilm) are "
        "always there. Each loads on first use and is shared by every pool that names it.",
    )
    embedding_url: str | None = Field(
        default=None,
        description="An OpenAI-compatible embedding server (its base URL, e.g. "
        "http://infinity:7997, with /embeddings under it): then the default model for new "
        "pools, named remote or remote:<embedding_model>.",
    )
    embedding_api_key: SecretStr | None = Field(
        default=None, description="Sent as Authorization: Bearer to embedding_url."
    )
    embedding_model: str | None = Field(
        default=None, description="The model name sent to embedding_url (unset: none sent)."
    )
    embedding_batch_size: int = Field(
        default=64, ge=1, le=2048, description="Texts per request to embedding_url."
    )
    embedding_timeout_s: float = Field(
        default=30.0, gt=0, le=600, description="Deadline of one request to embedding_url."
    )
    embedding_retries: int = Field(
        default=3,
        ge=0,
        le=10,
        description="Retries of a failed request to embedding_url (connection errors, 429, "
        "5xx), with exponential backoff from 0.2 s; then 503 embedding_unavailable.",
    )
    device: str = Field(
        default="auto", description="Torch device for selection: auto, cpu, cuda[:N]."
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    compute_workers: int = Field(
        default=2, ge=1, le=64, description="Threads for embedding/selection."
    )
    compute_queue: int = Field(
        default=16,
        ge=0,
        le=10_000,
        description="Requests that may wait for a compute thread; then 429.",
    )
    batch_window_ms: float = Field(
        default=2.0,
        ge=0,
        le=1_000,
        description="How long a batch of query embeddings and selections waits for more "
        "requests once another batch is running (a lone request goes at once).",
    )
    batch_max_size: int = Field(
        default=8,
        ge=1,
        le=4096,
        description="Most texts embedded in one batch's forward, and in one batch. Small "
        "batches keep latencies even: the clients of one batch answer together and send their "
        "next requests together, so batch sizes persist; at concurrency 32 over a 100k pool, 8 "
        "served 1.17x the requests/s of 32 at 0.65x its p99 (docs/benchmarks.md).",
    )
    batch_max_tokens: int = Field(
        default=4096,
        ge=16,
        le=1_000_000,
        description="Most tokens (padded) in one batch's forward; a longer text goes alone.",
    )
    write_queue: int = Field(
        default=16,
        ge=0,
        le=10_000,
        description="Writes (upserts, deletes, pool creation, calibration requests) that may "
        "wait for a compute thread, in a queue of their own; then 429. Free threads take "
        "reads and writes by shares of their time (read_share).",
    )
    read_share: float = Field(
        default=DEFAULT_READ_SHARE,
        gt=0,
        lt=1,
        description="The share of the compute threads' time selections get while writes wait "
        "too (writes get the rest; either alone gets all of it). Higher: selections keep more "
        "of their throughput under a stream of writes, and writes wait longer.",
    )
    request_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=3_600,
        description="Deadline of a request's compute (waiting included): past it the request "
        "is answered 503 timeout and its work stops at its next step.",
    )
    max_request_cost: int = Field(
        default=100_000_000,
        ge=1,
        description="Budget of one selection in cost units (about one kernel evaluation each; "
        "app/cost.py); above it 422 too_costly.",
    )
    ready_after_load: bool = Field(
        default=False,
        description="/ready answers 200 only once every stored pool is loaded.",
    )
    import_queue: int = Field(
        default=16, ge=1, le=10_000, description="Jobs (imports, calibrations) that may wait."
    )
    import_chunk_size: int = Field(default=256, ge=1, le=10_000, description="Examples per commit.")
    max_upsert_batch: int = Field(
        default=MAX_UPSERT_BATCH,
        ge=1,
        le=MAX_UPSERT_BATCH,
        description="Examples per upsert call (the schema's maxItems is the default; a lower "
        "setting answers 413 above it).",
    )
    max_body_bytes: int = Field(default=16 * 2**20, ge=1024, description="Largest request body.")
    max_import_bytes: int = Field(default=512 * 2**20, ge=1024, description="Largest import body.")
    torch_threads: int = Field(
        default=1,
        ge=1,
        le=256,
        description="torch intra-op threads. Requests already run in parallel on "
        "compute_workers threads; one torch thread each measured 4x faster embeddings "
        "than two on a busy 2-core machine (docs/benchmarks.md).",
    )
    max_store_bytes: int | None = Field(
        default=None,
        ge=1024,
        description="SQLite only: a cap on the database file; writes beyond it answer 507 "
        "storage_full as a full disk does. Unset: the disk is the limit.",
    )
    min_free_bytes: int = Field(
        default=64 * 2**20,
        ge=0,
        description="Free disk space an import must leave in data_dir besides its body; "
        "else 507 storage_full before it is spooled.",
    )
    job_timeout_s: float = Field(
        default=3600.0,
        gt=0,
        description="A job that runs longer fails at its next chunk or setting.",
    )
    job_lease_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="A running job's claim, renewed by its replica; a job whose replica "
        "stopped renewing it is taken up by another after this long.",
    )
    calibration_budget: float = Field(
        default=2e9,
        gt=0,
        description="The largest calibration: validation_size x k x settings (taus + knn) "
        "x pool size; a larger one is refused with 422 before it is queued. One CPU thread "
        "scored about 5e6 a second (docs/api.md): the default is some 7 minutes.",
    )
    shutdown_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="On SIGTERM: how long in-flight requests may finish and the running "
        "job reach a chunk boundary to be handed back before the process exits.",
    )
    max_prompt_chars: int = Field(
        default=1_000_000, ge=1, description="Characters of one rendered prompt; then 422."
    )
    max_response_chars: int = Field(
        default=16_000_000,
        ge=1,
        description="Characters of text (prompts and examples) in one selection response, a "
        "batch's results together; then 422.",
    )
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a connection may take to send a request's headers (from its "
        "start or the previous response); then it is closed.",
    )
    body_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Seconds the service waits for the next chunk of a request body; then 408.",
    )
    keep_alive_s: int = Field(
        default=5, ge=1, description="Seconds an idle keep-alive connection is kept open."
    )
    max_connections: int = Field(
        default=1024,
        ge=1,
        description="Open connections (and requests in flight); beyond it new requests get 503.",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Browser origins allowed to call the API (comma-separated, or *); empty: "
        "no CORS headers, browsers refuse cross-site calls.",
    )
    index_above: int = Field(
        default=50_000,
        ge=1,
        description="Pools larger than this get a faiss prefilter index (built in the "
        "background; selections are exact until it is ready).",
    )
    traffic_sample: int = Field(
        default=0,
        ge=0,
        le=MAX_TARGET_TEXTS,
        description="Traffic sampling for prefixes: keep the N most recent query texts of each "
        "pool's selections in memory (per replica, lost on restart), the target of a prefix "
        'built or rebuilt with target "traffic"; 0: off, nothing is kept.',
    )
    api_keys: SecretStr | None = Field(
        default=None,
        description="Comma-separated `key` or `key:scope` entries (scope read or write, "
        "default write); set (or api_keys_file): every /v1 route needs "
        "`Authorization: Bearer <key>`. Unset with no file: the service is open.",
    )
    api_keys_file: Path | None = Field(
        default=None,
        description="A file of API keys, one `key` or `key:scope` a line (blank lines and "
        "`#` comments ignored), e.g. a mounted Kubernetes Secret; adds to api_keys.",
    )
    metrics_require_key: bool = Field(
        default=False,
        description="/metrics needs a key (any scope) when keys are set; only then it lists "
        "each pool's name and size.",
    )
    tokenizers: Annotated[dict[str, Path], NoDecode] = Field(
        default_factory=dict,
        description="Tokenizers a pool may name at creation for its token counts and budgets: "
        "comma-separated `name=path` entries, each path a local `tokenizer.json` or a folder "
        "holding one (a Hugging Face tokenizer folder). `default` (the model's, else the "
        "bundled MiniLM's) is always there and cannot be redefined.",
    )
    _api_key_entries: tuple[ApiKey, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _read_api_keys(self) -> Self:
        keys = []
        if self.api_keys is not None:
            entries = self.api_keys.get_secret_value().split(",")
            keys += parse_api_keys(entries, "MMDSHOT_API_KEYS entry")
        if self.api_keys_file is not None:
            try:
                lines = self.api_keys_file.read_text().splitlines()
            except OSError as exc:
                raise ApiKeyError(f"MMDSHOT_API_KEYS_FILE: {exc.strerror}") from None
            entries = ["" if line.lstrip().startswith("#") else line for line in lines]
            keys += parse_api_keys(entries, "MMDSHOT_API_KEYS_FILE line")
        scopes: dict[str, ApiScope] = {}
        for key in keys:
            if scopes.setdefault(key.secret, key.scope) != key.scope:
                raise ApiKeyError("one API key is listed with two scopes")
        self._api_key_entries = tuple(ApiKey(secret, scope) for secret, scope in scopes.items())
        return self

    @property
    def api_key_entries(self) -> tuple[ApiKey, ...]:
        """The keys of api_keys and api_keys_file (none: the service is open)."""
        return self._api_key_entries

    @field_validator("tokenizers", mode="before")
    @classmethod
    def _tokenizer_entries(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        entries: dict[str, str] = {}
        for entry in filter(None, (part.strip() for part in value.split(","))):
            name, equals, path = (part.strip() for part in entry.partition("="))
            if not equals or not name or not path:
                raise ValueError(f"a tokenizer entry is name=path, not {entry!r}")
            if name in entries:
                raise ValueError(f"tokenizer {name!r} is listed twice")
            entries[name] = path
        return entries

    @field_validator("tokenizers", mode="after")
    @classmethod
    def _tokenizer_files(cls, value: dict[str, Path]) -> dict[str, Path]:
        files = {}
        for name, path in value.items():
            if not TOKENIZER_NAME.fullmatch(name) or name == DEFAULT_TOKENIZER:
                raise ValueError(
                    f"tokenizer name {name!r}: letters, digits, . _ - (up to 64), not "
                    f"{DEFAULT_TOKENIZER!r}"
                )
            file = path / "tokenizer.json" if path.is_dir() else path
            if not file.is_file():
                raise ValueError(f"tokenizer {name!r}: no tokenizer.json at the path given")
            files[name] = file
        return files

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once from the environment (``create_app``'s default; the
    routes read the app's own, ``app.deps.get_app_settings``)."""
    return Settings()
