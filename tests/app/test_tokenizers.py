"""Per-pool tokenizers over HTTP: a pool names one of ``MMDSHOT_TOKENIZERS`` at creation and
its token counts and budgets follow it (a word-level tokenizer built here counts one token a
word, where the bundled WordPiece splits long words into many)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from selector.embedding import bundled_model_path
from tests.app.conftest import REPO, Server, assert_error, jsonl, wait_for_job

WORDS = ["antidisestablishmentarianism", "floccinaucinihilipilification", "pneumonoultra"]
EXAMPLES = [
    {"id": f"w{i}", "input": f"{WORDS[i % 3]} {WORDS[(i + 1) % 3]} number{i}", "output": "x"}
    for i in range(12)
]


def word_level(folder: Path) -> Path:
    """A tokenizer folder whose tokenizer.json counts one token per word (all unknown)."""
    tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    folder.mkdir()
    tokenizer.save(str(folder / "tokenizer.json"))
    return folder


def counts(tokenizer_file: Path, texts: list[str]) -> list[int]:
    """The naive reference: each text encoded on its own, no special tokens or padding."""
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return [len(tokenizer.encode(text, add_special_tokens=False).ids) for text in texts]


@pytest.fixture(scope="module")
def words_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    root = tmp_path_factory.mktemp("tokenizers")
    folder = word_level(root / "words")
    running = Server(root / "data", tokenizers=f"words={folder}").start()
    yield running, folder / "tokenizer.json"
    running.stop()


def test_pool_counts_and_budgets_with_its_tokenizer(words_server: tuple[Server, Path]) -> None:
    server, words_file = words_server
    texts = [f"{example['input']}\n{example['output']}" for example in EXAMPLES]
    bundled = counts(bundled_model_path() / "tokenizer.json", texts)
    words = counts(words_file, texts)
    assert words == [4] * len(EXAMPLES) and min(bundled) > 10  # they count differently
    with server.client() as client:
        info = client.get("/v1/info").json()
        assert info["tokenizers"] == ["default", "words"]
        made = client.post("/v1/pools", json={"name": "plain"})
        assert made.status_code == 201 and made.json()["tokenizer"] == "default"
        made = client.post("/v1/pools", json={"name": "worded", "tokenizer": "words"})
        assert made.status_code == 201 and made.json()["tokenizer"] == "words"
        assert client.get("/v1/pools/worded").json()["tokenizer"] == "words"
        # Upserts (plain) and imports (worded) both count with the pool's tokenizer.
        upserted = client.post("/v1/pools/plain/examples", json={"examples": EXAMPLES})
        assert upserted.status_code == 200, upserted.text
        job = client.post(
            "/v1/pools/worded/imports",
            content=jsonl(EXAMPLES),
            headers={"content-type": "application/x-ndjson"},
        ).json()
        assert wait_for_job(client, job["id"])["status"] == "succeeded"
        for pool, expected in (("plain", bundled), ("worded", words)):
            page = client.get(f"/v1/pools/{pool}/examples", params={"limit": 100}).json()
            stored = {example["id"]: example["token_count"] for example in page["examples"]}
            assert stored == {e["id"]: n for e, n in zip(EXAMPLES, expected, strict=True)}
        # A budget of 3 x 4 tokens holds three word-counted examples, no bundled-counted one.
        ask = {"query": WORDS[0], "k": 3, "constraints": {"token_budget": 12}}
        chosen = client.post("/v1/pools/worded/select", json=ask)
        assert chosen.status_code == 200, chosen.text
        assert len(chosen.json()["examples"]) == 3
        assert_error(client.post("/v1/pools/plain/select", json=ask), 409, "infeasible_constraint")


def test_unknown_tokenizer_is_422(words_server: tuple[Server, Path]) -> None:
    server, _ = words_server
    with server.client() as client:
        refused = client.post("/v1/pools", json={"name": "nope", "tokenizer": "gpt-9"})
        assert_error(refused, 422, "invalid_input")
        assert refused.json()["error"]["detail"]["tokenizers"] == ["default", "words"]
        assert client.get("/v1/pools/nope").status_code == 404


def test_bad_tokenizer_setting_stops_serve(tmp_path: Path) -> None:
    """A tokenizer path with no tokenizer.json, or a redefined default: exit status 2 and one
    line naming the setting."""
    for value in (f"words={tmp_path}", f"default={bundled_model_path()}", "words"):
        done = subprocess.run(
            [sys.executable, "-m", "app.cli", "serve", "--data-dir", str(tmp_path / "d")],
            cwd=REPO,
            env={**os.environ, "MMDSHOT_TOKENIZERS": value, "MMDSHOT_EMBEDDER": "hashing"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("mmdshot: MMDSHOT_TOKENIZERS"), done.stderr
        assert "Traceback" not in done.stderr
