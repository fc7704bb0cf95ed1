"""Shared parts for projection tests: the Salesforce stand-in over real HTTPS, simple-salesforce
clients and connections that trust it (with logins pointed at it), and call records to write.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import requests
from simple_salesforce.api import Salesforce

from projections.calls import CallRecord
from projections.sf_connect import (
    SalesforceAuth,
    SalesforceConnection,
    SalesforceSettings,
    SessionAuth,
)
from projections.sfstandin.server import RedirectAdapter, StandIn, StandInState
from relay.log import EventLog
from relay.protocol import Envelope

START = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)

ClientFactory = Callable[..., Salesforce]
ConnectionFactory = Callable[..., SalesforceConnection]
LOGIN_HOSTS = ("login", "test", "acme.my")
"""The login domains tests use; each is pointed at the stand-in."""


def call_record(conversation: str = "conv-1", **fields: Any) -> CallRecord:
    """A completed inbound call's record, with ``fields`` changed."""
    base: dict[str, Any] = {
        "conversationId": conversation,
        "partnerId": "p",
        "agentId": "a",
        "status": "completed",
        "direction": "inbound",
        "callerNumber": "+18883973342",
        "startedAt": START,
        "lastEventAt": START,
        "eventCount": 3,
    }
    return CallRecord(**(base | fields))


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


def standin_http(standin: StandIn) -> requests.Session:
    """A requests session that trusts the stand-in and sends its logins there."""
    http = requests.Session()
    http.verify = str(standin.ca_file)
    http.trust_env = False
    http.headers["Connection"] = "close"
    for domain in LOGIN_HOSTS:
        http.mount(f"https://{domain}.salesforce.com", RedirectAdapter(standin.instance_url))
    return http


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


def run_cli(redis_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``softphone-relay ARGS`` as an operator runs it, on the test's Redis only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOFTPHONE_RELAY_")}
    return subprocess.run(
        [sys.executable, "-m", "softphone_relay.cli", *args],
        cwd=cwd,
        env=env | {"SOFTPHONE_RELAY_REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


async def eventually(check: Callable[[], Awaitable[bool]], within: float, step: float) -> None:
    """Wait until ``check()`` holds, at most ``within`` seconds."""
    for _ in range(int(within / step)):
        if await check():
            return
        await asyncio.sleep(step)
    raise AssertionError("the condition did not come true in time")


# Events in a real log, through the relay's own appender.

LOG_PARTNER = "p1"


def envelope(name: str, conversation: str, second: int, **data: Any) -> Envelope:
    """An event of ``conversation`` said ``second`` seconds after START."""
    at = START + timedelta(seconds=second)
    return Envelope(
        id=str(uuid.uuid4()),
        name=name,
        agentId="agent-1",
        partnerId=LOG_PARTNER,
        conversationId=conversation,
        at=at,
        receivedAt=at,
        sessionId="s",
        data={"partnerId": LOG_PARTNER, "conversationId": conversation, **data},
    )


def call(conversation: str, second: int = 0) -> list[Envelope]:
    """An answered inbound call with late notes."""
    return [
        envelope("incomingCall", conversation, second, callerANI="+18883973342"),
        envelope("callAccepted", conversation, second + 1, callerANI="+18883973342"),
        envelope("callEnded", conversation, second + 60, duration=59, callType="inbound"),
        envelope("callNotesSubmitted", conversation, second + 90, notes=f"notes of {conversation}"),
    ]


async def append(redis: aioredis.Redis, envelopes: list[Envelope]) -> list[str]:
    """Through the relay's own appender; the stream ids."""
    results = await EventLog(redis, shards=1, dedupe_ttl=3600).append_batch(envelopes)
    return [r.seq for r in results]
