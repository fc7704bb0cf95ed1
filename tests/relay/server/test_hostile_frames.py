"""Frames built to break a decoder: each gets its nack (or 4400 for a hello), the connection
lives on, and nothing reaches the log. Sizes are small (about 2 KB): depth, not size, is the
attack."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis

from relay.log import keys
from relay.server.server import Relay
from tests.helpers import PARTNER, AgentFactory, now_iso, token

DEEP = 1000


def deep_array(depth: int = DEEP) -> str:
    """``[[[...]]]`` nested ``depth`` levels."""
    return "[" * depth + "]" * depth


def deep_object(depth: int) -> str:
    """``{"a":{"a":...1}}`` nested ``depth`` levels."""
    return '{"a":' * depth + "1" + "}" * depth


def event_frame(data: str, event_id: str | None = None) -> str:
    """An event frame whose ``data`` is the JSON text ``data``."""
    return (
        f'{{"type":"event","id":"{event_id or uuid.uuid4()}","name":"callEnded",'
        f'"at":"{now_iso()}","data":{data}}}'
    )


HOSTILE_EVENTS = {
    "data_nested_1000_deep": (
        event_frame(deep_array()),
        "Expected `object`, got `array` - at `$.data`",
    ),
    "extra_field_nested_1000_deep": (
        event_frame(
            f'{{"partnerId":"{PARTNER}","conversationId":"c1","extra":{deep_object(DEEP)}}}'
        ),
        "the frame is nested too deeply",
    ),
    "frame_nested_1000_deep": (deep_array(), "Expected `object`, got `array`"),
}


@pytest.mark.parametrize(("frame", "message"), HOSTILE_EVENTS.values(), ids=HOSTILE_EVENTS.keys())
async def test_a_frame_nested_too_deep_is_a_bad_frame_and_the_connection_lives(
    relay: Relay,
    open_agent: AgentFactory,
    redis_client: aioredis.Redis,
    frame: str,
    message: str,
) -> None:
    """No RecursionError escapes: nack bad_frame, then the socket still answers a ping."""
    agent = await open_agent(relay)
    await agent.send(frame)
    nack = await agent.recv()
    assert (nack["type"], nack["code"], nack["message"]) == ("nack", "bad_frame", message)
    await agent.send({"type": "ping"})
    assert (await agent.recv())["type"] == "pong"
    assert await redis_client.xlen(keys.event_stream(0)) == 0


async def test_data_nested_deeper_than_the_contract_allows_is_invalid(
    relay: Relay, open_agent: AgentFactory, redis_client: aioredis.Redis
) -> None:
    """Decodable but deeper than any payload: invalid_event with the limit, never stored."""
    agent = await open_agent(relay)
    event_id = str(uuid.uuid4())
    data = f'{{"partnerId":"{PARTNER}","conversationId":"c1","extra":{deep_object(40)}}}'
    await agent.send(event_frame(data, event_id))
    nack = await agent.recv()
    assert (nack["id"], nack["code"]) == (event_id, "invalid_event"), nack
    assert "nested more than 32 levels" in nack["message"]
    assert await redis_client.xlen(keys.event_stream(0)) == 0


@pytest.mark.parametrize(
    "frame",
    [b"\xff\xfe\xfd", b'{"type":"event","id":"\xff"}'],
    ids=["garbage", "event_with_invalid_utf8"],
)
async def test_a_binary_frame_of_invalid_utf8_is_a_bad_frame(
    relay: Relay, open_agent: AgentFactory, frame: bytes
) -> None:
    """No UnicodeDecodeError escapes: nack bad_frame, the connection stays."""
    agent = await open_agent(relay)
    await agent.ws.send(frame)
    nack = await agent.recv()
    assert (nack["type"], nack["code"], nack["id"]) == ("nack", "bad_frame", None)
    await agent.send({"type": "ping"})
    assert (await agent.recv())["type"] == "pong"


@pytest.mark.parametrize(
    "frame",
    [
        f'{{"type":"hello","token":"{token()}","client":{deep_object(DEEP)}}}',
        deep_array(),
        b"\xff\xfe\xfd",
    ],
    ids=["hello_nested_1000_deep", "array_nested_1000_deep", "binary_invalid_utf8"],
)
async def test_a_hostile_hello_closes_4400(
    relay: Relay, open_agent: AgentFactory, frame: str | bytes
) -> None:
    """The first frame is the hello: whatever breaks it closes with 4400, not 1011."""
    agent = await open_agent(relay, hello=False)
    await agent.ws.send(frame)
    error = await agent.recv()
    assert (error["type"], error["code"]) == ("error", "bad_hello"), error
    assert (await agent.closed())[0] == 4400
