"""Click-to-dial and presence end to end: real Redis, two relays (the agent's socket on one,
the control API beside the other), the dispatch and presence workers, real sockets and HTTP.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from projections.dispatch.projection import DispatchProjection
from projections.presence.projection import PresenceProjection
from projections.worker import Worker, WorkerSettings
from relay.control.api import ControlApi
from relay.log import clients, keys
from relay.server.server import Relay
from relay.settings import Partner
from relay.wire.auth import mint_token
from tests.helpers import (
    API_KEY,
    OTHER_API_KEY,
    OTHER_PARTNER,
    PARTNER,
    PARTNERS,
    SECRET,
    AgentFactory,
    RelayFactory,
    make_settings,
    no_frame,
)

USER_ID = "005000000000001AAA"
"""A Salesforce User id, as a token's ``sfUserId`` names one."""
TWO_PARTNERS = PARTNERS | {
    OTHER_PARTNER: Partner(
        businessSegmentId="b0000000-0000-4000-8000-000000000001",
        channelOriginId="c0000000-0000-4000-8000-000000000001",
    )
}
FAST = WorkerSettings(block_ms=20, claim_idle_ms=60_000, retry_after_ms=50)

Call = Callable[..., Awaitable[tuple[int, Any]]]


@pytest.fixture
async def relays(start_relay: RelayFactory) -> tuple[Relay, Relay]:
    """Two relay instances on the same log."""
    return await start_relay(), await start_relay()


@pytest.fixture
async def http(api: ControlApi) -> AsyncIterator[Call]:
    """``call(method, path, json=..., key=..., headers=...)`` → (status, decoded body)."""
    async with aiohttp.ClientSession(f"http://127.0.0.1:{api.port}") as session:

        async def call(
            method: str,
            path: str,
            *,
            key: str | None = API_KEY,
            headers: dict[str, str] | None = None,
            **kwargs: Any,
        ) -> tuple[int, Any]:
            sent = dict(headers or {})
            if key is not None:
                sent["Authorization"] = f"Bearer {key}"
            async with session.request(method, path, headers=sent, **kwargs) as answer:
                return answer.status, await answer.json()

        yield call


WorkersFactory = Callable[..., Awaitable[None]]


@pytest.fixture
async def workers(redis_client: aioredis.Redis) -> AsyncIterator[WorkersFactory]:
    """Start the dispatch and presence workers (stopped at the end of the test)."""
    running: list[tuple[Worker, asyncio.Task[None]]] = []

    async def start(ttl: float = 30.0) -> None:
        for projection in (
            DispatchProjection(redis_client, partners=PARTNERS, ttl=ttl),
            PresenceProjection(redis_client),
        ):
            worker = Worker(redis_client, projection, FAST)
            running.append((worker, asyncio.create_task(worker.run())))

    yield start
    for worker, _task in running:
        worker.stop()
    await asyncio.gather(*(task for _, task in running))


async def wait_for_state(call: Call, request_id: str, state: str) -> dict[str, Any]:
    for _ in range(100):
        status, body = await call("GET", f"/v1/requests/{request_id}")
        assert status == 200, body
        if body["state"] == state:
            return body  # type: ignore[no-any-return]
        await asyncio.sleep(0.02)
    raise AssertionError(f"request {request_id} is {body['state']}, not {state}")


async def test_click_to_dial_reaches_the_agent_on_another_relay_once(
    relays: tuple[Relay, Relay],
    open_agent: AgentFactory,
    http: Call,
    workers: WorkersFactory,
) -> None:
    """POST → 202 → one start_call on the socket (held by the other relay) → acked."""
    await workers()
    agent = await open_agent(relays[0])
    status, accepted = await http(
        "POST",
        "/v1/agents/agent-1/calls",
        json={"dialTo": "+1 (888) 397-3342", "recordId": "003000000000001"},
    )
    assert status == 202 and accepted["statusUrl"] == f"/v1/requests/{accepted['requestId']}"
    frame = await agent.recv()
    assert (frame["type"], frame["name"]) == ("command", "start_call")
    assert frame["data"] == {
        "partnerId": PARTNER,
        "businessSegmentId": PARTNERS[PARTNER].businessSegmentId,
        "channelOriginId": PARTNERS[PARTNER].channelOriginId,
        "dialTo": "+18883973342",
        "dialFrom": "+18449401117",
        "participantType": "Traveler",
    }
    await wait_for_state(http, accepted["requestId"], "delivered")
    await agent.send({"type": "ack", "id": frame["id"]})
    acked = await wait_for_state(http, accepted["requestId"], "acked")
    assert acked["commandId"] == frame["id"]
    assert await no_frame(agent)


async def test_apex_can_dial_for_the_running_user_by_salesforce_user_id(
    relays: tuple[Relay, Relay],
    open_agent: AgentFactory,
    http: Call,
    workers: WorkersFactory,
) -> None:
    """The softphone's token names agent ``ccaas-4711`` and its Salesforce User: a callout
    that knows only ``UserInfo.getUserId()`` reaches that agent's socket."""
    await workers()
    user = "005Hs00000A1b2CIAR"
    agent = await open_agent(relays[0], hello=False)
    await agent.hello(mint_token(SECRET, "ccaas-4711", PARTNER, 600, salesforce_user_id=user))
    status, accepted = await http(
        "POST", f"/v1/agents/{user}/calls", json={"dialTo": "+18883973342"}
    )
    assert status == 202, accepted
    frame = await agent.recv()
    assert (frame["type"], frame["name"]) == ("command", "start_call")
    status, unknown = await http(
        "POST", "/v1/agents/005Hs00000Z9y8XIAR/calls", json={"dialTo": "+18883973342"}
    )
    assert status == 404 and unknown["error"] == "not_found"


async def test_a_replayed_or_retried_request_does_not_dial_twice(
    relays: tuple[Relay, Relay],
    open_agent: AgentFactory,
    http: Call,
    workers: WorkersFactory,
    redis_client: aioredis.Redis,
) -> None:
    """The same Idempotency-Key, and the request's log entry appended again: one command."""
    await workers()
    agent = await open_agent(relays[0])
    retry = {"Idempotency-Key": "click-42"}
    _, first = await http(
        "POST", "/v1/agents/agent-1/calls", json={"dialTo": "+18883973342"}, headers=retry
    )
    assert (await agent.recv())["name"] == "start_call"
    status, again = await http(
        "POST", "/v1/agents/agent-1/calls", json={"dialTo": "+18883973342"}, headers=retry
    )
    assert status == 202 and again["requestId"] == first["requestId"] and again["duplicate"]
    shard = keys.shard_of("agent-1", 1)
    for _, fields in await redis_client.xrange(keys.event_stream(shard)):
        await redis_client.xadd(keys.event_stream(shard), fields)  # a replay of the log
    assert await no_frame(agent, within=0.5)
    assert await redis_client.xlen(keys.command_stream("agent-1")) == 1


async def test_a_request_that_expired_before_dispatch_never_reaches_the_socket(
    relays: tuple[Relay, Relay],
    open_agent: AgentFactory,
    http: Call,
    workers: WorkersFactory,
) -> None:
    """The dispatcher was behind for longer than the expiry: expired, nothing dialled."""
    agent = await open_agent(relays[0])
    _, accepted = await http("POST", "/v1/agents/agent-1/calls", json={"dialTo": "+18883973342"})
    await asyncio.sleep(0.4)
    await workers(ttl=0.3)
    expired = await wait_for_state(http, accepted["requestId"], "expired")
    assert "expired before it could be dispatched" in expired["reason"]
    assert await no_frame(agent)


async def test_a_command_that_expired_while_the_agent_was_away_is_never_delivered(
    relays: tuple[Relay, Relay],
    open_agent: AgentFactory,
    http: Call,
    workers: WorkersFactory,
) -> None:
    """Queued, the socket drops, the expiry passes, the agent comes back: no stale dial."""
    await workers(ttl=0.5)
    agent = await open_agent(relays[0])
    _, accepted = await http("POST", "/v1/agents/agent-1/calls", json={"dialTo": "+18883973342"})
    frame = await agent.recv()
    await agent.ws.close()  # never acked
    await asyncio.sleep(0.6)
    again = await open_agent(relays[1], last_command_id=None)
    assert frame["name"] == "start_call"
    assert await no_frame(again, within=0.5)
    status, body = await http("GET", f"/v1/requests/{accepted['requestId']}")
    assert (status, body["state"]) == (200, "delivered")


async def test_an_offline_agent_gets_a_fast_failure(
    relays: tuple[Relay, Relay],
    open_agent: AgentFactory,
    http: Call,
    workers: WorkersFactory,
    redis_client: aioredis.Redis,
) -> None:
    """The API answers 409 at once; a request already in the log fails with the reason."""
    agent = await open_agent(relays[0])
    request_id = await agent.event(
        "startCallRequested", {"partnerId": PARTNER, "dialTo": "+18883973342"}
    )
    assert (await agent.recv())["type"] == "ack"
    await agent.ws.close()
    for _ in range(50):
        if not await redis_client.exists(keys.agent_online("agent-1")):
            break
        await asyncio.sleep(0.02)
    status, body = await http("POST", "/v1/agents/agent-1/calls", json={"dialTo": "+18883973342"})
    assert (status, body["error"]) == (409, "agent_offline")
    await workers()
    failed = await wait_for_state(http, request_id, "failed")
    assert failed["reason"] == "agent 'agent-1' has no live softphone session"


async def test_presence_echo_is_suppressed_and_real_changes_pass(
    relays: tuple[Relay, Relay],
    open_agent: AgentFactory,
    http: Call,
    workers: WorkersFactory,
    redis_client: aioredis.Redis,
) -> None:
    """Our update_presence(busy) confirmed by the softphone is not news; the agent's own
    change to break is, and GET presence shows it."""
    await workers()
    agent = await open_agent(relays[0])
    status, _ = await http("POST", "/v1/agents/agent-1/presence", json={"softphoneId": "busy"})
    assert status == 202
    frame = await agent.recv()
    assert (frame["name"], frame["data"]) == ("update_presence", {"softphoneId": "busy"})
    await agent.send({"type": "ack", "id": frame["id"]})
    await agent.event("statusChanged", {"softphoneId": "busy"})
    await agent.event("statusChanged", {"softphoneId": "break"})
    for _ in range(100):
        _, presence = await http("GET", "/v1/agents/agent-1/presence")
        if presence["softphoneId"] == "break":
            break
        await asyncio.sleep(0.02)
    assert (presence["online"], presence["softphoneId"]) == (True, "break")
    changes = await redis_client.xrange(keys.PRESENCE_CHANGES)
    assert [fields[b"softphoneId"] for _, fields in changes] == [b"break"]


async def test_presence_query_asks_the_softphone(
    relays: tuple[Relay, Relay], open_agent: AgentFactory, http: Call, workers: WorkersFactory
) -> None:
    """POST presence/query becomes get_presence (payload null)."""
    await workers()
    agent = await open_agent(relays[1])
    status, _ = await http("POST", "/v1/agents/agent-1/presence/query")
    assert status == 202
    frame = await agent.recv()
    assert (frame["name"], frame["data"]) == ("get_presence", None)


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "error", "message"),
    [
        ("POST", "/v1/agents/agent-1/calls", {"key": None}, 401, "unauthorized", "Bearer KEY"),
        (
            "POST",
            "/v1/agents/agent-1/calls",
            {"key": "wrong-key-0123456789"},
            401,
            "unauthorized",
            "unknown API key",
        ),
        (
            "POST",
            "/v1/agents/agent-1/calls",
            {"key": OTHER_API_KEY, "json": {"dialTo": "+18883973342"}},
            404,
            "not_found",
            "no agent 'agent-1' has opened a softphone session",
        ),
        (
            "POST",
            "/v1/agents/nobody/calls",
            {"json": {"dialTo": "+18883973342"}},
            404,
            "not_found",
            "no agent 'nobody'",
        ),
        ("GET", "/v1/requests/nope", {}, 404, "not_found", "no request 'nope'"),
        ("GET", "/v1/nothing", {}, 404, "not_found", "no such endpoint"),
        ("DELETE", "/v1/agents/agent-1/calls", {}, 405, "method_not_allowed", "takes POST"),
        ("POST", "/v1/agents/agent-1/calls", {"data": "dial 123"}, 400, "bad_request", "not JSON"),
        ("POST", "/v1/agents/agent-1/calls", {"json": {}}, 422, "invalid_request", "`dialTo`"),
        (
            "POST",
            "/v1/agents/agent-1/calls",
            {"json": {"dialTo": "call me"}},
            422,
            "invalid_request",
            "dialTo: 'call me' is not a phone number",
        ),
        (
            "POST",
            "/v1/agents/agent-1/calls",
            {"json": {"dialTo": "+18883973342", "dialFrom": "x1"}},
            422,
            "invalid_request",
            "dialFrom:",
        ),
        (
            "POST",
            "/v1/agents/agent-1/calls",
            {"json": {"dialTo": "+18883973342", "extra": 1}},
            422,
            "invalid_request",
            "unknown field `extra`",
        ),
        (
            "POST",
            "/v1/agents/agent-1/calls",
            {"json": {"dialTo": "+18883973342", "participantType": "Boss"}},
            422,
            "invalid_request",
            "participantType",
        ),
        (
            "POST",
            "/v1/agents/agent-1/presence",
            {"json": {"softphoneId": ""}},
            422,
            "invalid_request",
            "softphoneId",
        ),
        (
            "POST",
            "/v1/agents/agent-1/calls",
            {"json": {"dialTo": "+18883973342"}, "headers": {"Idempotency-Key": "x" * 200}},
            422,
            "invalid_request",
            "Idempotency-Key",
        ),
    ],
)
async def test_every_api_error_is_precise_json(
    relays: tuple[Relay, Relay],
    open_agent: AgentFactory,
    http: Call,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
    error: str,
    message: str,
) -> None:
    """Each refusal has its status, a JSON body with its code, and a message naming why."""
    await open_agent(relays[0])
    got_status, body = await http(method, path, **kwargs)
    assert (got_status, body["error"]) == (status, error), body
    assert message in body["message"], body


async def test_a_missing_key_is_challenged(api: ControlApi) -> None:
    """401 answers carry WWW-Authenticate: Bearer (RFC 6750)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{api.port}/v1/requests/x") as answer,
    ):
        assert answer.status == 401
        assert answer.headers["WWW-Authenticate"].startswith("Bearer ")


async def test_a_request_of_another_partner_is_answered_as_one_that_does_not_exist(
    relays: tuple[Relay, Relay], open_agent: AgentFactory, http: Call
) -> None:
    """A key cannot read another partner's request statuses, nor tell them from unknown ids:
    the same 404 and message as for an id nobody used."""
    await open_agent(relays[0])
    _, accepted = await http("POST", "/v1/agents/agent-1/calls", json={"dialTo": "+18883973342"})
    request_id = accepted["requestId"]
    status, body = await http("GET", accepted["statusUrl"], key=OTHER_API_KEY)
    unknown = "00000000-0000-4000-8000-000000000000"
    status_unknown, body_unknown = await http("GET", f"/v1/requests/{unknown}", key=OTHER_API_KEY)
    assert (status, body["error"]) == (status_unknown, body_unknown["error"]) == (404, "not_found")
    assert body["message"].replace(request_id, unknown) == body_unknown["message"]


async def test_another_partners_agent_is_answered_as_one_that_does_not_exist(
    relays: tuple[Relay, Relay], open_agent: AgentFactory, http: Call
) -> None:
    """GET presence of partner A's agent with partner B's key: the 404 an unknown agent gets
    (by agent id, and by the Salesforce User id its token named)."""
    agent = await open_agent(relays[0], hello=False)
    await agent.hello(mint_token(SECRET, "agent-1", PARTNER, 600, salesforce_user_id=USER_ID))
    for who in ("agent-1", USER_ID):
        status, body = await http("GET", f"/v1/agents/{who}/presence", key=OTHER_API_KEY)
        assert (status, body["error"]) == (404, "not_found")
        assert body["message"] == f"no agent {who!r} has opened a softphone session"


async def test_a_browser_event_cannot_take_the_request_id_of_an_idempotency_key(
    relays: tuple[Relay, Relay],
    start_relay: RelayFactory,
    open_agent: AgentFactory,
    http: Call,
) -> None:
    """An agent of partner B sends a request whose event id is what an Idempotency-Key of
    partner A would become if ids were a public function of (partner, key): partner A's POST
    with that key is still a request of its own, not B's."""

    public = uuid.uuid5(uuid.UUID("5b0c2f4e-8a51-4d59-9a53-2a9f4c1d7e21"), f"{PARTNER}\nretry-1")
    both = await start_relay(partners=TWO_PARTNERS)
    squatter = await open_agent(both, hello=False)
    await squatter.hello(mint_token(SECRET, "agent-b", OTHER_PARTNER, 600))
    await squatter.event("presenceQueryRequested", {}, event_id=str(public))
    await open_agent(relays[1])
    status, accepted = await http(
        "POST",
        "/v1/agents/agent-1/presence/query",
        headers={"Idempotency-Key": "retry-1"},
    )
    assert status == 202 and accepted["duplicate"] is False
    assert accepted["requestId"] != str(public)
    _, mine = await http("GET", accepted["statusUrl"])
    assert mine["agentId"] == "agent-1" and mine["partnerId"] == PARTNER


async def test_the_openapi_document_describes_every_endpoint(http: Call) -> None:
    """GET /v1/openapi.json needs no key and lists the paths and their bodies."""
    status, document = await http("GET", "/v1/openapi.json", key=None)
    assert status == 200 and document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {
        "/v1/agents/{agentId}/calls",
        "/v1/agents/{agentId}/presence",
        "/v1/agents/{agentId}/presence/query",
        "/v1/agents/{agentId}/revoke",
        "/v1/requests/{requestId}",
    }
    assert "CallBody" in document["components"]["schemas"]
    json.dumps(document)


async def test_redis_down_is_503(unused_tcp_port: int) -> None:
    """With the log store unreachable the API says so, and accepts nothing."""
    client = clients.connect(f"redis://127.0.0.1:{unused_tcp_port}/0", timeout=0.5)
    control = ControlApi(make_settings(api_keys={API_KEY: PARTNER}), client)
    await control.start("127.0.0.1", 0)
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"http://127.0.0.1:{control.port}/v1/agents/agent-1/calls",
                json={"dialTo": "+18883973342"},
                headers={"Authorization": f"Bearer {API_KEY}"},
            ) as answer,
        ):
            assert answer.status == 503
            assert (await answer.json())["error"] == "unavailable"
    finally:
        await control.close()
        await client.aclose()
