"""What the tests share that is not a fixture: constants, clients, builders of realistic
data, and helpers that read the stand-in or run the command line.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, cast
from urllib.parse import urlsplit, urlunsplit

import msgspec
import redis.asyncio as aioredis
from requests import PreparedRequest, Response, Session
from requests.adapters import HTTPAdapter
from simple_salesforce.api import Salesforce
from websockets.asyncio.client import ClientConnection

from projections.archive.catalog import ArchiveCatalog
from projections.archive.stores import ArchiveStore
from projections.calls.fold import CallRecord
from projections.outcomes import Done, LogEntry, Outcome, Reject, Retry
from projections.salesforce.connect import SalesforceConnection
from projections.salesforce.standin.server import StandIn
from relay.log import keys
from relay.log.envelope import Envelope, decode_stored
from relay.log.event_log import EventLog
from relay.server.server import Relay
from relay.settings import Partner, RelaySettings
from relay.wire.auth import mint_token
from softphone_relay.embedded import EmbeddedCluster

SECRET = "test-secret-0123456789abcdef-0123456789"


PARTNER = "215fd887-39be-4935-981f-2670d6afeaa7"


OTHER_PARTNER = "99999999-0000-4000-8000-000000000000"


API_KEY = "partner-key-0123456789"
"""The control API key of :data:`PARTNER` in tests."""
OTHER_API_KEY = "other-partner-key-0123456789"
"""The control API key of :data:`OTHER_PARTNER` in tests."""


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


def make_settings(**overrides: Any) -> RelaySettings:
    """Settings for a test relay: free port, known secret, the sample partner."""
    fields: dict[str, Any] = {
        "secret": SECRET,
        "port": 0,
        "partners": PARTNERS,
        "allowed_origins": ("https://softphone.example.test",),
    }
    fields.update(overrides)
    return RelaySettings(**fields)


RelayFactory = Callable[..., Awaitable[Relay]]


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

    async def next(self, kind: str, within: float = 5.0) -> dict[str, Any]:
        """The next frame of type ``kind`` (frames of other types are skipped)."""
        async with asyncio.timeout(within):
            while (frame := await self.recv(within))["type"] != kind:
                pass
        return frame

    async def hello(
        self, tok: str | None = None, last_command_id: str | None = None, role: str | None = None
    ) -> None:
        """Say hello (as ``role``, else the softphone) and keep the welcome."""
        await self.send(
            {
                "type": "hello",
                "token": tok or token(),
                "lastCommandId": last_command_id,
                "client": "tests/1",
                **({"role": role} if role else {}),
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


def event_frame(event_id: str, conversation: str | None = None) -> str:
    """A callEnded event frame as JSON text (a fresh conversation unless one is named)."""
    return json.dumps(
        {
            "type": "event",
            "id": event_id,
            "name": "callEnded",
            "at": now_iso(),
            "data": call_data(conversation or str(uuid.uuid4())),
        }
    )


def call_data(conversation: str = "conv-1", **fields: Any) -> dict[str, Any]:
    """Identity fields of a call hook plus ``fields``."""
    return {"partnerId": PARTNER, "conversationId": conversation, **fields}


START = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


ClientFactory = Callable[..., Salesforce]


ConnectionFactory = Callable[..., SalesforceConnection]


LOGIN_HOSTS = ("login", "test", "acme.my")
"""The login domains tests use; each is pointed at the stand-in."""


def cluster_url(cluster: EmbeddedCluster) -> str:
    """The ``redis+cluster://`` URL of an embedded cluster's seed node."""
    return "redis+cluster://" + cluster.url.split("://", 1)[1]


def conversation_ids(count: int, *, longest: bool = False) -> list[str]:
    """Conversation ids shaped like the contract's: UUIDs, or (``longest``) ids of the 128
    characters the contract allows (a tenant prefix, then UUIDs)."""
    ids = [str(uuid.uuid4()) for _ in range(count)]
    if not longest:
        return ids
    return [(f"tenant-eu-west-1:{i}:" + i * 4)[:128] for i in ids]


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


def standin_http(standin: StandIn) -> Session:
    """A requests session that trusts the stand-in and sends its logins there."""
    http = Session()
    http.verify = str(standin.ca_file)
    http.trust_env = False
    http.headers["Connection"] = "close"
    for domain in LOGIN_HOSTS:
        http.mount(f"https://{domain}.salesforce.com", RedirectAdapter(standin.instance_url))
    return http


CLI: Final = [sys.executable, "-m", "softphone_relay"]
"""The command line, as an operator runs it (from this environment's install)."""


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any ``SOFTPHONE_RELAY_`` variable (or active venv), plus
    ``extra``."""
    drop = ("SOFTPHONE_RELAY_", "VIRTUAL_ENV", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    return env | extra


def run_cli(
    redis_url: str | None, cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``softphone-relay ARGS`` in ``cwd`` with ``env`` (default: a clean environment), on the
    test's Redis when ``redis_url`` is given."""
    env = clean_env() if env is None else env
    if redis_url is not None:
        env = env | {"SOFTPHONE_RELAY_REDIS_URL": redis_url}
    return subprocess.run(
        [*CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=30, check=False
    )


async def eventually(check: Callable[[], Awaitable[bool]], within: float, step: float) -> None:
    """Wait until ``check()`` holds, at most ``within`` seconds."""
    for _ in range(int(within / step)):
        if await check():
            return
        await asyncio.sleep(step)
    raise AssertionError("the condition did not come true in time")


LOG_PARTNER = "p1"


def envelope(
    name: str, conversation: str, second: int, *, partner: str = LOG_PARTNER, **data: Any
) -> Envelope:
    """An event of ``conversation`` (of ``partner``) said ``second`` seconds after START."""
    at = START + timedelta(seconds=second)
    return Envelope(
        id=str(uuid.uuid4()),
        name=name,
        agentId="agent-1",
        partnerId=partner,
        conversationId=conversation,
        at=at,
        receivedAt=at,
        sessionId="s",
        data={"partnerId": partner, "conversationId": conversation, **data},
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
    results = await EventLog(redis, shards=1, dedupe_ttl=3600).append_all(envelopes)
    return [r.seq for r in results]


def logged(entry_id: bytes, fields: dict[bytes, bytes]) -> dict[str, Any]:
    """A log entry's envelope as plain data, as the readers see it (the stored format put
    back together)."""
    return cast(dict[str, Any], msgspec.to_builtins(decode_stored(fields[b"e"], entry_id.decode())))


async def shard_log(redis: aioredis.Redis, shard: int) -> list[tuple[str, bytes]]:
    """A shard's entries as (stream id, field ``e``)."""
    raw = cast(list[tuple[bytes, dict[bytes, bytes]]], await redis.xrange(keys.event_stream(shard)))
    return [(entry_id.decode(), fields[b"e"]) for entry_id, fields in raw]


async def shard_archive(store: ArchiveStore, shard: int) -> list[tuple[str, bytes]]:
    """What the archive holds of a shard, in the same shape as :func:`shard_log`."""
    catalog = ArchiveCatalog(store)
    return [
        (entry.id, bytes(entry.e))
        for index in await catalog.indexes(shard)
        for entry in await catalog.entries(index)
    ]


def tasks_of(standin: StandIn) -> list[dict[str, Any]]:
    """The stand-in's Task records."""
    return [r for r in standin.state.org.records.values() if r["attributes"]["type"] == "Task"]


def tasks(standin: StandIn) -> dict[str, dict[str, Any]]:
    """The stand-in's Tasks by conversation (``CallObject``); fails if a conversation has two."""
    found = [r for r in standin.state.org.records.values() if r["attributes"]["type"] == "Task"]
    by_call = {r["CallObject"]: r for r in found}
    assert len(by_call) == len(found), "a conversation has two Tasks"
    return by_call


async def no_frame(agent: Agent, within: float = 0.4) -> bool:
    """True when nothing arrives on the socket for ``within`` seconds."""
    try:
        frame = await agent.recv(within=within)
    except TimeoutError:
        return True
    raise AssertionError(f"unexpected frame {frame}")


class Recorder:
    """A projection that records what it handled; some ids fail as told."""

    group = "calls"

    def __init__(
        self,
        *,
        retry: set[str] = frozenset(),
        reject: set[str] = frozenset(),  # type: ignore[assignment]
        gate: asyncio.Event | None = None,
    ) -> None:
        self.handled: list[str] = []
        self.retry, self.reject, self.gate = set(retry), set(reject), gate
        self.started = asyncio.Event()

    async def handle(self, entries: list[LogEntry]) -> dict[str, Outcome]:
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        outcomes: dict[str, Outcome] = {}
        for entry in entries:
            assert entry.envelope is not None
            event_id = entry.envelope.id
            if event_id in self.reject:
                outcomes[entry.id] = Reject(f"{event_id} is refused")
            elif event_id in self.retry:
                outcomes[entry.id] = Retry(f"{event_id} failed for now")
            else:
                self.handled.append(event_id)
                outcomes[entry.id] = Done()
        return outcomes


async def append_ids(client: aioredis.Redis, *event_ids: str, shard: int = 0) -> list[str]:
    ids = []
    for event_id in event_ids:
        envelope = Envelope(
            id=event_id,
            name="callEnded",
            agentId="a",
            partnerId=PARTNER,
            conversationId="c",
            at=datetime.now(UTC),
            receivedAt=datetime.now(UTC),
            sessionId="s",
            data={"partnerId": PARTNER, "conversationId": "c"},
        )
        entry_id = await client.xadd(keys.event_stream(shard), {"e": msgspec.json.encode(envelope)})
        ids.append(entry_id.decode())
    return ids


class RedirectAdapter(HTTPAdapter):
    """A requests transport that sends what it is mounted for to another host.

    simple-salesforce builds login URLs as ``https://{domain}.salesforce.com``; mounted on the
    login host of the ``requests.Session`` given to it, this points the login at the stand-in
    without patching the library (SALESFORCE.md).
    """

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self._base = urlsplit(base_url)
        self.requested: list[str] = []
        """The URLs asked for, before redirection (where a login was sent)."""

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        """Send ``request`` to the same path on the base URL's host."""
        self.requested.append(request.url or "")
        url = urlsplit(request.url or "")
        request.url = urlunsplit(url._replace(scheme=self._base.scheme, netloc=self._base.netloc))
        return super().send(request, *args, **kwargs)


async def http_exchange(port: int, raw: bytes) -> bytes:
    """Send ``raw`` on a new connection to ``port``; everything answered until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    async with asyncio.timeout(5):
        answer = await reader.read()
    writer.close()
    return answer


def standin_user(standin: StandIn, name: str, role: str | None) -> str:
    """A User of the stand-in's org, in ``role`` of its activity sharing (None: no role)."""
    org = standin.state.org
    user_id = org.create("User", {"Username": f"{name}@acme.example", "LastName": name})
    if role is not None:
        assert org.sharing is not None
        org.sharing.roles[user_id] = role
    return user_id


async def late_inserts_committed(standin: StandIn) -> None:
    """Wait until every late insert of the stand-in has tried to commit."""
    for _ in range(200):
        if not standin.state.late_pending:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("a late insert never committed")


def killed(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL ``process`` (as a crash would end it: nothing of its own runs) and reap it."""
    process.send_signal(signal.SIGKILL)
    process.wait(10)
