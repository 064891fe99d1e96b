"""Every shell and Python snippet in README.md and docs/*.md runs as written.

Each document's snippets run in order, in one fresh temporary folder (files one writes, the
next may read), against a live ``mmdshot serve`` of the bundled model on a free loopback port
over a fresh data dir: ``localhost:8000`` and ``127.0.0.1:8000`` are rewritten to it, and
``MMDSHOT_URL`` points the CLI there. ``curl`` fails on an HTTP error (``--fail-with-body``),
so a snippet that answers 4xx fails here. Code blocks are fenced with a language: ``sh`` and
``python`` run, the languages in ``INERT`` are not code to run (maths, a layout, TypeScript,
an answer shown). A runnable block that cannot run here (Docker, kubectl, a GPU, the
installers themselves) says so with ``<!-- snippet: skip REASON -->`` on the line before it;
nothing is skipped silently."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.app.conftest import REPO, Server

DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
RUNNABLE = {"sh", "python"}
INERT = {"text", "ts", "json"}
SKIP = re.compile(r"^<!-- snippet: skip (?P<reason>\S.*?) -->$")
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\s*$")
LOCAL_URL = re.compile(r"(?:https?://)?(?:localhost|127\.0\.0\.1):8000")
SNIPPET_SECONDS = 300
# Every curl in a shell snippet fails on an HTTP error status, and shows the body.
SHELL_PRELUDE = 'set -euo pipefail\ncurl() { command curl --fail-with-body -sS "$@"; echo; }\n'


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    skip: str | None  # the reason given by a skip marker on the line before

    def __str__(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line} ({self.lang or 'no language'})"


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of one Markdown file."""
    lines = path.read_text().split("\n")
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        assert end < len(lines), f"{path}:{index + 1}: unclosed code fence"
        before = lines[index - 1].strip() if index else ""
        marker = SKIP.match(before)
        text = "\n".join(lines[index + 1 : end]) + "\n"
        skip = marker["reason"] if marker else None
        found.append(Block(path, index + 1, opening["lang"], text, skip))
        index = end + 1
    return found


def indented_code(path: Path) -> list[int]:
    """Lines that open an indented (unfenced) code block: four spaces after a blank line,
    outside fences and lists."""
    lines = path.read_text().split("\n")
    opened: list[int] = []
    fenced = False
    for number, line in enumerate(lines, start=1):
        if line.startswith("```"):
            fenced = not fenced
            continue
        previous = lines[number - 2] if number > 1 else ""
        if not fenced and line.startswith("    ") and line.strip() and not previous.strip():
            opened.append(number)
    return opened


ALL_BLOCKS = [block for path in DOCUMENTS for block in blocks(path)]


def test_documents_are_found() -> None:
    names = {path.name for path in DOCUMENTS}
    assert {"README.md", "api.md", "clients.md", "design.md"} <= names
    assert sum(block.lang in RUNNABLE for block in ALL_BLOCKS) >= 10


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda path: path.name)
def test_every_code_block_is_fenced_with_a_language(path: Path) -> None:
    """So that the runner below sees every snippet: an indented block or an unknown language
    would be code nobody runs."""
    assert indented_code(path) == [], f"{path.name}: indented code blocks; fence them"
    for block in blocks(path):
        assert block.lang in RUNNABLE | INERT, f"{block}: fence it as one of {RUNNABLE | INERT}"
        if block.skip is not None:
            assert block.lang in RUNNABLE, f"{block}: a skip marker on a block that never runs"


def test_skipped_snippets_are_few_and_say_why() -> None:
    skipped = [block for block in ALL_BLOCKS if block.skip is not None]
    runnable = [block for block in ALL_BLOCKS if block.lang in RUNNABLE]
    assert len(skipped) * 3 < len(runnable), [str(block) for block in skipped]
    for block in skipped:
        assert len(block.skip or "") >= 10, f"{block}: say why it cannot run here"


def rewrite(text: str, url: str) -> str:
    """The snippet as it runs here: the documented local URL becomes the test server's."""
    return LOCAL_URL.sub(lambda found: url if "//" in found[0] else url.split("//")[1], text)


def run_block(block: Block, url: str, cwd: Path, env: dict[str, str]) -> None:
    code = rewrite(block.text, url)
    if block.lang == "sh":
        command = ["bash", "-c", SHELL_PRELUDE + code]
    else:
        command = [sys.executable, "-c", code]
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=SNIPPET_SECONDS
    )
    assert done.returncode == 0, (
        f"{block} failed with status {done.returncode}:\n{code}\n"
        f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"
    )


RUN_DOCUMENTS = [
    path
    for path in DOCUMENTS
    if any(block.lang in RUNNABLE and block.skip is None for block in blocks(path))
]


@pytest.mark.slow
@pytest.mark.parametrize("path", RUN_DOCUMENTS, ids=lambda path: path.name)
def test_snippets_run_against_a_live_server(path: Path, tmp_path: Path) -> None:
    server = Server(tmp_path / "data", embedder="minilm")
    work = tmp_path / "work"
    work.mkdir()
    try:
        server.start()
        env = {
            **os.environ,
            "MMDSHOT_URL": server.url,
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            # The Python snippets import this checkout (selector, app, the integrations) and
            # the generated client, as an installed clone would.
            "PYTHONPATH": os.pathsep.join(
                [str(REPO), str(REPO / "clients" / "python"), os.environ.get("PYTHONPATH", "")]
            ),
        }
        for block in blocks(path):
            if block.lang in RUNNABLE and block.skip is None:
                run_block(block, server.url, work, env)
    finally:
        server.ensure_stopped()
