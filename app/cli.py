"""The ``mmdshot`` command: ``serve``, ``import``, ``select`` and ``openapi``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
POLL_SECONDS = 0.5


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.config import get_settings
    from app.main import create_app

    updates = {
        name: value
        for name, value in (("host", args.host), ("port", args.port), ("data_dir", args.data_dir))
        if value is not None
    }
    settings = get_settings().model_copy(update=updates)
    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.port, log_level=args.log_level
    )
    return 0


def _fail(response: httpx.Response) -> int:
    print(f"error {response.status_code}: {response.text}", file=sys.stderr)
    return 1


def _import(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    with httpx.Client(base_url=args.url, timeout=60.0) as client:
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
        job = started.json()
        with tqdm(total=job["total"], unit="ex", desc=f"import {args.pool}") as bar:
            while True:
                bar.update(job["done"] - bar.n)
                if job["status"] in ("succeeded", "failed"):
                    break
                time.sleep(POLL_SECONDS)
                polled = client.get(f"/v1/jobs/{job['id']}")
                if polled.status_code != 200:
                    return _fail(polled)
                job = polled.json()
    for error in job["errors"]:
        print(f"line {error['line']}: {error['message']}", file=sys.stderr)
    print(
        f"{job['status']}: {job['inserted']} inserted, {job['updated']} updated, "
        f"{job['duplicates']} duplicates, {len(job['errors'])} bad lines"
    )
    return 0 if job["status"] == "succeeded" else 1


def _select(args: argparse.Namespace) -> int:
    body = {"query": args.query, "k": args.k, "kernel": args.kernel, "method": args.method}
    response = httpx.post(f"{args.url}/v1/pools/{args.pool}/select", json=body, timeout=60.0)
    if response.status_code != 200:
        return _fail(response)
    print(json.dumps(response.json(), indent=2) if args.json else response.json()["prompt"])
    return 0


def _openapi(_: argparse.Namespace) -> int:
    from app.main import openapi_text

    sys.stdout.write(openapi_text())
    return 0


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
    load.add_argument("--url", default=DEFAULT_URL)
    load.set_defaults(run=_import)

    choose = commands.add_parser("select", help="select demonstrations for a query (via HTTP)")
    choose.add_argument("pool")
    choose.add_argument("query")
    choose.add_argument("--k", type=int, default=8)
    choose.add_argument("--kernel", default="softmax")
    choose.add_argument("--method", default="mmd")
    choose.add_argument("--json", action="store_true", help="print the whole response")
    choose.add_argument("--url", default=DEFAULT_URL)
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
