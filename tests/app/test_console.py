"""/console, /docs and /redoc in a real headless browser (Debian's chromium, driven by
playwright with that executable; scripts/test.sh installs it when missing), offline: every
request that leaves loopback is refused and recorded, and none may be attempted.

MMDSHOT_CONSOLE_SCREENSHOT=docs/img/console.png also writes the README's screenshot."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.app.conftest import REPO, Server, wait_for_job

playwright = pytest.importorskip("playwright.sync_api", reason="the dev extra installs playwright")

TWEETS = [
    ("my self-driving car braked hard for a plastic bag", "negative"),
    ("the autopilot swerved at a shadow on the road", "negative"),
    ("lane assist fought me all the way home", "negative"),
    ("rode in a driverless taxi today, smooth ride", "positive"),
    ("the robotaxi was calm and on time", "positive"),
    ("my car parked itself perfectly", "positive"),
    ("google tests autonomous cars in austin", "neutral"),
    ("a new self-driving law passed the senate", "neutral"),
    ("the city counts its autonomous buses", "neutral"),
]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "no chromium: scripts/test.sh installs Debian's (apt-get install chromium)"
    return found


class Offline:
    """Refuses every request to a host other than the server's, and remembers each."""

    def __init__(self, allowed: str) -> None:
        self.allowed = allowed
        self.refused: list[str] = []
        self.served: list[str] = []

    def __call__(self, route: playwright.Route) -> None:
        url = route.request.url
        if urlsplit(url).netloc == self.allowed:
            self.served.append(url)
            route.continue_()
        else:
            self.refused.append(url)
            route.abort()


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("console")).start()
    with running.client() as client:
        client.post("/v1/pools", json={"name": "tweets", "description": "car tweets, 3 labels"})
        lines = [{"input": text, "output": label, "label": label} for text, label in TWEETS]
        started = client.post("/v1/pools/tweets/imports", json=lines)
        assert wait_for_job(client, started.json()["id"])["status"] == "succeeded"
    yield running
    running.stop()


@pytest.fixture
def page(console_server: Server) -> Iterator[tuple[playwright.Page, Offline]]:
    offline = Offline(urlsplit(console_server.url).netloc)
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.route("**/*", offline)
        opened = context.new_page()
        errors: list[str] = []
        opened.on("pageerror", lambda error: errors.append(str(error)))
        yield opened, offline
        browser.close()
        assert errors == [], errors


def ask(browser: playwright.Page, url: str, query: str, k: int, template: str = "") -> None:
    """Opens the console at ``url``, waits for the pools, and submits a selection."""
    browser.goto(url)
    browser.locator("#pools li[data-pool=tweets]").wait_for()
    browser.fill("#query", query)
    browser.fill("#k", str(k))
    browser.fill("#template", template)
    browser.click("button[type=submit]")


def test_console_selects_offline(
    console_server: Server, page: tuple[playwright.Page, Offline]
) -> None:
    browser, offline = page
    template = r"Tweet: {input}\nSentiment: {output}"
    ask(browser, f"{console_server.url}/console", "the autopilot braked at nothing", 3, template)
    assert "9 examples" in browser.locator("#pools li").first.inner_text()
    browser.locator("#examples tbody tr").nth(8).wait_for()
    browser.locator("#chosen tbody tr").nth(2).wait_for()
    assert browser.locator("#chosen tbody tr").count() == 3
    with httpx.Client(base_url=console_server.url) as client:
        expected = client.post(
            "/v1/pools/tweets/select",
            json={
                "query": "the autopilot braked at nothing",
                "k": 3,
                "template": "Tweet: {input}\nSentiment: {output}",
            },
        ).json()
    shown = browser.locator("#chosen tbody tr td:nth-child(2)").all_inner_texts()
    assert shown == [example["input"] for example in expected["examples"]]
    assert browser.locator("#prompt").inner_text() == expected["prompt"]
    headers = [text.lower() for text in browser.locator("#chosen thead th").all_inner_texts()]
    assert headers[-3:] == ["similarity", "affinity", "contribution"]
    for column, name in zip((6, 7, 8), ("similarity", "affinity", "contribution"), strict=True):
        cells = browser.locator(f"#chosen tbody tr td:nth-child({column})").all_inner_texts()
        assert cells == [f"{example[name]:.4f}" for example in expected["examples"]]
    bars = browser.locator("#chart rect.bar")
    assert bars.count() == 1 + len(expected["baselines"]) == 3
    chart = browser.locator("#chart").text_content() or ""
    assert f"{expected['mmd']:.3f}" in chart
    assert browser.locator("#error").is_hidden()
    target = os.environ.get("MMDSHOT_CONSOLE_SCREENSHOT")
    if target:
        browser.screenshot(path=str(REPO / target), full_page=True)
    assert offline.refused == [] and offline.served


def test_console_shows_service_errors(
    console_server: Server, page: tuple[playwright.Page, Offline]
) -> None:
    browser, offline = page
    ask(browser, f"{console_server.url}/console/", "anything", 20)
    browser.locator("#error").wait_for()
    assert "(422 invalid_input)" in browser.locator("#error").inner_text()
    assert offline.refused == []


@pytest.mark.parametrize(
    ("path", "ready"), [("/docs", ".swagger-ui .info .title"), ("/redoc", "h1")]
)
def test_api_docs_render_offline(
    console_server: Server, page: tuple[playwright.Page, Offline], path: str, ready: str
) -> None:
    browser, offline = page
    browser.goto(f"{console_server.url}{path}")
    browser.locator(ready).first.wait_for(timeout=30_000)
    assert "mmdshot" in browser.locator(ready).first.inner_text()
    assert offline.refused == []
    assert any(url.endswith(".js") for url in offline.served)


def test_console_files_are_package_data() -> None:
    import tomllib

    console = REPO / "app" / "console"
    shipped = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = shipped["package-data"]["app"]
    files = {path.name for path in console.iterdir()}
    assert {"index.html", "console.js", "console.css"} <= files
    assert all(any(Path("console", name).match(p) for p in patterns) for name in files)
