"""The mmdshot command: serve runs the service; import, calibrate, wait, select and
prefixes talk to a running one over HTTP (--url, or MMDSHOT_URL); openapi prints
the schema. Errors are one line on stderr and exit status 1; --json prints the answer as
JSON on stdout, for scripts."""

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
URL_VARIABLE = "MMDSHOT_URL"
POLL_SECONDS = 0.5
TIMEOUT_SECONDS = 60.0
RUNNING = ("queued", "running")


class CliError(Exception):
    """An error the command reports as one line (and exit status 1)."""


def _serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from app.config import ApiKeyError, get_settings
    from app.main import create_app
    from app.server import run

    try:
        get_settings()
    except ApiKeyError as exc:
        print(f"mmdshot: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:  # a bad setting: name it in one line, no traceback
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        print(f"mmdshot: MMDSHOT_{where.upper()}: {problem['msg']}", file=sys.stderr)
        return 2

    updates = {
        name: value
        for name, value in (("host", args.host), ("port", args.port), ("data_dir", args.data_dir))
        if value is not None
    }
    settings = get_settings().model_copy(update=updates)
    run(create_app(settings), settings, args.log_level)
    return 0


def client(args: argparse.Namespace) -> httpx.Client:
    """The HTTP client of every command that talks to the service: its one place for the
    base URL and the headers. It sends ``args.api_key`` (or ``MMDSHOT_API_KEY``) as its bearer
    token when there is one."""
    key = args.api_key or os.environ.get("MMDSHOT_API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=args.url, timeout=TIMEOUT_SECONDS, headers=headers)


def _check(response: httpx.Response, *expected: int) -> dict[str, Any]:
    """The answer's JSON when its status is one of ``expected``; else a :class:`CliError`
    with the service's one-line message."""
    if response.status_code in expected:
        body: dict[str, Any] = response.json()
        return body
    try:
        error = response.json()["error"]
        message = f"{error['message']} ({response.status_code} {error['type']})"
    except (ValueError, KeyError, TypeError):
        message = f"{response.status_code} {response.reason_phrase}: {response.text[:200]}"
    raise CliError(f"{response.request.method} {response.request.url.path}: {message}")


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _follow(
    api: httpx.Client,
    job: dict[str, Any],
    desc: str,
    unit: str,
    quiet: bool,
) -> dict[str, Any]:
    """Polls ``job`` until it ends, with a progress bar of its ``done`` of ``total`` on
    stderr (none when ``quiet``); returns its last state."""
    from tqdm import tqdm

    # An import's total is 0 until its job has counted the records: an open-ended bar till then.
    with tqdm(total=job["total"] or None, unit=unit, desc=desc, disable=quiet, leave=False) as bar:
        while True:
            bar.total = job["total"] or None
            bar.update(job["done"] - bar.n)
            if job["status"] not in RUNNING:
                return job
            time.sleep(POLL_SECONDS)
            job = _check(api.get(f"/v1/jobs/{job['id']}"), 200)


def _import(args: argparse.Namespace) -> int:
    with client(args) as api:
        _check(api.post("/v1/pools", json={"name": args.pool}), 201, 409)
        started = api.post(
            f"/v1/pools/{args.pool}/imports",
            content=args.file.read_bytes(),
            headers={"content-type": "application/x-ndjson"},
        )
        job = _follow(api, _check(started, 202), f"import {args.pool}", "ex", args.json)
    if args.json:
        _print_json(job)
    else:
        for error in job["errors"]:
            print(f"line {error['line']}: {error['message']}", file=sys.stderr)
        print(
            f"{job['status']}: {job['inserted']} inserted, {job['updated']} updated, "
            f"{job['duplicates']} duplicates, {len(job['errors'])} bad lines"
            + (f" ({job['message']})" if job.get("message") else "")
        )
    return 0 if job["status"] == "succeeded" else 1


def _calibrate(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"k": args.k, "validation_size": args.validation_size, "seed": args.seed}
    if args.taus:
        body["taus"] = args.taus
    with client(args) as api:
        started = _check(api.post(f"/v1/pools/{args.pool}/calibrate", json=body), 202)
        job = _follow(api, started, f"calibrate {args.pool}", "setting", args.json)
    if args.json:
        _print_json(job)
        return 0 if job["status"] == "succeeded" else 1
    if job["status"] != "succeeded":
        raise CliError(f"calibration {job['status']}: {job['message']}")
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


def _wait(args: argparse.Namespace) -> int:
    with client(args) as api:
        job = _check(api.get(f"/v1/jobs/{args.job}"), 200)
        job = _follow(api, job, f"{job['kind']} {job['pool']}", "", args.json)
    if args.json:
        _print_json(job)
    else:
        print(f"{job['kind']} {job['id']} {job['status']}: {job['done']}/{job['total']} done")
    return 0 if job["status"] == "succeeded" else 1


def unescape(text: str) -> str:
    r"""A template as typed in a shell: ``\n`` and ``\t`` become a newline and a tab."""
    return text.replace("\\n", "\n").replace("\\t", "\t")


def _select(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "query": args.query,
        "k": args.k,
        "kernel": args.kernel,
        "method": args.method,
        "order": args.order,
        "seed": args.seed,
    }
    if args.tau is not None:
        body["tau"] = args.tau
    if args.prefix is not None:
        body["prefix"] = args.prefix
    for name in ("template", "query_template", "separator"):
        value = getattr(args, name)
        if value is not None:
            body[name] = unescape(value)
    with client(args) as api:
        answer = _check(api.post(f"/v1/pools/{args.pool}/select", json=body), 200)
    if args.json:
        _print_json(answer)
    else:
        print(answer["prompt"])
        part = answer["prefix"]
        if part is not None:
            stale = ", stale: rebuild it" if part["stale"] else ""
            print(
                f"prefix {part['name']} {part['prefix_hash'][:12]}: {part['prefix_tokens']} "
                f"cacheable tokens, {part['slice_tokens']} per query{stale}",
                file=sys.stderr,
            )
    return 0


def _prefix_target(args: argparse.Namespace) -> dict[str, Any] | str | None:
    """The target the options name: texts, a pool, or the recorded traffic (None: none)."""
    if args.traffic:
        return "traffic"
    if args.target_pool is not None:
        return {"pool": args.target_pool}
    if args.target_text:
        return {"texts": args.target_text}
    return None


def _show_prefix(args: argparse.Namespace, prefix: dict[str, Any]) -> None:
    if args.json:
        _print_json(prefix)
        return
    stale = " stale" if prefix["stale"] else ""
    print(
        f"{prefix['name']}: {prefix['k']} examples, {prefix['prefix_tokens']} tokens, "
        f"sha256 {prefix['prefix_hash'][:12]}, built at version {prefix['pool_version']} "
        f"from {prefix['source']} ({prefix['target_size']} points){stale}"
    )


def _prefixes(args: argparse.Namespace) -> int:
    base = f"/v1/pools/{args.pool}/prefixes"
    with client(args) as api:
        if args.action == "list":
            listed = _check(api.get(base), 200)
            if args.json:
                _print_json(listed)
            for prefix in [] if args.json else listed["prefixes"]:
                _show_prefix(args, prefix)
            return 0
        if args.action == "delete":
            deleted = api.delete(f"{base}/{args.name}")
            if deleted.status_code != 204:  # 204 has no body to read
                _check(deleted, 204)
            return 0
        if args.action == "show":
            prefix = _check(api.get(f"{base}/{args.name}"), 200)
            _show_prefix(args, prefix)
            if not args.json:
                print(prefix["prefix_prompt"])
            return 0
        target = _prefix_target(args)
        if args.action == "create":
            if target is None:
                raise CliError("give --target-text, --target-pool or --traffic")
            body: dict[str, Any] = {"name": args.name, "k": args.k, "target": target}
            for name in ("template", "separator"):
                value = getattr(args, name)
                if value is not None:
                    body[name] = unescape(value)
            prefix = _check(api.post(base, json=body), 201)
        else:
            rebuild = {} if target is None else {"target": target}
            prefix = _check(api.post(f"{base}/{args.name}/rebuild", json=rebuild), 200)
    _show_prefix(args, prefix)
    return 0


def _openapi(_: argparse.Namespace) -> int:
    from app.main import openapi_text

    sys.stdout.write(openapi_text())
    return 0


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default when it has one worth showing (not None, not a flag's False,
    not one its help already names)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        hidden = action.default is None or action.default is False
        if hidden or action.default == argparse.SUPPRESS or "default" in text:
            return text
        return super()._get_help_string(action)


def _tau(text: str) -> float | str:
    return text if text == "median" else float(text)


def parser() -> argparse.ArgumentParser:
    """The command line."""
    root = argparse.ArgumentParser(prog="mmdshot", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--data-dir", type=Path)
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(run=_serve)

    remote = argparse.ArgumentParser(add_help=False)
    remote.add_argument(
        "--url",
        default=os.environ.get(URL_VARIABLE, DEFAULT_URL),
        help=f"the service's base URL (${URL_VARIABLE} when set)",
    )
    remote.add_argument(
        "--api-key", help="the service's API key ($MMDSHOT_API_KEY when set; none: no header)"
    )
    remote.add_argument(
        "--json", action="store_true", help="print the whole answer as JSON, and no progress bar"
    )

    def command(name: str, summary: str, run: Callable[[argparse.Namespace], int]) -> Any:
        sub = commands.add_parser(
            name,
            help=summary,
            description=summary,
            parents=[remote],
            formatter_class=_Help,
        )
        sub.set_defaults(run=run)
        return sub

    load = command("import", "import a JSONL file into a pool (created if missing)", _import)
    load.add_argument("pool", help="the pool's name")
    load.add_argument("file", type=Path, help="JSON lines of {id?, input, output?, label?}")

    tune = command("calibrate", "choose a pool's tau on a validation split of it", _calibrate)
    tune.add_argument("pool", help="the pool's name")
    tune.add_argument("--k", type=int, default=8, help="demonstrations per held-out example")
    tune.add_argument(
        "--taus", type=float, nargs="+", help="candidate bandwidths (default: 0.05 0.1 0.2 0.5)"
    )
    tune.add_argument(
        "--validation-size",
        type=int,
        default=300,
        help="examples held out as queries; at most the pool's size minus k",
    )
    tune.add_argument("--seed", type=int, default=0, help="draws the validation split")

    wait = command("wait", "wait for a job (import or calibration) to end", _wait)
    wait.add_argument("job", help="the job's id (the 202 answer's id)")

    choose = command("select", "select demonstrations for a query; prints the prompt", _select)
    choose.add_argument("pool", help="the pool's name")
    choose.add_argument("query", help="the query to choose demonstrations for")
    choose.add_argument("--k", type=int, default=8, help="how many demonstrations")
    choose.add_argument(
        "--kernel",
        default="softmax",
        choices=["softmax", "rbf", "laplace", "cosine"],
        help="similarity kernel",
    )
    choose.add_argument(
        "--method",
        default="mmd",
        choices=["mmd", "knn", "mmr", "random"],
        help="mmd, or one of the baselines",
    )
    choose.add_argument(
        "--tau",
        type=_tau,
        help="kernel bandwidth, or 'median' (default: the pool's calibrated tau, else 0.2)",
    )
    choose.add_argument("--seed", type=int, default=0, help="seed of the random baseline")
    choose.add_argument(
        "--order",
        default="relevance_last",
        choices=["relevance_last", "selection"],
        help="prompt order: most relevant example last, or the order chosen",
    )
    choose.add_argument(
        "--template",
        help="each demonstration, with {id} {input} {output} {label}; \\n is a newline "
        "(default: the service's, 'Input: {input}\\nOutput: {output}')",
    )
    choose.add_argument(
        "--query-template",
        help="the query, with {query} (default: the service's, 'Input: {query}\\nOutput:')",
    )
    choose.add_argument("--separator", help="between demonstrations (default: a blank line)")
    choose.add_argument(
        "--prefix", help="a prefix of the pool to put first; --k is then the slice's size"
    )

    group = commands.add_parser(
        "prefixes", help="a pool's prefixes: create, list, show, rebuild, delete"
    )
    actions = group.add_subparsers(
        dest="action", required=True, metavar="ACTION", help="what to do with them"
    )

    def action(name: str, summary: str, named: bool = True) -> Any:
        sub = actions.add_parser(
            name, help=summary, description=summary, parents=[remote], formatter_class=_Help
        )
        sub.set_defaults(run=_prefixes)
        sub.add_argument("pool", help="the pool's name")
        if named:
            sub.add_argument("name", help="the prefix's name")
        return sub

    def targets(sub: Any) -> None:
        chosen = sub.add_mutually_exclusive_group()
        chosen.add_argument(
            "--target-text", action="append", help="a target text (repeat for more)"
        )
        chosen.add_argument("--target-pool", help="every example of this pool as the target")
        chosen.add_argument(
            "--traffic", action="store_true", help="the pool's recent queries as the target"
        )

    made = action("create", "choose k examples by MMD to a target and keep them as a prefix")
    made.add_argument("--k", type=int, default=8, help="examples in the prefix")
    made.add_argument("--template", help="each demonstration (default: the service's)")
    made.add_argument("--separator", help="between demonstrations (default: a blank line)")
    targets(made)
    action("list", "list the pool's prefixes", named=False)
    action("show", "one prefix and its block")
    targets(action("rebuild", "choose a prefix again (its last target, or the one given)"))
    action("delete", "delete a prefix")

    schema = commands.add_parser("openapi", help="print the OpenAPI schema")
    schema.set_defaults(run=_openapi)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except httpx.TransportError as exc:
        url = getattr(args, "url", DEFAULT_URL)
        if isinstance(exc, httpx.ConnectError):
            message = f"no server at {url}; use --url or {URL_VARIABLE}"
        else:
            message = f"{url}: {type(exc).__name__}: {exc or 'no answer'}"
        print(f"mmdshot: {message}", file=sys.stderr)
        return 1
    except (CliError, OSError) as exc:
        print(f"mmdshot: {exc}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
