"""The control API cannot be held by clients that open connections and say nothing, or trickle
their headers (issue 25): they are limited in number and in time, and the relay's own port
goes on taking softphones meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import resource
from collections.abc import AsyncIterator

import pytest

from relay.control.api import ControlApi
from relay.control.guard import BUSY
from relay.server.server import Relay
from softphone_relay.cli.runtime import raise_open_file_limit
from tests.helpers import AgentFactory


@contextlib.asynccontextmanager
async def connections(port: int, count: int) -> AsyncIterator[list[asyncio.StreamReader]]:
    """``count`` connections that send nothing (their readers)."""
    opened = [await asyncio.open_connection("127.0.0.1", port) for _ in range(count)]
    try:
        yield [reader for reader, _ in opened]
    finally:
        for _, writer in opened:
            writer.close()


async def openapi(port: int) -> bytes:
    """The whole answer to ``GET /v1/openapi.json`` on a new connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /v1/openapi.json HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n")
    async with asyncio.timeout(5):
        answer = await reader.read()
    writer.close()
    return answer


async def test_connections_over_the_limit_get_a_503_and_are_closed(
    api: ControlApi, caplog: pytest.LogCaptureFixture
) -> None:
    """With room for 3, the fourth and fifth connections are answered 503 at once and closed
    (one log line for the two); once one of the three goes, a request is served again."""
    assert api.guard is not None
    api.guard.limit = 3
    async with connections(api.port, 3):
        refused = [await openapi(api.port) for _ in range(2)]
        assert refused == [BUSY, BUSY]
        assert api.guard.open == 3
    await asyncio.sleep(0.1)
    assert (await openapi(api.port)).startswith(b"HTTP/1.1 200 ")
    lines = [r for r in caplog.records if "api_connections_refused" in r.getMessage()]
    assert len(lines) == 1


async def test_a_connection_that_trickles_its_request_head_is_closed(api: ControlApi) -> None:
    """A request line and no end of head: the connection is dropped after the head timeout
    (0.5 s here), while a full request is answered."""
    assert api.guard is not None
    api.guard.head_timeout = 0.5
    reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
    writer.write(b"GET /v1/openapi.json HTTP/1.1\r\nHost: api\r\n")
    await writer.drain()
    async with asyncio.timeout(5):
        assert await reader.read() == b""
    writer.close()
    assert api.guard.open == 0
    assert (await openapi(api.port)).startswith(b"HTTP/1.1 200 ")


async def test_the_relay_takes_softphones_while_the_api_is_flooded(
    api: ControlApi, relay: Relay, open_agent: AgentFactory
) -> None:
    """200 silent connections to the API (limit 50): a softphone still opens its session."""
    assert api.guard is not None
    api.guard.limit = 50
    async with connections(api.port, 200):
        agent = await open_agent(relay)
        assert agent.welcome["type"] == "welcome"
        assert api.guard.open == 50


def test_the_open_file_limit_is_raised_to_the_hard_limit() -> None:
    """A relay holds a descriptor per socket: the soft limit goes up to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
    try:
        assert raise_open_file_limit() == (hard, hard)
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
