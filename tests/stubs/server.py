"""A small aiohttp server on 127.0.0.1 (port 0) that the stubs build on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web


class StubServer:
    """Runs ``app`` on loopback; ``url`` is ``http://127.0.0.1:PORT``."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.changed = asyncio.Event()

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def notify(self) -> None:
        self.changed.set()

    async def wait_until(self, condition: Callable[[], bool], within: float = 20.0) -> None:
        """Wait until ``condition()`` holds (checked whenever a request arrives); raises
        TimeoutError after ``within`` seconds."""
        async with asyncio.timeout(within):
            while not condition():
                self.changed.clear()
                try:
                    async with asyncio.timeout(0.2):
                        await self.changed.wait()
                except TimeoutError:
                    pass
