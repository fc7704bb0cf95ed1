"""Real parts for the tests: a Redis-compatible server from the pip-installed binary, real
relays on free ports, and a small websocket client that speaks ``softphone.v1``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect

from relay import log as event_log
from relay.auth import mint_token
from relay.embedded import EmbeddedServer
from relay.server import Relay
from relay.settings import Partner, Settings

SECRET = "test-secret-0123456789abcdef-0123456789"
PARTNER = "215fd887-39be-4935-981f-2670d6afeaa7"
OTHER_PARTNER = "99999999-0000-4000-8000-000000000000"
DATA = Path(__file__).parent / "data"
PARTNERS = {
    PARTNER: Partner(
        disposition=["code1", "code2"],
        businessSegmentId="d6afeaa7-39be-4935-981f-2670215fd887",
        channelOriginId="57053e21-0440-4689-a27a-513d7dceebde",
        dialFrom="+18449401117",
    )
}


def contract_examples() -> dict[str, Any]:
    """The contract's sample payloads (tests/data/contract-examples.json)."""
    return json.loads((DATA / "contract-examples.json").read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """One real server for the whole run."""
    with EmbeddedServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: EmbeddedServer) -> str:
    """The shared server's URL, emptied before each test."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """An async client to the test's server."""
    client = event_log.connect(redis_url)
    yield client
    await client.aclose()


def make_settings(**overrides: Any) -> Settings:
    """Settings for a test relay: free port, known secret, the sample partner."""
    fields: dict[str, Any] = {
        "secret": SECRET,
        "port": 0,
        "partners": PARTNERS,
        "allowed_origins": ("https://*.lightning.force.com",),
    }
    fields.update(overrides)
    return Settings(**fields)


RelayFactory = Callable[..., Awaitable[Relay]]


@pytest.fixture
async def start_relay(redis_url: str) -> AsyncIterator[RelayFactory]:
    """Start relays on the test's server (closed at the end of the test)."""
    async with AsyncExitStack() as stack:

        async def start(
            url: str | None = None, demo_token: Callable[[], str] | None = None, **overrides: Any
        ) -> Relay:
            client = event_log.connect(url or redis_url)
            stack.push_async_callback(client.aclose)
            relay = Relay(make_settings(**overrides), client, demo_token=demo_token)
            await relay.start()
            stack.push_async_callback(relay.close)
            return relay

        yield start


@pytest.fixture
async def relay(start_relay: RelayFactory) -> Relay:
    """One relay with default test settings."""
    return await start_relay()


def token(agent: str = "agent-1", partner: str = PARTNER, ttl: int = 600) -> str:
    """A valid agent token."""
    return mint_token(SECRET, agent, partner, ttl)


def now_iso() -> str:
    """The current time in RFC 3339."""
    return datetime.now(UTC).isoformat()


class Agent:
    """A test client speaking softphone.v1 over a real socket."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.welcome: dict[str, Any] = {}

    async def send(self, frame: dict[str, Any] | str) -> None:
        """Send a frame (a dict is JSON-encoded)."""
        await self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def recv(self, within: float = 5.0) -> dict[str, Any]:
        """The next frame, decoded."""
        async with asyncio.timeout(within):
            return json.loads(await self.ws.recv())  # type: ignore[no-any-return]

    async def hello(self, tok: str | None = None, last_command_id: str | None = None) -> None:
        """Say hello and keep the welcome."""
        await self.send(
            {
                "type": "hello",
                "token": tok or token(),
                "lastCommandId": last_command_id,
                "client": "tests/1",
            }
        )
        self.welcome = await self.recv()
        assert self.welcome["type"] == "welcome", self.welcome

    async def event(self, name: str, data: dict[str, Any], event_id: str | None = None) -> str:
        """Send an event frame; return its id."""
        event_id = event_id or str(uuid.uuid4())
        await self.send(
            {"type": "event", "id": event_id, "name": name, "at": now_iso(), "data": data}
        )
        return event_id

    async def closed(self, within: float = 5.0) -> tuple[int | None, str | None]:
        """Wait for the relay to close the socket; its close code and reason."""
        async with asyncio.timeout(within):
            await self.ws.wait_closed()
        return self.ws.close_code, self.ws.close_reason


AgentFactory = Callable[..., Awaitable[Agent]]


@pytest.fixture
async def open_agent() -> AsyncIterator[AgentFactory]:
    """Open agent sockets to a relay (closed at the end of the test)."""
    async with AsyncExitStack() as stack:

        async def open_(
            relay: Relay,
            *,
            hello: bool = True,
            agent: str = "agent-1",
            last_command_id: str | None = None,
            **kwargs: Any,
        ) -> Agent:
            ws = await stack.enter_async_context(
                connect(
                    f"ws://127.0.0.1:{relay.port}/v1/socket",
                    subprotocols=["softphone.v1"],  # type: ignore[list-item]
                    open_timeout=5,
                    **kwargs,
                )
            )
            client = Agent(ws)
            if hello:
                await client.hello(token(agent), last_command_id)
            return client

        yield open_


def call_data(conversation: str = "conv-1", **fields: Any) -> dict[str, Any]:
    """Identity fields of a call hook plus ``fields``."""
    return {"partnerId": PARTNER, "conversationId": conversation, **fields}
