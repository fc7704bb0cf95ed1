"""The attacks of issue 25, run one after another as an attacker would, against ``softphone-relay
serve`` (a real process) with two partners, each with its own API key, on two shards. After
each, partner A's own traffic still works; at the end, ``serve`` has logged no traceback.
(Log injection is checked on the formatter: ``tests/softphone_relay/cli/test_logging.py``.)"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection, connect

from relay.log.event_log import DAY
from softphone_relay.embedded import free_port
from tests.helpers import CLI, OTHER_PARTNER, PARTNER, SECRET, clean_env, http_exchange, token

KEY_A = "partner-a-key-0123456789"
KEY_B = "partner-b-key-0123456789"
PARTNERS_FILE = f"""
[partners."{PARTNER}"]
businessSegmentId = "d6afeaa7-39be-4935-981f-2670215fd887"
channelOriginId = "57053e21-0440-4689-a27a-513d7dceebde"

[partners."{OTHER_PARTNER}"]
businessSegmentId = "b0000000-0000-4000-8000-000000000001"
channelOriginId = "c0000000-0000-4000-8000-000000000001"
"""
pytestmark = pytest.mark.timeout(120)


class Serve:
    """A running ``serve``: its ports and its log file."""

    def __init__(self, port: int, api_port: int, log: Path) -> None:
        self.port, self.api_port, self.log = port, api_port, log

    @property
    def socket(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/socket"


@pytest.fixture
def serve(redis_url: str, tmp_path: Path) -> Iterator[Serve]:
    partners = tmp_path / "partners.toml"
    partners.write_text(PARTNERS_FILE)
    running = Serve(free_port(), free_port(), tmp_path / "serve.log")
    env = clean_env(
        SOFTPHONE_RELAY_REDIS_URL=redis_url,
        SOFTPHONE_RELAY_SECRET=SECRET,
        SOFTPHONE_RELAY_PARTNERS_FILE=str(partners),
        SOFTPHONE_RELAY_API_KEYS=f"{KEY_A}:{PARTNER},{KEY_B}:{OTHER_PARTNER}",
        SOFTPHONE_RELAY_SHARDS="2",
        SOFTPHONE_RELAY_PORT=str(running.port),
        SOFTPHONE_RELAY_API_PORT=str(running.api_port),
    )
    with running.log.open("wb") as log:
        process = subprocess.Popen([*CLI, "serve"], cwd=tmp_path, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while b"event=api_started" not in running.log.read_bytes():
            assert process.poll() is None and time.monotonic() < deadline, running.log.read_text()
            time.sleep(0.1)
        yield running
    finally:
        process.terminate()
        process.wait(timeout=20)


async def hello(serve: Serve, agent: str, partner: str) -> ClientConnection:
    ws = await connect(serve.socket, subprotocols=["softphone.v1"])  # type: ignore[list-item]
    await ws.send(json.dumps({"type": "hello", "token": token(agent, partner)}))
    welcome = json.loads(await ws.recv())
    assert welcome["type"] == "welcome", welcome
    return ws


async def send_event(ws: ClientConnection, name: str, data: dict[str, Any], **frame: Any) -> dict:  # type: ignore[type-arg]
    """Send an event; the relay's answer (ack or nack)."""
    sent = {"type": "event", "id": str(uuid.uuid4()), "name": name, "at": now(), "data": data}
    await ws.send(json.dumps(sent | frame))
    async with asyncio.timeout(5):
        while True:
            answer = json.loads(await ws.recv())
            if answer["type"] in ("ack", "nack"):
                return answer  # type: ignore[no-any-return]


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


async def api(serve: Serve, method: str, path: str, key: str, **kwargs: Any) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method,
            f"http://127.0.0.1:{serve.api_port}{path}",
            headers={"Authorization": f"Bearer {key}"},
            **kwargs,
        ) as answer,
    ):
        return answer.status, await answer.json()


async def test_the_attacks_of_one_partner_hurt_nobody_else(serve: Serve) -> None:
    """Each attack gets its precise refusal; partner A's agent is served throughout."""
    a = await hello(serve, "agent-a", PARTNER)
    b = await hello(serve, "agent-b", OTHER_PARTNER)
    conversation = str(uuid.uuid4())
    mine = {"partnerId": PARTNER, "conversationId": conversation}

    # 1. B writes about A's conversation, stamped in the far future: forbidden.
    assert (await send_event(a, "callEnded", mine | {"duration": 42}))["type"] == "ack"
    theirs = {"partnerId": OTHER_PARTNER, "conversationId": conversation, "notes": "mine now"}
    nack = await send_event(b, "callNotesSubmitted", theirs, at="2999-01-01T00:00:00Z")
    assert nack["code"] == "forbidden"
    # ... and a stamp Salesforce cannot store is refused for anyone.
    nack = await send_event(a, "callEnded", mine, at="0001-01-01T00:00:00Z")
    assert nack["code"] == "invalid_event"

    # 2. B's token naming A's agent: refused 4403, A's tab stays.
    intruder = await connect(serve.socket, subprotocols=["softphone.v1"])  # type: ignore[list-item]
    await intruder.send(json.dumps({"type": "hello", "token": token("agent-a", OTHER_PARTNER)}))
    await intruder.wait_closed()
    assert intruder.close_code == 4403

    # 3. An agent named "day" sends today's day number as an event id: stored, no outage.
    day = await hello(serve, "day", OTHER_PARTNER)
    today = str(int(time.time() // DAY))
    other = {"partnerId": OTHER_PARTNER, "conversationId": str(uuid.uuid4())}
    assert (await send_event(day, "callEnded", other, id=today))["type"] == "ack"

    # 4. A bad ack: a bad frame, nothing recorded; a newline-suffixed id likewise.
    await b.send(json.dumps({"type": "ack", "id": "1-0\n"}))
    assert json.loads(await b.recv())["code"] == "bad_frame"
    nack = await send_event(b, "callEnded", other, id="e1\n")
    assert nack["code"] == "bad_frame"

    # 5. HTTP tricks on the relay's port: duplicate headers, pipelined requests.
    duplicate = b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"
    assert (await http_exchange(serve.port, duplicate)).startswith(b"HTTP/1.1 400 ")
    one = b"GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n"
    assert (await http_exchange(serve.port, one + one)).count(b"HTTP/1.1 ") == 1

    # 6. Enumeration: B's key learns nothing of A's agent.
    status_code, body = await api(serve, "GET", "/v1/agents/agent-a/presence", KEY_B)
    assert (status_code, body["error"]) == (404, "not_found")

    # 7. Slow clients on the control API: A's softphone and A's key still work.
    slow = [await asyncio.open_connection("127.0.0.1", serve.api_port) for _ in range(100)]
    for _, writer in slow:
        writer.write(b"GET /v1/openapi.json HTTP/1.1\r\n")
    late = await hello(serve, "agent-late", PARTNER)
    status_code, _ = await api(serve, "GET", "/v1/agents/agent-a/presence", KEY_A)
    assert status_code == 200
    for _, writer in slow:
        writer.close()
    await late.close()

    # A's agent was served throughout.
    assert (await send_event(a, "callNotesSubmitted", mine | {"notes": "refund"}))["type"] == "ack"
    for ws in (a, b, day):
        await ws.close()
    await asyncio.sleep(0.5)
    assert "Traceback" not in serve.log.read_text()
