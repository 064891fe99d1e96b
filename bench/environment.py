"""What a benchmark ran on: machine, library versions, date."""

from __future__ import annotations

import datetime
import json
import os
import platform
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import torch


def package_versions(packages: Iterable[str]) -> dict[str, str | None]:
    """The installed version of each distribution, ``None`` where it is not installed."""
    versions: dict[str, str | None] = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def environment() -> dict[str, object]:
    versions = package_versions(
        (
            "torch",
            "numpy",
            "faiss-cpu",
            "sentence-transformers",
            "onnxruntime",
            "fastapi",
            "uvicorn",
        )
    )
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "cores": os.cpu_count(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "python": platform.python_version(),
        "versions": versions,
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def save_result(path: Path, result: dict[str, Any]) -> None:
    """Write a benchmark's ``result``, stamped with :func:`environment`, as JSON to ``path``."""
    result["environment"] = environment()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
