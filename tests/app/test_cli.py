"""The mmdshot command against the real service on loopback: one-line errors, MMDSHOT_URL,
progress from the job's done/total, select's template options and --json."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from app.cli import main, parser
from tests.app.conftest import Server, free_port, jsonl, make_examples


def test_no_server_is_one_line_naming_the_url_and_the_fixes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MMDSHOT_URL", url)
    assert main(["select", "tweets", "a query"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"mmdshot: no server at {url}; use --url or MMDSHOT_URL\n"


def test_mmdshot_url_is_the_default_and_url_overrides_it(
    server: Server, pool: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMDSHOT_URL", server.url)
    assert main(["select", pool, "cars", "--k", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pool"] == pool
    dead = f"http://127.0.0.1:{free_port()}"
    assert main(["select", pool, "cars", "--url", dead]) == 1
    assert f"no server at {dead}" in capsys.readouterr().err


def test_service_errors_are_one_line_with_status_and_type(
    server: Server, pool: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["select", pool, "cars", "--k", "1000", "--url", server.url]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(422 validation_error)" in err
    assert err.startswith(f"mmdshot: POST /v1/pools/{pool}/select: ")
    assert main(["wait", "0" * 32, "--url", server.url]) == 1
    assert "(404 not_found)" in capsys.readouterr().err


def test_select_renders_the_templates_given(
    server: Server, pool: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["select", pool, "trains", "--k", "2", "--url", server.url, "--order", "selection"]
    argv += ["--template", r"Q: {input}\nA: {output}", "--query-template", r"Q: {query}\nA:"]
    argv += ["--separator", r"\n---\n"]
    assert main(argv) == 0
    prompt = capsys.readouterr().out
    assert main([*argv, "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    first, second = answer["examples"]
    assert [first["selection_rank"], second["selection_rank"]] == [0, 1]
    expected = (
        f"Q: {first['input']}\nA: {first['output']}\n---\n"
        f"Q: {second['input']}\nA: {second['output']}\n---\nQ: trains\nA:"
    )
    assert answer["prompt"] == expected and prompt == expected + "\n"


def test_import_and_wait_follow_the_job(
    server: Server,
    client: httpx.Client,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines = tmp_path / "pool.jsonl"
    lines.write_bytes(jsonl(make_examples(30)) + b'{"output": "no input"}\n')
    assert main(["import", "cli-import", str(lines), "--url", server.url, "--json"]) == 0
    job = json.loads(capsys.readouterr().out)
    assert (job["status"], job["inserted"], job["done"], job["total"]) == ("succeeded", 30, 31, 31)
    assert [error["line"] for error in job["errors"]] == [31]
    assert main(["import", "cli-import", str(lines), "--url", server.url]) == 0
    captured = capsys.readouterr()
    assert captured.out == "succeeded: 0 inserted, 0 updated, 30 duplicates, 1 bad lines\n"
    assert "line 31:" in captured.err and "import cli-import" in captured.err  # the bar
    assert main(["wait", job["id"], "--url", server.url]) == 0
    assert capsys.readouterr().out == f"import {job['id']} succeeded: 31/31 done\n"
    assert client.get("/v1/pools/cli-import").json()["size"] == 30


def test_calibrate_shows_a_progress_bar_of_its_settings(
    server: Server, pool: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["calibrate", pool, "--k", "2", "--taus", "0.1", "0.3", "--validation-size", "9"]
    assert main([*argv, "--url", server.url]) == 0
    assert f"calibrate {pool}" in capsys.readouterr().err
    assert main([*argv, "--url", server.url, "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["calibration"]["k"] == 2 and captured.err == ""


def test_every_option_is_described() -> None:
    commands = parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name, command in commands.items():
        if name == "serve":
            continue  # its options are the service's settings (app/config.py)
        for action in command._actions:
            assert action.help, (name, action.dest)


def test_prefixes_commands_and_select_with_a_prefix(
    server: Server, pool: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = ["--url", server.url]
    made = ["prefixes", "create", pool, "shared", "--k", "3", "--target-text", "cars"]
    assert main([*made, "--target-text", "boats", *url]) == 0
    assert capsys.readouterr().out.startswith("shared: 3 examples, ")
    assert main(["prefixes", "list", pool, "--json", *url]) == 0
    (listed,) = json.loads(capsys.readouterr().out)["prefixes"]
    assert (listed["name"], listed["source"], listed["target_size"]) == ("shared", "texts", 2)
    assert main(["prefixes", "show", pool, "shared", *url]) == 0
    assert capsys.readouterr().out.endswith(listed["prefix_prompt"] + "\n")
    assert main(["select", pool, "trains", "--k", "2", "--prefix", "shared", *url]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(listed["prefix_prompt"] + "\n\n")
    assert captured.err.startswith(f"prefix shared {listed['prefix_hash'][:12]}: ")
    assert main(["prefixes", "rebuild", pool, "shared", "--target-pool", pool, *url]) == 0
    assert "from pool (60 points)" in capsys.readouterr().out
    assert main(["prefixes", "create", pool, "other", *url]) == 1
    assert "give --target-text, --target-pool or --traffic" in capsys.readouterr().err
    assert main(["prefixes", "delete", pool, "shared", *url]) == 0
    assert main(["prefixes", "show", pool, "shared", *url]) == 1
    assert "(404 not_found)" in capsys.readouterr().err
