"""Fixtures of the browser tests: headless Chromium (Debian's, driven by playwright-core
through ``driver.mjs``) and a page server on another origin than the relay."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

HERE = Path(__file__).resolve().parent


class Browser:
    """The driver process: one JSON request a line, one JSON answer a line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._next = 0

    async def call(self, op: str, **args: Any) -> Any:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._next += 1
        self._process.stdin.write(json.dumps({"id": self._next, "op": op, **args}).encode() + b"\n")
        await self._process.stdin.drain()
        answer = json.loads(await asyncio.wait_for(self._process.stdout.readline(), 30))
        if not answer["ok"]:
            raise AssertionError(f"{op}: {answer['error']}")
        return answer["value"]

    async def quit(self) -> None:
        """Close the browser and end the driver."""
        if self._process.returncode is None:
            assert self._process.stdin is not None
            self._process.stdin.write(b'{"id": 0, "op": "quit"}\n')
            await self._process.stdin.drain()
            try:
                await asyncio.wait_for(self._process.wait(), 15)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()

    async def wait(self, page: int, js: str, within_ms: int = 10_000) -> Any:
        """Wait until the expression is truthy in the page; its value."""
        return await self.call("wait", page=page, js=js, timeout=within_ms)

    async def run(self, page: int, js: str) -> Any:
        """Evaluate an expression in the page; its JSON value."""
        return await self.call("eval", page=page, js=js)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless Chromium, fresh profile per test."""
    node = shutil.which("node")
    assert node is not None, "node is needed for the browser tests"
    assert (HERE / "node_modules" / "playwright-core").is_dir(), (
        "run `npm ci` in tests/clientjs/ (scripts/test.sh does)"
    )
    process = await asyncio.create_subprocess_exec(
        node,
        str(HERE / "driver.mjs"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=HERE,
        env={**os.environ, "CHROMIUM": shutil.which("chromium") or "/usr/bin/chromium"},
    )
    assert process.stdout is not None
    ready = json.loads(await asyncio.wait_for(process.stdout.readline(), 60))
    assert ready["ready"]
    driver = Browser(process)
    yield driver
    await driver.quit()


@pytest.fixture
async def page_origin() -> AsyncIterator[str]:
    """A page server on another origin than the relay (the CRM's, in real life)."""
    app = web.Application()

    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(HERE / request.match_info["name"])

    app.router.add_get("/{name:(softphone|module)-page.html}", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()
