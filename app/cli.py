"""The ``mmdshot`` command: ``serve``, ``import``, ``calibrate``, ``select`` and ``openapi``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
POLL_SECONDS = 0.5


def _serve(args: argparse.Namespace) -> int:
    from app.config import ApiKeyError, get_settings
    from app.main import create_app
    from app.server import run

    try:
        get_settings()
    except ApiKeyError as exc:
        print(f"mmdshot: {exc}", file=sys.stderr)
        return 2

    updates = {
        name: value
        for name, value in (("host", args.host), ("port", args.port), ("data_dir", args.data_dir))
        if value is not None
    }
    settings = get_settings().model_copy(update=updates)
    run(create_app(settings), settings, args.log_level)
    return 0


def _client(args: argparse.Namespace) -> httpx.Client:
    """A client of ``args.url`` that sends ``args.api_key`` (or ``MMDSHOT_API_KEY``) as its
    bearer token when there is one."""
    key = args.api_key or os.environ.get("MMDSHOT_API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=args.url, timeout=60.0, headers=headers)


def _fail(response: httpx.Response) -> int:
    print(f"error {response.status_code}: {response.text}", file=sys.stderr)
    return 1


def _import(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    with _client(args) as client:
        created = client.post("/v1/pools", json={"name": args.pool})
        if created.status_code not in (201, 409):
            return _fail(created)
        started = client.post(
            f"/v1/pools/{args.pool}/imports",
            content=args.file.read_bytes(),
            headers={"content-type": "application/x-ndjson"},
        )
        if started.status_code != 202:
            return _fail(started)
        with tqdm(total=None, unit="ex", desc=f"import {args.pool}") as bar:

            def progress(job: dict[str, Any]) -> None:
                bar.total = job["total"] or None  # known once the job has counted the records
                bar.update(job["done"] - bar.n)

            job = _follow(client, started, progress)
    if isinstance(job, int):
        return job
    for error in job["errors"]:
        print(f"line {error['line']}: {error['message']}", file=sys.stderr)
    print(
        f"{job['status']}: {job['inserted']} inserted, {job['updated']} updated, "
        f"{job['duplicates']} duplicates, {len(job['errors'])} bad lines"
    )
    return 0 if job["status"] == "succeeded" else 1


def _follow(
    client: httpx.Client,
    started: httpx.Response,
    progress: Callable[[dict[str, Any]], object] = lambda job: None,
) -> dict[str, Any] | int:
    """Poll the job that ``started`` answered until it ends; returns it, or the exit status
    of a failed poll."""
    job: dict[str, Any] = started.json()
    while True:
        progress(job)
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(POLL_SECONDS)
        polled = client.get(f"/v1/jobs/{job['id']}")
        if polled.status_code != 200:
            return _fail(polled)
        job = polled.json()


def _calibrate(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"k": args.k, "validation_size": args.validation_size, "seed": args.seed}
    if args.taus:
        body["taus"] = args.taus
    with _client(args) as client:
        started = client.post(f"/v1/pools/{args.pool}/calibrate", json=body)
        if started.status_code != 202:
            return _fail(started)
        job = _follow(client, started)
    if isinstance(job, int):
        return job
    if job["status"] != "succeeded":
        print(f"failed: {job['message']}", file=sys.stderr)
        return 1
    result = job["calibration"]
    for entry in result["scores"]:
        chosen = "  <- chosen" if entry["tau"] == result["tau"] else ""
        print(f"tau {entry['tau']:<8g} {result['scorer']} {entry['score']:.4f}{chosen}")
    print(f"knn          {result['scorer']} {result['knn_score']:.4f}")
    verdict = "beats" if result["beats_knn"] else "does not beat"
    print(
        f"{args.pool}: tau {result['tau']:g} ({verdict} knn on {result['validation_size']} "
        f"held-out examples, k={result['k']}, pool version {result['pool_version']})"
    )
    return 0


def _select(args: argparse.Namespace) -> int:
    body = {"query": args.query, "k": args.k, "kernel": args.kernel, "method": args.method}
    with _client(args) as client:
        response = client.post(f"/v1/pools/{args.pool}/select", json=body)
    if response.status_code != 200:
        return _fail(response)
    print(json.dumps(response.json(), indent=2) if args.json else response.json()["prompt"])
    return 0


def _openapi(_: argparse.Namespace) -> int:
    from app.main import openapi_text

    sys.stdout.write(openapi_text())
    return 0


def _remote(command: argparse.ArgumentParser) -> None:
    command.add_argument("--url", default=DEFAULT_URL)
    command.add_argument(
        "--api-key", help="the service's API key (default: $MMDSHOT_API_KEY; none: no header)"
    )


def parser() -> argparse.ArgumentParser:
    """The command line."""
    root = argparse.ArgumentParser(prog="mmdshot", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--data-dir", type=Path)
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(run=_serve)

    load = commands.add_parser("import", help="import a JSONL file into a pool (via HTTP)")
    load.add_argument("pool")
    load.add_argument("file", type=Path)
    _remote(load)
    load.set_defaults(run=_import)

    tune = commands.add_parser(
        "calibrate", help="choose a pool's tau on a validation split of it (via HTTP)"
    )
    tune.add_argument("pool")
    tune.add_argument("--k", type=int, default=8)
    tune.add_argument("--taus", type=float, nargs="+", help="default: 0.05 0.1 0.2 0.5")
    tune.add_argument("--validation-size", type=int, default=300)
    tune.add_argument("--seed", type=int, default=0)
    _remote(tune)
    tune.set_defaults(run=_calibrate)

    choose = commands.add_parser("select", help="select demonstrations for a query (via HTTP)")
    choose.add_argument("pool")
    choose.add_argument("query")
    choose.add_argument("--k", type=int, default=8)
    choose.add_argument("--kernel", default="softmax")
    choose.add_argument("--method", default="mmd")
    choose.add_argument("--json", action="store_true", help="print the whole response")
    _remote(choose)
    choose.set_defaults(run=_select)

    schema = commands.add_parser("openapi", help="print the OpenAPI schema")
    schema.set_defaults(run=_openapi)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    status: int = args.run(args)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
