"""Partners as tenants (issue 25): a conversation belongs to the partner that first used it, and
an agent id to the partner of its first session. Two partners on one relay, real sockets."""

from __future__ import annotations

import logging
import uuid

import msgspec
import pytest
import redis.asyncio as aioredis

from relay.log import keys
from relay.server.server import Relay
from relay.settings import Partner
from tests.certificates import USER, apex_token, org_certificate
from tests.helpers import OTHER_PARTNER, PARTNER, PARTNERS, RelayFactory, token

TWO_PARTNERS = PARTNERS | {
    OTHER_PARTNER: Partner(
        businessSegmentId="b0000000-0000-4000-8000-000000000001",
        channelOriginId="c0000000-0000-4000-8000-000000000001",
    )
}


async def two_partner_relay(start_relay: RelayFactory) -> Relay:
    return await start_relay(partners=TWO_PARTNERS)


async def test_an_event_about_another_partners_conversation_is_forbidden_and_not_logged(
    start_relay: RelayFactory,
    open_agent,
    redis_client: aioredis.Redis,  # type: ignore[no-untyped-def]
) -> None:
    """Partner B's agent sends callEnded and notes for partner A's conversation, stamped in
    the year 2999: both are nacked ``forbidden`` without naming A, and only A's event is in the
    log; A's later notes are stored."""
    relay = await two_partner_relay(start_relay)
    conversation = str(uuid.uuid4())
    a = await open_agent(relay, hello=False)
    await a.hello(token("agent-a", PARTNER))
    b = await open_agent(relay, hello=False)
    await b.hello(token("agent-b", OTHER_PARTNER))
    data = {"partnerId": PARTNER, "conversationId": conversation}
    await a.event("callEnded", {**data, "duration": 42, "callType": "inbound"})
    assert (await a.next("ack"))["duplicate"] is False
    theirs = {"partnerId": OTHER_PARTNER, "conversationId": conversation}
    for name, extra in (("callEnded", {"duration": 1}), ("callNotesSubmitted", {"notes": "x"})):
        await b.send(
            {
                "type": "event",
                "id": str(uuid.uuid4()),
                "name": name,
                "at": "2999-01-01T00:00:00Z",
                "data": {**theirs, **extra},
            }
        )
        nack = await b.next("nack")
        assert nack["code"] == "forbidden"
        assert PARTNER not in str(nack["message"])
    await a.event("callNotesSubmitted", {**data, "notes": "refund issued"})
    assert (await a.next("ack"))["duplicate"] is False
    logged = await redis_client.xrange(keys.event_stream(0), "-", "+")
    assert len(logged) == 2
    assert all(PARTNER.encode() in fields[b"e"] for _, fields in logged)


async def test_a_token_of_another_partner_cannot_take_an_agent_over(
    start_relay: RelayFactory,
    open_agent,
    redis_client: aioredis.Redis,  # type: ignore[no-untyped-def]
) -> None:
    """Agent ``agent-a`` is partner A's (its first session): a valid token of partner B naming
    it is refused 4403, A's live session stays open, and the agent record keeps partner A."""
    relay = await two_partner_relay(start_relay)
    live = await open_agent(relay, hello=False)
    await live.hello(token("agent-a", PARTNER))
    intruder = await open_agent(relay, hello=False)
    await intruder.send({"type": "hello", "token": token("agent-a", OTHER_PARTNER)})
    error = await intruder.next("error")
    assert error["code"] == "forbidden" and PARTNER not in str(error["message"])
    assert (await intruder.closed())[0] == 4403
    await live.send({"type": "ping"})
    assert (await live.next("pong"))["type"] == "pong"
    record = await redis_client.hget(keys.agent_record("agent-a"), "partnerId")
    assert record == PARTNER.encode()


async def test_an_agent_known_before_pins_belongs_to_its_recorded_partner(
    start_relay: RelayFactory,
    open_agent,
    redis_client: aioredis.Redis,  # type: ignore[no-untyped-def]
) -> None:
    """An agent whose record (from before pins) says partner A: partner B's token is refused
    even though no pin exists yet."""
    relay = await two_partner_relay(start_relay)
    await redis_client.hset(keys.agent_record("agent-old"), mapping={"partnerId": PARTNER})
    intruder = await open_agent(relay, hello=False)
    await intruder.send({"type": "hello", "token": token("agent-old", OTHER_PARTNER)})
    assert (await intruder.closed())[0] == 4403
    mine = await open_agent(relay, hello=False)
    await mine.hello(token("agent-old", PARTNER))


async def test_an_agent_opening_sessions_in_a_loop_is_refused_after_thirty_a_minute(
    relay: Relay,
    open_agent,
    redis_client: aioredis.Redis,  # type: ignore[no-untyped-def]
) -> None:
    """30 sessions of one agent in a minute open (each replacing the last); the 31st is closed
    4429; another agent of the same partner opens its session meanwhile."""
    for _ in range(30):
        session = await open_agent(relay, hello=False)
        await session.hello(token("agent-loop", PARTNER))
        await session.ws.close()
    refused = await open_agent(relay, hello=False)
    await refused.send({"type": "hello", "token": token("agent-loop", PARTNER)})
    error = await refused.next("error")
    assert error["code"] == "rate_limited" and "too many sessions" in str(error["message"])
    assert (await refused.closed())[0] == 4429
    other = await open_agent(relay, hello=False)
    await other.hello(token("agent-other", PARTNER))


async def test_a_partner_with_its_own_key_is_reached_only_with_tokens_that_key_signed(
    start_relay: RelayFactory,
    open_agent,  # type: ignore[no-untyped-def]
) -> None:
    """Partner B has a certificate of its own in the partners file: a token the relay's shared
    secret signed for B is refused 4401; one B's org signed is welcomed."""
    key, certificate = org_certificate()
    partners = TWO_PARTNERS | {
        OTHER_PARTNER: msgspec.structs.replace(TWO_PARTNERS[OTHER_PARTNER], publicKey=certificate)
    }
    relay = await start_relay(partners=partners)
    forged = await open_agent(relay, hello=False)
    await forged.send({"type": "hello", "token": token("agent-b", OTHER_PARTNER)})
    assert (await forged.next("error"))["code"] == "unauthorized"
    assert (await forged.closed())[0] == 4401
    signed = await open_agent(relay, hello=False)
    await signed.send({"type": "hello", "token": apex_token(key, partner=OTHER_PARTNER)})
    assert (await signed.next("welcome"))["agentId"] == USER


async def test_the_relay_logs_each_token_key_and_warns_of_a_certificate_near_its_end(
    start_relay: RelayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """One line per key with its fingerprint and expiry; a warning for the certificate that
    ends within 30 days, so an operator adds the next one before agents are cut off."""
    _, lasting = org_certificate(days=365)
    _, ending = org_certificate(days=10)
    partners = TWO_PARTNERS | {
        OTHER_PARTNER: msgspec.structs.replace(TWO_PARTNERS[OTHER_PARTNER], publicKey=ending)
    }
    with caplog.at_level(logging.INFO, logger="relay.server.server"):
        await start_relay(secret=None, public_key=lasting, partners=partners)
    lines = [r.getMessage() for r in caplog.records if "event=token_key" in r.getMessage()]
    assert len([line for line in lines if line.startswith("event=token_key ")]) == 2
    (warning,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert f"partner={OTHER_PARTNER}" in warning.getMessage()
    assert "event=token_key_expiring" in warning.getMessage()
