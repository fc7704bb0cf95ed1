"""Real parts for the tests: a Redis-compatible server from the pip-installed binary, real
relays on free ports, websocket agents, and the Salesforce stand-in over real HTTPS with
simple-salesforce clients and connections that trust it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
import requests
from simple_salesforce.api import Salesforce
from websockets.asyncio.client import connect

from projections.salesforce.connect import (
    SalesforceAuth,
    SalesforceConnection,
    SalesforceSettings,
    SessionAuth,
)
from projections.salesforce.standin.server import StandIn, StandInState
from relay.log import clients
from relay.server.server import Relay
from softphone_relay.embedded import EmbeddedCluster, EmbeddedServer
from tests.helpers import (
    Agent,
    AgentFactory,
    ClientFactory,
    ConnectionFactory,
    RelayFactory,
    make_settings,
    standin_http,
    token,
)


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
    client = clients.connect(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def start_relay(redis_url: str) -> AsyncIterator[RelayFactory]:
    """Start relays on the test's server (closed at the end of the test)."""
    async with AsyncExitStack() as stack:

        async def start(
            url: str | None = None, demo_token: Callable[[], str] | None = None, **overrides: Any
        ) -> Relay:
            client = clients.connect(url or redis_url)
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
            role: str | None = None,
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
                await client.hello(token(agent), last_command_id, role)
            return client

        yield open_


@pytest.fixture
def standin_state() -> StandInState:
    """The stand-in's org and sessions (a vanilla org; override for custom objects)."""
    return StandInState()


@pytest.fixture
async def standin(standin_state: StandInState) -> AsyncIterator[StandIn]:
    """The stand-in on a free port."""
    server = StandIn(standin_state)
    await server.start()
    yield server
    await server.close()


@pytest.fixture
def client(standin: StandIn) -> Iterator[ClientFactory]:
    """simple-salesforce clients on the stand-in, trusting its throwaway CA."""
    sessions: list[requests.Session] = []

    def make(session_id: str | None = None) -> Salesforce:
        http = requests.Session()
        http.verify = str(standin.ca_file)
        # requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override Session.verify; opt out.
        http.trust_env = False
        # One connection per request: nothing is left half-open when the loop ends.
        http.headers["Connection"] = "close"
        sessions.append(http)
        return Salesforce(
            instance_url=standin.instance_url,
            session_id=session_id or standin.state.new_session(),
            session=http,
        )

    yield make
    for http in sessions:
        http.close()


@pytest.fixture
def sf(client: ClientFactory) -> Salesforce:
    """One simple-salesforce client on the stand-in."""
    return client()


@pytest.fixture
def connection(standin: StandIn) -> Iterator[ConnectionFactory]:
    """Salesforce connections to the stand-in (a live session unless ``auth`` is given)."""
    made: list[SalesforceConnection] = []

    def make(auth: SalesforceAuth | None = None, **settings: Any) -> SalesforceConnection:
        auth = auth or SessionAuth(standin.instance_url, standin.state.new_session())
        made.append(
            SalesforceConnection(
                SalesforceSettings(auth=auth, ca_file=str(standin.ca_file), **settings),
                http=standin_http(standin),
            )
        )
        return made[-1]

    yield make
    for one in made:
        one.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[EmbeddedCluster]:
    """A Redis Cluster of three primaries (the embedded valkey-server), slots split evenly,
    AOF on each; a fresh one per test."""
    with EmbeddedCluster(tmp_path / "cluster") as running:
        yield running
