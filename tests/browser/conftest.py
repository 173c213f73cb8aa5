"""Browser tests: the real web app (frontend/dist) served by a real Hub, driven in headless Chromium.

Fixtures:
- ``hub``: a Hub with its own database, Redis prefix and NATS hub server, served by uvicorn on a free
  port (an asyncio task in the test's event loop) with ``frontend_dir`` = the production build.
- ``browser``: Chromium from the system (``/usr/bin/chromium``, never a downloaded one).
- ``open_page``: a new page (own context, own cookies) that records console errors and uncaught
  exceptions; the test fails at teardown if there was any.
- ``shot``: saves a screenshot under ``test-artifacts/screenshots/``.

The build and Chromium must exist (``scripts/test.sh`` makes both); without them these tests fail
with the command that fixes it, rather than skip and hide the web app from the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "frontend" / "dist"
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("PROXUS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1440, "height": 900}

import playwright.async_api as playwright_api  # noqa: E402 - a dev dependency in pyproject.toml
from browser_support import allowed_http_error  # noqa: E402


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(pytest.mark.services)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[_FAILED] = report.failed


_FAILED = pytest.StashKey[bool]()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclasses.dataclass
class Hub:
    url: str
    settings: Any
    nats: Any  # the Hub's NATS server (JetStream domain "hub"; edges join it as leaf nodes)


@pytest.fixture(scope="session")
def dist() -> Path:
    if not (DIST / "index.html").exists():
        pytest.fail("the web app is not built: run scripts/bootstrap.sh (or `npm run build` in frontend/)")
    if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: run scripts/bootstrap.sh --with-browser (apt-get install chromium)")
    return DIST


@pytest.fixture
async def hub(
    dist: Path, tmp_path: Path, database_url: str, nats_server_factory: Any, redis_url: str, redis_prefix: str
) -> AsyncIterator[Hub]:
    import uvicorn

    from backend.app import create_app
    from tests.integration.hub_support import hub_settings

    nats = nats_server_factory.hub()
    settings = dataclasses.replace(
        hub_settings(tmp_path, database_url, nats.url, redis_url, redis_prefix), frontend_dir=dist
    )
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(600):
        if server.started or task.done():
            break
        await asyncio.sleep(0.05)
    if task.done():
        task.result()  # raises the startup error
    assert server.started, "the Hub did not start"
    try:
        yield Hub(url=f"http://127.0.0.1:{port}", settings=settings, nats=nats)
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, 15)
        except TimeoutError:
            task.cancel()


@pytest.fixture
async def browser(dist: Path) -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


OpenPage = Callable[..., Awaitable[Any]]


@pytest.fixture
async def open_page(request: pytest.FixtureRequest, browser: Any, hub: Hub) -> AsyncIterator[OpenPage]:
    """``page = await open_page()``: a fresh context on the Hub; console errors fail the test.
    A failing test leaves a screenshot of each of its pages in test-artifacts/screenshots/failed-*."""
    contexts: list[Any] = []
    pages: list[Any] = []
    problems: list[str] = []

    async def factory(**context_args: Any) -> Any:
        context = await browser.new_context(base_url=hub.url, viewport=VIEWPORT, accept_downloads=True, **context_args)
        contexts.append(context)
        page = await context.new_page()
        pages.append(page)
        page.set_default_timeout(15_000)

        def on_console(message: Any) -> None:
            if message.type != "error":
                return
            if allowed_http_error(page, message.text):
                return
            problems.append(f"console error on {page.url}: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda exc: problems.append(f"uncaught exception on {page.url}: {exc}"))
        return page

    try:
        yield factory
    finally:
        if request.node.stash.get(_FAILED, False):
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            for i, page in enumerate(pages):
                with contextlib.suppress(Exception):  # a closed page: nothing to show
                    await page.screenshot(path=str(SCREENSHOTS / f"failed-{request.node.name}-{i}.png"))
        for context in contexts:
            await context.close()
    assert not problems, "the browser reported errors:\n" + "\n".join(problems)


@pytest.fixture
def shot() -> Callable[[Any, str], Awaitable[None]]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    async def take(page: Any, name: str) -> None:
        await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))

    return take
