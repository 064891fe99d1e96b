"""Service settings, read from ``MMDSHOT_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    write_queue: int = Field(
        default=16,
        ge=0,
        le=10_000,
        description="Writes (upserts, deletes, pool creation, calibration requests) that may "
        "wait for a compute thread, in a queue of their own; then 429. Free threads take "
        "reads and writes in turn.",
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
        default=1000, ge=1, le=10_000, description="Examples per upsert call."
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
    index_above: int = Field(
        default=50_000,
        ge=1,
        description="Pools larger than this get a faiss prefilter index (built in the "
        "background; selections are exact until it is ready).",
    )


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once from the environment (tests override the dependency)."""
    return Settings()
