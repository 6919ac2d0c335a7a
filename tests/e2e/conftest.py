"""Browser tests: the real ``selfcare`` web app on loopback, driven by a real headless
Chromium (Debian's ``/usr/bin/chromium`` through Playwright; no browser is downloaded).

Fixtures, for any page of the product:

- ``serve``: starts the app the way ``selfcare serve`` builds it (settings, container,
  every feature) on ``127.0.0.1``, plain HTTP or TLS with a development certificate;
  ``async with serve(tls=True, telegram_token=...) as site:`` gives ``site.url`` (also
  the app's ``SELFCARE_PUBLIC_URL``, so links the bot sends open as they are),
  ``site.container`` (the database, clock and services) and ``site.app``.
- ``browser``: a headless Chromium; ``page``: a phone-sized page in it (Thai locale) that
  records console errors and CSP violations in ``page_problems`` (the tests assert none).

Without ``/usr/bin/chromium`` the tests are skipped with the reason, except under
``CI=true`` (``.ci/run`` installs it), where they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from blockbuster import BlockBuster
from playwright.async_api import async_playwright  # at collection: importing reads files

from bot import bootstrap, tls
from bot.app import create_app, default_features
from bot.bootstrap import Container
from bot.settings import load_settings
from storage import migrate

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}  # a common phone, CSS pixels
_STATUS_NOTE = "Failed to load resource: the server responded with a status of"

# Import every feature's web module now (collection time): some read files when imported.
default_features()


@dataclass
class Site:
    url: str
    app: web.Application
    container: Container


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def serve(
    database_url: str, keyring_path: Path, tmp_path: Path
) -> Callable[..., contextlib.AbstractAsyncContextManager[Site]]:
    """``async with serve(tls=False, **settings) as site``: the app on loopback."""

    @contextlib.asynccontextmanager
    async def running(*, tls_on: bool = False, **overrides: Any) -> AsyncIterator[Site]:
        port = _free_port()
        scheme = "https" if tls_on else "http"
        url = f"{scheme}://127.0.0.1:{port}"
        values: dict[str, Any] = {
            "database_url": database_url,
            "keyring_file": keyring_path,
            "env": "test",
            "public_url": url,
            "telegram_chat_messages_per_second": 1000,
        }
        values.update(overrides)
        settings = await asyncio.to_thread(load_settings, **values)  # reads .env
        context: ssl.SSLContext | None = None
        if tls_on:
            cert, key = await asyncio.to_thread(
                tls.development_certificate, tmp_path / "tls", ["127.0.0.1"]
            )
            context = await asyncio.to_thread(tls.server_context, cert, key)
        await migrate.upgrade(database_url)
        container = await bootstrap.build(settings)
        runner = web.AppRunner(create_app(container), access_log=None)
        try:
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
            yield Site(url, runner.app, container)
        finally:
            await runner.cleanup()
            await container.close()

    return running


@pytest.fixture
def chromium() -> Path:
    """Debian's chromium (checked outside the event loop: it is a file look-up)."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (apt-get install -y chromium fonts-thai-tlwg)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path, blockbuster: BlockBuster) -> AsyncIterator[Any]:
    # Starting Playwright's driver looks up its files: test scaffolding, not the product,
    # so the guard against blocking calls is off for that moment only.
    blockbuster.deactivate()
    try:
        manager = async_playwright()
        playwright = await manager.start()
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS
        )
    finally:
        blockbuster.activate()
    try:
        yield launched
    finally:
        await launched.close()
        await manager.__aexit__(None, None, None)


@pytest.fixture
def page_problems() -> list[str]:
    """Console errors and CSP violations the ``page`` saw."""
    return []


@pytest.fixture
async def page(browser: Any, page_problems: list[str]) -> AsyncIterator[Any]:
    context = await browser.new_context(
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
        locale="th-TH",
        ignore_https_errors=True,  # the development certificate is self-signed
    )
    tab = await context.new_page()

    def on_console(message: Any) -> None:
        # A 4xx page is an answer the tests check themselves, not a problem of the page.
        if message.type == "error" and not message.text.startswith(_STATUS_NOTE):
            page_problems.append(message.text)

    tab.on("console", on_console)
    tab.on("pageerror", lambda error: page_problems.append(str(error)))
    try:
        yield tab
    finally:
        await context.close()
