"""Dependency aliases for the routes (``Annotated[..., Depends()]``).

Every dependency of the service is a coroutine (``async def``), as none of them blocks:
FastAPI runs a plain function, or a class, on its thread pool, one thread hop per
dependency per request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from app.config import Settings
from app.engine import Engine
from app.jobs import JobWorker
from app.metrics import Metrics
from app.schemas import EXAMPLE_ID_PATTERN, POOL_NAME_PATTERN


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with (``create_app`` keeps them on its state; a
    dependency override would make FastAPI rebuild every dependant on every request)."""
    settings: Settings = request.app.state.settings
    return settings


async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_ready_engine(engine: Annotated[Engine, Depends(get_engine)]) -> Engine:
    """The engine, or 503 while the model is not loaded."""
    engine.require_ready()
    return engine


async def get_jobs(request: Request) -> JobWorker:
    worker: JobWorker = request.app.state.jobs
    return worker


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
ReadyEngine = Annotated[Engine, Depends(get_ready_engine)]
JobsDep = Annotated[JobWorker, Depends(get_jobs)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
PoolPath = Annotated[
    str, Path(pattern=POOL_NAME_PATTERN, description="Pool name.", examples=["tweets"])
]
ExampleIdPath = Annotated[
    str, Path(pattern=EXAMPLE_ID_PATTERN, description="Example id.", examples=["ex-1"])
]
