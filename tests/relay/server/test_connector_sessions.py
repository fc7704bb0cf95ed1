"""A Salesforce Voice connector's session: the agent's second client, beside its softphone's.

It never replaces the softphone's session nor is replaced by it, receives the agent's feed (its
own mailbox), sends requests only, and is closed by a revocation like the softphone's.
"""

from __future__ import annotations

import msgspec
import pytest
import redis.asyncio as aioredis

from relay.errors import InvalidEvent, UnknownEvent
from relay.log import keys
from relay.log.commands import CommandLog
from relay.server.server import Relay
from tests.helpers import PARTNER, PARTNERS, AgentFactory, RelayFactory, call_data, no_frame

RINGING = {
    "conversationId": "5b1f0c1e-6f8e-4d5e-9a51-3c1e0f6a7b21",
    "callType": "Inbound",
    "state": "ringing",
    "callerANI": "+18883973342",
    "voiceCallId": "0LQHs000000AbCdOAK",
}


async def test_a_connector_and_the_softphone_of_one_agent_stay_open_side_by_side(
    relay: Relay, open_agent: AgentFactory, redis_client: aioredis.Redis
) -> None:
    """Neither session replaces the other, whichever opens first; the agent's online mark is
    the softphone's alone."""
    softphone = await open_agent(relay)
    connector = await open_agent(relay, role="connector")
    assert await no_frame(softphone) and await no_frame(connector)
    online = await redis_client.get(keys.agent_online("agent-1"))
    assert online is not None and online.decode() == softphone.welcome["sessionId"]
    later = await open_agent(relay)
    assert (await softphone.recv())["code"] == "replaced"
    assert await no_frame(connector) and later.welcome["agentId"] == "agent-1"


async def test_a_newer_connector_replaces_the_older_connector_only(
    relay: Relay, open_agent: AgentFactory
) -> None:
    """A reloaded connector page takes its agent's connector session over (4409), and the
    softphone's session is untouched."""
    softphone = await open_agent(relay)
    old = await open_agent(relay, role="connector")
    await open_agent(relay, role="connector")
    assert (await old.recv())["code"] == "replaced"
    assert (await old.closed())[0] == 4409
    assert await no_frame(softphone)


async def test_a_connector_sending_a_contract_hook_is_refused_and_stays_open(
    relay: Relay, open_agent: AgentFactory
) -> None:
    """The calls are the softphone's to report: a hook from a connector is nacked
    ``forbidden``, and the connector's next request is logged as the agent's."""
    connector = await open_agent(relay, role="connector")
    hook = await connector.event("callAccepted", call_data())
    nack = await connector.next("nack")
    assert (nack["id"], nack["code"]) == (hook, "forbidden")
    assert "softphone's to report" in nack["message"]
    request = await connector.event("startCallRequested", {"dialTo": "+18449401117"})
    ack = await connector.next("ack")
    assert ack["id"] == request and not ack["duplicate"]


async def test_feed_items_reach_the_connector_and_commands_the_softphone(
    relay: Relay, open_agent: AgentFactory
) -> None:
    """The connector's mailbox and the softphone's are apart: each session gets its own."""
    softphone = await open_agent(relay)
    connector = await open_agent(relay, role="connector")
    mailbox = keys.connector_mailbox("agent-1")
    item = await relay.commands.enqueue(mailbox, "call", RINGING, ttl_seconds=30)
    command = await relay.commands.enqueue("agent-1", "get_presence", None, ttl_seconds=30)
    fed = await connector.next("command")
    assert (fed["id"], fed["name"], fed["data"]) == (item, "call", RINGING)
    got = await softphone.next("command")
    assert (got["id"], got["name"]) == (command, "get_presence")
    assert await no_frame(connector) and await no_frame(softphone)


async def test_a_reconnected_connector_resumes_its_feed_after_its_last_ack(
    relay: Relay, open_agent: AgentFactory
) -> None:
    """Feed items are acked and resumed as commands are: a connector that comes back gets
    what it had not acked, once."""
    mailbox = keys.connector_mailbox("agent-1")
    connector = await open_agent(relay, role="connector")
    first = await relay.commands.enqueue(mailbox, "call", RINGING, ttl_seconds=30)
    assert (await connector.next("command"))["id"] == first
    await connector.send({"type": "ack", "id": first})
    await connector.ws.close()
    second = await relay.commands.enqueue(
        mailbox, "call", {**RINGING, "state": "connected"}, ttl_seconds=30
    )
    back = await open_agent(relay, role="connector")
    fed = await back.next("command")
    assert (fed["id"], fed["data"]["state"]) == (second, "connected")
    assert await no_frame(back)


async def test_the_connector_is_welcomed_with_its_partners_presence_mapping(
    start_relay: RelayFactory, open_agent: AgentFactory
) -> None:
    """The connector's config is the Salesforce status → softphone status table; the
    softphone's welcome does not carry it."""
    mapping = {"Available for Voice": "d6afeaa7-39be-4935-981f-2670215fd887", "Busy": "busy-1"}
    partner = msgspec.structs.replace(PARTNERS[PARTNER], voicePresence=mapping)
    relay = await start_relay(partners={PARTNER: partner})
    connector = await open_agent(relay, role="connector")
    softphone = await open_agent(relay)
    assert connector.welcome["config"] == {"presence": mapping}
    assert set(softphone.welcome["config"]) == {"disposition", "partner_config"}


async def test_a_revocation_closes_the_connector_too(
    relay: Relay, open_agent: AgentFactory
) -> None:
    """Revoking an agent's tokens supersedes both of its sessions."""
    softphone = await open_agent(relay)
    connector = await open_agent(relay, role="connector")
    await relay.commands.supersede("agent-1")
    assert (await softphone.closed())[0] == 4409
    assert (await connector.closed())[0] == 4409


async def test_an_unknown_role_is_refused_at_hello(relay: Relay, open_agent: AgentFactory) -> None:
    """``role`` is ``softphone`` or ``connector``; anything else closes 4400, named."""
    agent = await open_agent(relay, hello=False)
    await agent.send({"type": "hello", "token": "x.y.z", "role": "supervisor"})
    assert "$.role" in (await agent.recv())["message"]
    assert (await agent.closed())[0] == 4400


@pytest.mark.parametrize(
    ("name", "data", "error", "names"),
    [
        ("call", {**RINGING, "state": "on hold"}, InvalidEvent, "$.state"),
        ("call", {**RINGING, "callerANI": "0044 20"}, InvalidEvent, "$.callerANI"),
        ("call", {"state": "ringing", "callType": "Inbound"}, InvalidEvent, "conversationId"),
        ("start_call", {"dialTo": "+18449401117"}, UnknownEvent, "start_call"),
    ],
)
async def test_a_malformed_feed_item_is_refused_before_it_is_stored(
    redis_client: aioredis.Redis, name: str, data: object, error: type[Exception], names: str
) -> None:
    """A connector's mailbox takes feed items only, each checked; nothing is stored."""
    mailbox = keys.connector_mailbox("agent-1")
    with pytest.raises(error, match=names.replace("$", r"\$")):
        await CommandLog(redis_client).enqueue(mailbox, name, data, ttl_seconds=30)
    assert await redis_client.exists(keys.command_stream(mailbox)) == 0
