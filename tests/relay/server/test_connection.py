"""The relay's own websocket connection layer (``relay/server/connection.py``,
``relay/server/sessions.py``): messages in fragments, text that is not UTF-8, frames sent before the
welcome, a stopping relay, and the same layer on uvloop, the production event loop."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid

import pytest
import uvloop
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

from relay.log import clients
from relay.server.server import Relay
from tests.helpers import (
    AgentFactory,
    RelayFactory,
    event_frame,
    make_settings,
    token,
)


async def test_a_message_sent_in_fragments_is_one_event(
    relay: Relay, open_agent: AgentFactory
) -> None:
    """Continuation frames are put back together before the message is decided."""
    agent = await open_agent(relay)
    event_id = str(uuid.uuid4())
    text = event_frame(event_id)
    third = len(text) // 3
    await agent.ws.send([text[:third], text[third : 2 * third], text[2 * third :]])
    ack = await agent.recv()
    assert (ack["type"], ack["id"], ack["duplicate"]) == ("ack", event_id, False)


async def test_a_text_frame_that_is_not_utf8_closes_with_1007(
    relay: Relay, open_agent: AgentFactory
) -> None:
    """RFC 6455 8.1: invalid UTF-8 in a text message fails the connection (1007), not 1011."""
    agent = await open_agent(relay)
    agent.ws.protocol.send_frame(Frame(Opcode.TEXT, b'{"type":"ping","x":"\xff\xfe"}'))
    agent.ws.send_data()
    code, _ = await agent.closed()
    assert code == 1007


async def test_frames_sent_before_the_welcome_are_answered_after_it(
    relay: Relay, open_agent: AgentFactory
) -> None:
    """A client that does not wait for its welcome loses nothing: its events wait for it."""
    agent = await open_agent(relay, hello=False)
    event_id = str(uuid.uuid4())
    await agent.ws.send(json.dumps({"type": "hello", "token": token()}))
    await agent.ws.send(event_frame(event_id))
    first, second = await agent.recv(), await agent.recv()
    assert first["type"] == "welcome"
    assert (second["type"], second["id"]) == ("ack", event_id)


async def test_a_stopping_relay_acks_what_it_stored_then_closes_with_1001(
    start_relay: RelayFactory, open_agent: AgentFactory
) -> None:
    """Shutdown answers every event in flight before its close (going away, no error frame)."""
    relay = await start_relay()
    agent = await open_agent(relay)
    ids = [str(uuid.uuid4()) for _ in range(50)]
    for event_id in ids:
        await agent.ws.send(event_frame(event_id))
    await relay.close()
    frames = []
    with pytest.raises(ConnectionClosed):
        while True:
            frames.append(json.loads(await agent.ws.recv()))
    assert agent.ws.close_code == 1001
    assert {f["type"] for f in frames} <= {"ack", "nack"}
    answered = {f["id"] for f in frames}
    assert answered == set(ids[: len(answered)])  # in order, none answered twice
    assert len(frames) == len(answered)


async def test_a_request_split_across_writes_is_answered_whole(
    relay: Relay,
) -> None:
    """A plain HTTP request split across writes is parsed whole (the handshake is sans-I/O)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    writer.write(b"GET /hea")
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.write(b"lthz HTTP/1.1\r\nHost: x\r\n\r\n")
    response = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert response.startswith(b"HTTP/1.1 200 OK") and response.endswith(b"ok\n")
    assert b"Server: softphone-relay" in response


def test_the_relay_serves_sessions_on_uvloop(redis_url: str) -> None:
    """Production runs on uvloop (its transports are not asyncio's classes): a session there
    is welcomed, its event acked, and the relay stops cleanly."""

    async def session() -> tuple[str, str, int | None]:
        client = clients.connect(redis_url)
        relay = Relay(make_settings(), client)
        await relay.start()
        try:
            async with connect(
                f"ws://127.0.0.1:{relay.port}/v1/socket",
                subprotocols=["softphone.v1"],  # type: ignore[list-item]
            ) as ws:
                await ws.send(json.dumps({"type": "hello", "token": token()}))
                welcome = json.loads(await ws.recv())
                await ws.send(event_frame("e-uvloop"))
                ack = json.loads(await ws.recv())
                await relay.close()
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
                return welcome["type"], ack["type"], ws.close_code
        finally:
            await client.aclose()

    assert uvloop.run(session()) == ("welcome", "ack", 1001)


def test_the_port_is_released_when_the_relay_stops(redis_url: str) -> None:
    """After close() nothing listens on the relay's port any more."""

    async def start_and_stop() -> int:
        client = clients.connect(redis_url)
        relay = Relay(make_settings(), client)
        await relay.start()
        port = relay.port
        await relay.close()
        await client.aclose()
        return port

    port = uvloop.run(start_and_stop())
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
