"""The connector's feed, written by the ``voicecalls`` group: each call hook and presence
change of a Salesforce Voice partner's agent, once, in order, after the VoiceCall it names
exists (real worker, Redis and stand-in)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis

from projections.salesforce.standin.server import StandIn
from projections.voice.feed import LIFETIMES, feed_item
from relay.log import keys
from relay.log.commands import CommandLog
from relay.log.envelope import encode_stored
from relay.log.event_log import EventLog
from relay.privacy.erasure import erase_caller
from relay.privacy.personal import personal_data
from tests.helpers import ConnectionFactory, call, conversation_ids, envelope, make_settings
from tests.projections.salesforce.test_telephony import (
    closed_clients as closed_clients,  # closes the clients each test opened
)
from tests.projections.voice.test_voice_calls import (
    a_projection,
    entries,
    voice_calls,
    work,
)
from tests.projections.voice.test_voice_calls import (
    standin_state as standin_state,  # the stand-in org with VoiceCall
)
from tests.relay.privacy.test_sealed_log import DATA_KEYS


async def feed(redis: aioredis.Redis, agent: str = "agent-1") -> list[tuple[str, Any]]:
    items = await CommandLog(redis).read_after(keys.connector_mailbox(agent), None)
    return [(item.name, item.data) for _, item in items]


async def test_an_inbound_call_rings_connects_and_ends_on_the_connector_with_its_voice_call(
    redis_client: aioredis.Redis, standin: StandIn, connection: ConnectionFactory
) -> None:
    """incomingCall rings with the VoiceCall's id and the caller, callAccepted connects,
    callEnded ends it into after-call work; later notes are the VoiceCall's alone."""
    [conversation] = conversation_ids(1)
    await EventLog(redis_client, shards=1, dedupe_ttl=3600).append_all(call(conversation))
    await work(redis_client, a_projection(redis_client, standin, connection))
    [record] = voice_calls(standin)
    base = {"conversationId": conversation, "callType": "Inbound"}
    assert await feed(redis_client) == [
        (
            "call",
            {
                **base,
                "state": "ringing",
                "callerANI": "+18883973342",
                "voiceCallId": record["Id"],
            },
        ),
        ("call", {**base, "state": "connected"}),
        ("call", {**base, "state": "ended", "reason": "ended", "afterCallWork": True}),
    ]


async def test_entries_worked_again_feed_nothing_more(
    redis_client: aioredis.Redis, standin: StandIn, connection: ConnectionFactory
) -> None:
    """A redelivered batch (a worker that died before its acks) adds no item."""
    calls = conversation_ids(2)
    await EventLog(redis_client, shards=1, dedupe_ttl=3600).append_all(
        [e for n, c in enumerate(calls) for e in call(c, n)]
    )
    projection = a_projection(redis_client, standin, connection)
    batch = await entries(redis_client)
    await projection.handle(batch)
    once = await feed(redis_client)
    await projection.handle(batch)
    assert await feed(redis_client) == once and len(once) == 6


@pytest.mark.parametrize(("reason", "ended"), [("active", "declined"), ("passive", "missed")])
async def test_a_rejected_call_ends_as_declined_or_missed(
    redis_client: aioredis.Redis,
    standin: StandIn,
    connection: ConnectionFactory,
    reason: str,
    ended: str,
) -> None:
    """The agent refused it (active) or let it ring out (passive)."""
    [conversation] = conversation_ids(1)
    await EventLog(redis_client, shards=1, dedupe_ttl=3600).append_all(
        [
            envelope("incomingCall", conversation, 0, callerANI="+18883973342"),
            envelope("callRejected", conversation, 20, reason=reason),
        ]
    )
    await work(redis_client, a_projection(redis_client, standin, connection))
    *_, (name, last) = await feed(redis_client)
    assert (name, last["state"], last["reason"]) == ("call", "ended", ended)
    assert "afterCallWork" not in last


async def test_an_outbound_call_rings_with_its_dialled_number_and_no_voice_call(
    redis_client: aioredis.Redis, standin: StandIn, connection: ConnectionFactory
) -> None:
    """Salesforce makes an outbound call's VoiceCall from the connector's event."""
    [conversation] = conversation_ids(1, longest=True)
    await EventLog(redis_client, shards=1, dedupe_ttl=3600).append_all(
        [
            envelope("outboundCallInitiated", conversation, 0, dialledTo="+18449401117"),
            envelope("callEnded", conversation, 30, duration=29, callType="outbound"),
        ]
    )
    await work(redis_client, a_projection(redis_client, standin, connection))
    base = {"conversationId": conversation, "callType": "Outbound"}
    assert await feed(redis_client) == [
        ("call", {**base, "state": "ringing", "dialledTo": "+18449401117"}),
        ("call", {**base, "state": "ended", "reason": "ended", "afterCallWork": True}),
    ]


async def test_a_presence_change_reaches_the_connector(
    redis_client: aioredis.Redis, standin: StandIn, connection: ConnectionFactory
) -> None:
    status = envelope("statusChanged", "", 0, softphoneId="d6afeaa7-39be-4935-981f-2670215fd887")
    status.conversationId = None
    status.data = {"softphoneId": "d6afeaa7-39be-4935-981f-2670215fd887"}
    await EventLog(redis_client, shards=1, dedupe_ttl=3600).append_all([status])
    await work(redis_client, a_projection(redis_client, standin, connection))
    assert await feed(redis_client) == [
        ("status", {"softphoneId": "d6afeaa7-39be-4935-981f-2670215fd887"})
    ]


async def test_a_tasks_only_partners_agent_gets_no_feed(
    redis_client: aioredis.Redis, standin: StandIn, connection: ConnectionFactory
) -> None:
    await EventLog(redis_client, shards=1, dedupe_ttl=3600).append_all(call(conversation_ids(1)[0]))
    projection = a_projection(redis_client, standin, connection, partners={"another-partner"})
    await work(redis_client, projection)
    assert await feed(redis_client) == []


async def test_a_call_whose_start_was_never_logged_is_left_out() -> None:
    """Salesforce would have nothing to attach a lone callAccepted to."""
    [conversation] = conversation_ids(1)
    accepted = envelope("callAccepted", conversation, 1)
    assert feed_item(accepted, None, None) is None
    assert feed_item(accepted, "Inbound", None) == (
        "call",
        {"conversationId": conversation, "callType": "Inbound", "state": "connected"},
    )


async def test_a_worker_that_catches_up_late_rings_no_ghost_but_still_ends_the_call(
    redis_client: aioredis.Redis, standin: StandIn, connection: ConnectionFactory
) -> None:
    """A feed item lives from its event, not from when a worker got to it: a ring logged two
    minutes ago is over (not fed); the end logged then still closes the call (fed, expiring
    half an hour after it)."""
    [conversation] = conversation_ids(1)
    ring, end = call(conversation)[0], call(conversation)[2]
    logged_ms = int(time.time() * 1000) - 120_000
    for n, event in enumerate((ring, end)):
        await redis_client.xadd(
            keys.event_stream(0), {"e": encode_stored(event)}, id=f"{logged_ms + n}-0"
        )
    await work(redis_client, a_projection(redis_client, standin, connection))
    [(_, item)] = await CommandLog(redis_client).read_after(keys.connector_mailbox("agent-1"), None)
    assert (item.name, item.data["state"]) == ("call", "ended")
    left = (item.expiresAt - datetime.now(UTC)).total_seconds()
    assert LIFETIMES["ended"] - 130 < left < LIFETIMES["ended"] - 110


async def test_an_event_is_remembered_only_while_its_item_may_be_delivered(
    redis_client: aioredis.Redis, standin: StandIn, connection: ConnectionFactory
) -> None:
    """The once-per-event marker of a ring expires with the ring (a minute), not a day later:
    the feed leaves no key per event behind."""
    [conversation] = conversation_ids(1)
    ring = call(conversation)[0]
    await EventLog(redis_client, shards=1, dedupe_ttl=3600).append_all([ring])
    await work(redis_client, a_projection(redis_client, standin, connection))
    marker = keys.dispatched(keys.connector_mailbox("agent-1"), ring.id)
    assert 0 < await redis_client.ttl(marker) <= LIFETIMES["ringing"]


async def test_the_callers_number_in_the_feed_is_sealed_and_erasing_the_caller_reaches_it(
    redis_client: aioredis.Redis, standin: StandIn, connection: ConnectionFactory
) -> None:
    """With data keys, a feed item's number is stored sealed under that number's key: not in
    clear in Redis, opened for the connector, and gone once the caller is erased."""
    personal = personal_data(redis_client, make_settings(data_keys=DATA_KEYS))
    assert personal is not None
    await personal.start()
    [conversation] = conversation_ids(1)
    log = EventLog(redis_client, shards=1, dedupe_ttl=3600)
    await log.append_all(call(conversation)[:1])
    await work(redis_client, a_projection(redis_client, standin, connection, personal=personal))
    mailbox = keys.connector_mailbox("agent-1")
    raw = await redis_client.xrange(keys.command_stream(mailbox))
    assert raw and not any(b"8883973342" in fields[b"c"] for _, fields in raw)
    [(_, item)] = await CommandLog(redis_client, personal).read_after(mailbox, None)
    assert item.data["callerANI"] == "+18883973342"
    await erase_caller(personal, log, "+18883973342", by="test")
    [(_, after)] = await CommandLog(redis_client, personal).read_after(mailbox, None)
    assert "callerANI" not in after.data
