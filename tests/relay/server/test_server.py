"""The relay over real sockets and a real Redis: DESIGN.md section 3, frame by frame."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request

import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from relay.log import keys
from relay.server.server import Relay
from relay.wire.auth import LEEWAY_SECONDS
from tests.helpers import (
    OTHER_PARTNER,
    PARTNER,
    AgentFactory,
    RelayFactory,
    call_data,
    token,
)


async def log_entries(client: aioredis.Redis, shard: int = 0) -> list[dict[str, object]]:
    entries = await client.xrange(keys.event_stream(shard))
    return [json.loads(fields[b"e"]) for _, fields in entries]


async def test_welcome_carries_the_partner_config(relay: Relay, open_agent: AgentFactory) -> None:
    """After hello the client gets the welcome with disposition codes and partner_config."""
    agent = await open_agent(relay)
    assert agent.welcome["agentId"] == "agent-1"
    assert agent.welcome["config"]["disposition"] == ["code1", "code2"]
    assert agent.welcome["config"]["partner_config"]["partnerId"] == PARTNER
    assert agent.welcome["recovered"] is True


async def test_event_is_acked_after_it_is_in_the_log(
    relay: Relay, open_agent: AgentFactory, redis_client: aioredis.Redis
) -> None:
    """The ack carries the stream id under which the envelope is stored."""
    agent = await open_agent(relay)
    event_id = await agent.event("callAccepted", call_data(callerANI="+18883973342", x=1))
    ack = await agent.recv()
    assert ack == {"type": "ack", "id": event_id, "seq": ack["seq"], "duplicate": False}
    [stored] = await client_entries(redis_client)
    assert stored[0] == ack["seq"]
    envelope = stored[1]
    assert envelope["id"] == event_id and envelope["agentId"] == "agent-1"
    assert envelope["partnerId"] == PARTNER and envelope["conversationId"] == "conv-1"
    assert envelope["data"]["x"] == 1 and envelope["data"]["language"] == "en_US"
    assert envelope["sessionId"] == agent.welcome["sessionId"]


async def client_entries(client: aioredis.Redis) -> list[tuple[str, dict[str, object]]]:
    entries = await client.xrange(keys.event_stream(0))
    return [(entry_id.decode(), json.loads(fields[b"e"])) for entry_id, fields in entries]


async def test_resent_event_is_acked_as_duplicate_with_the_original_seq(
    relay: Relay, open_agent: AgentFactory, redis_client: aioredis.Redis
) -> None:
    """Resending an id never appends twice."""
    agent = await open_agent(relay)
    event_id = await agent.event("callEnded", call_data(duration=3))
    first = await agent.recv()
    await agent.event("callEnded", call_data(duration=3), event_id=event_id)
    second = await agent.recv()
    assert second["duplicate"] is True and second["seq"] == first["seq"]
    assert len(await log_entries(redis_client)) == 1


async def test_duplicate_across_reconnect_is_detected(
    relay: Relay, open_agent: AgentFactory, redis_client: aioredis.Redis
) -> None:
    """The dedupe holds across sessions (the outbox resends after a reconnect)."""
    first = await open_agent(relay)
    event_id = await first.event("callEnded", call_data())
    await first.recv()
    await first.ws.close()
    second = await open_agent(relay)
    await second.event("callEnded", call_data(), event_id=event_id)
    assert (await second.recv())["duplicate"] is True
    assert len(await log_entries(redis_client)) == 1


async def test_same_event_id_from_two_agents_is_two_events(
    relay: Relay, open_agent: AgentFactory, redis_client: aioredis.Redis
) -> None:
    """One agent cannot pre-empt another agent's event ids."""
    a = await open_agent(relay, agent="a")
    b = await open_agent(relay, agent="b")
    await a.event("callEnded", call_data(), event_id="same")
    await b.event("callEnded", call_data(), event_id="same")
    assert (await a.recv())["duplicate"] is False
    assert (await b.recv())["duplicate"] is False
    assert len(await log_entries(redis_client)) == 2


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "bad_frame"),
        ('["an", "array"]', "bad_frame"),
        ('{"type":"teleport"}', "bad_frame"),
        ('{"type":"event","id":"e1","name":"callEnded","data":{}}', "bad_frame"),
        (
            '{"type":"event","id":"e1","name":"callEnded","at":"2026-01-01T00:00:00Z",'
            '"data":{},"extra":1}',
            "bad_frame",
        ),
        (
            '{"type":"event","id":"e1","name":"nope","at":"2026-01-01T00:00:00Z","data":{}}',
            "unknown_event",
        ),
        (
            '{"type":"event","id":"e1","name":"callEnded","at":"2026-01-01T00:00:00Z",'
            '"data":{"partnerId":"' + PARTNER + '","conversationId":7}}',
            "invalid_event",
        ),
        (
            '{"type":"event","id":"e1","name":"callEnded","at":"2026-01-01T00:00:00Z",'
            '"data":{"partnerId":"' + OTHER_PARTNER + '","conversationId":"c"}}',
            "forbidden",
        ),
    ],
    ids=[
        "not-json",
        "not-object",
        "unknown-type",
        "missing-at",
        "extra-field",
        "unknown-event",
        "wrong-type",
        "other-partner",
    ],
)
async def test_refused_frame_gets_a_nack_and_the_connection_stays_open(
    relay: Relay, open_agent: AgentFactory, redis_client: aioredis.Redis, frame: str, code: str
) -> None:
    """Each bad frame is nacked with its code; a valid event after it is acked."""
    agent = await open_agent(relay)
    await agent.send(frame)
    nack = await agent.recv()
    assert nack["type"] == "nack" and nack["code"] == code, nack
    assert nack["message"]
    await agent.event("callEnded", call_data())
    assert (await agent.recv())["type"] == "ack"
    assert len(await log_entries(redis_client)) == 1


async def test_binary_frame_is_nacked(relay: Relay, open_agent: AgentFactory) -> None:
    """A binary frame is refused, the connection stays."""
    agent = await open_agent(relay)
    await agent.ws.send(b'{"type":"ping"}')
    assert (await agent.recv())["code"] == "bad_frame"
    await agent.send({"type": "ping"})
    assert (await agent.recv())["type"] == "pong"


async def test_no_hello_in_time_closes_4408(
    start_relay: RelayFactory, open_agent: AgentFactory
) -> None:
    """A silent client is closed with 4408 after the hello timeout."""
    relay = await start_relay(hello_timeout=0.3)
    agent = await open_agent(relay, hello=False)
    error = await agent.recv()
    assert error["type"] == "error" and error["code"] == "hello_timeout"
    assert (await agent.closed())[0] == 4408


async def test_bad_token_closes_4401(relay: Relay, open_agent: AgentFactory) -> None:
    """A token that does not verify ends the connection with 4401."""
    agent = await open_agent(relay, hello=False)
    await agent.send({"type": "hello", "token": "not-a-jwt"})
    assert (await agent.recv())["code"] == "unauthorized"
    assert (await agent.closed())[0] == 4401


async def test_expired_token_closes_4401(relay: Relay, open_agent: AgentFactory) -> None:
    """An expired token ends the connection with 4401."""
    agent = await open_agent(relay, hello=False)
    await agent.send({"type": "hello", "token": token(ttl=-300)})
    assert "expired" in (await agent.recv())["message"]
    assert (await agent.closed())[0] == 4401


async def test_event_before_hello_closes_4401(relay: Relay, open_agent: AgentFactory) -> None:
    """The first frame must be the hello."""
    agent = await open_agent(relay, hello=False)
    await agent.event("callEnded", call_data())
    await agent.recv()
    assert (await agent.closed())[0] == 4401


async def test_partner_not_served_closes_4403(relay: Relay, open_agent: AgentFactory) -> None:
    """A partner absent from the partners file is refused with 4403."""
    agent = await open_agent(relay, hello=False)
    await agent.send({"type": "hello", "token": token(partner=OTHER_PARTNER)})
    assert (await agent.recv())["code"] == "forbidden"
    assert (await agent.closed())[0] == 4403


async def test_malformed_hello_closes_4400(relay: Relay, open_agent: AgentFactory) -> None:
    """A hello of the wrong shape names the problem and closes with 4400."""
    agent = await open_agent(relay, hello=False)
    await agent.send({"type": "hello", "token": token(), "lastCommandId": "yesterday"})
    assert "$.lastCommandId" in (await agent.recv())["message"]
    assert (await agent.closed())[0] == 4400


async def test_newer_session_of_the_same_agent_closes_the_older_4409(
    relay: Relay, open_agent: AgentFactory
) -> None:
    """One live session per agent: the newest wins."""
    old = await open_agent(relay)
    new = await open_agent(relay)
    assert (await old.recv())["code"] == "replaced"
    assert (await old.closed())[0] == 4409
    await new.event("callEnded", call_data())
    assert (await new.recv())["type"] == "ack"


async def test_frame_over_one_mib_closes_1009(relay: Relay, open_agent: AgentFactory) -> None:
    """The frame size limit is enforced by the websocket layer."""
    agent = await open_agent(relay)
    await agent.event("callNotesSubmitted", call_data(notes="x" * (1 << 20)))
    assert (await agent.closed())[0] == 1009


async def test_rate_limit_nacks_then_closes_4429(
    start_relay: RelayFactory, open_agent: AgentFactory
) -> None:
    """Past the burst the relay nacks ``rate_limited``; a client that goes on is closed."""
    from relay.settings import RateLimit

    relay = await start_relay(rate_limit=RateLimit(0.01, 3))
    agent = await open_agent(relay)
    for i in range(3):
        await agent.event("callEnded", call_data(), event_id=f"e{i}")
    assert [(await agent.recv())["type"] for _ in range(3)] == ["ack"] * 3
    for i in range(3, 7):
        await agent.event("callEnded", call_data(), event_id=f"e{i}")
    nacks = [await agent.recv() for _ in range(3)]
    assert [(n["type"], n["code"], n["id"]) for n in nacks] == [
        ("nack", "rate_limited", f"e{i}") for i in range(3, 6)
    ]
    error = await agent.recv()
    assert (error["type"], error["code"]) == ("error", "rate_limited")
    assert (await agent.closed())[0] == 4429


async def test_ping_is_answered_with_pong(relay: Relay, open_agent: AgentFactory) -> None:
    """The application-level heartbeat clients use to detect a dead relay."""
    agent = await open_agent(relay)
    await agent.send({"type": "ping"})
    assert await agent.recv() == {"type": "pong"}


async def test_websocket_pings_keep_the_connection_alive(
    start_relay: RelayFactory, open_agent: AgentFactory
) -> None:
    """The relay pings at the heartbeat interval and the client's pongs keep it open."""
    relay = await start_relay(heartbeat=0.2)
    agent = await open_agent(relay)
    await asyncio.sleep(0.7)
    await agent.send({"type": "ping"})
    assert (await agent.recv())["type"] == "pong"


async def test_unresponsive_client_is_dropped_by_heartbeat(
    start_relay: RelayFactory, open_agent: AgentFactory
) -> None:
    """A client that answers no websocket ping is closed (1011, keepalive timeout)."""
    relay = await start_relay(heartbeat=0.2)
    agent = await open_agent(relay)
    agent.ws.transport.pause_reading()  # type: ignore[attr-defined]  # a frozen tab
    for _ in range(50):
        if open_connections(relay) == 0:
            break
        await asyncio.sleep(0.1)
    assert open_connections(relay) == 0


def open_connections(relay: Relay) -> float | None:
    return relay.metrics.registry.get_sample_value("softphone_relay_connections")


@pytest.mark.parametrize("origin", ["https://softphone.example.test", None])
async def test_allowed_or_absent_origin_may_connect(
    relay: Relay, open_agent: AgentFactory, origin: str | None
) -> None:
    """Origins matching the allow-list globs, and non-browser clients, connect."""
    agent = await open_agent(relay, origin=origin)
    assert agent.welcome["type"] == "welcome"


async def test_same_origin_pages_may_connect(relay: Relay, open_agent: AgentFactory) -> None:
    """Pages served by the relay itself may open the socket."""
    agent = await open_agent(relay, origin=f"http://127.0.0.1:{relay.port}")
    assert agent.welcome["type"] == "welcome"


@pytest.mark.parametrize(
    "origin", ["https://evil.example.com", "https://force.com.evil.io", "null"]
)
async def test_foreign_origin_is_refused_with_403(relay: Relay, origin: str) -> None:
    """The handshake of a foreign Origin fails with HTTP 403, naming it and what to set."""
    with pytest.raises(InvalidStatus) as info:
        async with connect(
            f"ws://127.0.0.1:{relay.port}/v1/socket",
            origin=origin,  # type: ignore[arg-type]
            subprotocols=["softphone.v1"],
        ):  # type: ignore[list-item]
            pass
    response = info.value.response
    assert response.status_code == 403
    assert f"origin {origin} is not allowed" in response.body.decode()
    assert "SOFTPHONE_RELAY_ALLOWED_ORIGINS" in response.body.decode()


async def test_missing_subprotocol_is_refused_with_400(relay: Relay) -> None:
    """Clients must speak softphone.v1."""
    with pytest.raises(InvalidStatus) as info:
        async with connect(f"ws://127.0.0.1:{relay.port}/v1/socket"):
            pass
    assert info.value.response.status_code == 400


def http_get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


async def test_healthz_and_readyz_answer(relay: Relay) -> None:
    """Liveness and readiness (Redis reachable) on the relay's port."""
    base = f"http://127.0.0.1:{relay.port}"
    assert (await asyncio.to_thread(http_get, base + "/healthz"))[0] == 200
    assert (await asyncio.to_thread(http_get, base + "/readyz"))[0] == 200


async def test_unknown_path_is_404(relay: Relay) -> None:
    """Only known endpoints answer."""
    status, _, body = await asyncio.to_thread(http_get, f"http://127.0.0.1:{relay.port}/nope")
    assert status == 404 and "/nope" in body


async def test_metrics_count_connections_events_acks_and_nacks(
    relay: Relay, open_agent: AgentFactory
) -> None:
    """``/metrics`` is Prometheus text with the relay's counters."""
    agent = await open_agent(relay)
    await agent.event("callEnded", call_data())
    await agent.recv()
    await agent.send("{")
    await agent.recv()
    status, content_type, body = await asyncio.to_thread(
        http_get, f"http://127.0.0.1:{relay.port}/metrics"
    )
    assert status == 200 and content_type.startswith("text/plain")
    assert "softphone_relay_connections 1.0" in body
    assert 'softphone_relay_events_acked_total{duplicate="false"} 1.0' in body
    assert 'softphone_relay_nacks_total{code="bad_frame"} 1.0' in body
    assert "softphone_relay_ack_latency_seconds_count 1.0" in body


async def test_events_are_sharded_by_conversation(
    start_relay: RelayFactory, open_agent: AgentFactory, redis_client: aioredis.Redis
) -> None:
    """With several shards each conversation lands, whole, in the shard of its hash."""
    relay = await start_relay(shards=4)
    agent = await open_agent(relay)
    conversations = [f"conv-{i}" for i in range(12)]
    for conversation in conversations:
        await agent.event("callEnded", call_data(conversation))
        await agent.recv()
    for conversation in conversations:
        shard = keys.shard_of(conversation, 4)
        stored = [e["conversationId"] for e in await log_entries(redis_client, shard)]
        assert conversation in stored
    assert sum([len(await log_entries(redis_client, s)) for s in range(4)]) == 12


async def test_event_without_conversation_is_sharded_by_agent(
    start_relay: RelayFactory, open_agent: AgentFactory, redis_client: aioredis.Redis
) -> None:
    """``statusChanged`` has no conversation: its shard comes from the agent."""
    relay = await start_relay(shards=4)
    agent = await open_agent(relay, agent="agent-7")
    await agent.event("statusChanged", {"softphoneId": "available"})
    await agent.recv()
    assert len(await log_entries(redis_client, keys.shard_of("agent-7", 4))) == 1


async def test_an_agent_is_online_by_the_time_its_welcome_arrives(
    relay: Relay, open_agent: AgentFactory, redis_client: aioredis.Redis
) -> None:
    """The online mark precedes the welcome: a click-to-dial right after it finds the agent."""
    await open_agent(relay, agent="agent-online")
    assert await redis_client.get(keys.agent_online("agent-online")) is not None


async def test_online_marks_outlive_their_ttl_while_sessions_stay_open(
    start_relay: RelayFactory, open_agent: AgentFactory, redis_client: aioredis.Redis
) -> None:
    """The relay refreshes every session's mark each heartbeat (one pipeline for all)."""
    relay = await start_relay(heartbeat=0.2)  # marks live 0.6 s unless refreshed
    await open_agent(relay, agent="a-1")
    await open_agent(relay, agent="a-2")
    await asyncio.sleep(1.5)
    for agent in ("a-1", "a-2"):
        assert await redis_client.pttl(keys.agent_online(agent)) > 0, agent


async def test_a_session_is_closed_when_its_token_expires(
    relay: Relay, open_agent: AgentFactory
) -> None:
    """A token two seconds from the end of its leeway: the relay closes the open session
    with 4401 (an error frame first), so a user deactivated in Salesforce loses the socket."""
    agent = await open_agent(relay, hello=False)
    await agent.hello(token(ttl=-(LEEWAY_SECONDS - 2)))
    error = await agent.recv(within=6)
    assert (error["type"], error["code"]) == ("error", "unauthorized")
    code, reason = await agent.closed()
    assert code == 4401 and "expired" in (reason or "")


async def test_a_refreshed_session_outlives_its_first_token(
    relay: Relay, open_agent: AgentFactory
) -> None:
    """A refresh frame before the expiry: ``refreshed``, and the session stays open and
    keeps acking events past the first token's end."""
    agent = await open_agent(relay, hello=False)
    await agent.hello(token(ttl=-(LEEWAY_SECONDS - 2)))
    await agent.send({"type": "refresh", "token": token(ttl=600)})
    refreshed = await agent.recv()
    assert refreshed["type"] == "refreshed" and refreshed["expiresAt"] > time.time() + 590
    await asyncio.sleep(3.5)
    await agent.event("callEnded", call_data())
    assert (await agent.recv())["type"] == "ack"
    assert agent.ws.close_code is None
