"""Sessions can be revoked (issue 25): every token of an agent issued until now, or one token by
its id, from the control API and the command line; and an older token cannot take a live session
over. Real relay, real sockets, real HTTP."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aiohttp
import jwt
import redis.asyncio as aioredis

from relay.control.api import ControlApi
from relay.log import keys
from relay.server.server import Relay
from relay.wire.auth import AUDIENCE
from tests.helpers import (
    API_KEY,
    PARTNER,
    SECRET,
    AgentFactory,
    eventually,
    run_cli,
)


def agent_token(agent: str = "agent-1", *, issued: float | None = None, jti: str = "") -> str:
    """An agent token issued at ``issued`` (default now), valid ten more minutes, with its id
    ``jti`` (a fresh one by default)."""
    now = int(time.time())
    at = now if issued is None else int(issued)
    claims = {"sub": agent, "partnerId": PARTNER, "aud": AUDIENCE, "iat": at, "exp": now + 600}
    return jwt.encode(claims | {"jti": jti or str(uuid.uuid4())}, SECRET, algorithm="HS256")


async def post_revoke(api: ControlApi, agent: str, body: dict[str, Any] | None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"http://127.0.0.1:{api.port}/v1/agents/{agent}/revoke",
            json=body,
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as answer,
    ):
        return answer.status, await answer.json()


async def refused(open_agent: AgentFactory, relay: Relay, token: str) -> tuple[int | None, str]:
    """Say hello with ``token``: the close code and the error's message."""
    agent = await open_agent(relay, hello=False)
    await agent.send({"type": "hello", "token": token})
    error = await agent.recv()
    return (await agent.closed())[0], str(error.get("message"))


async def test_revoking_an_agent_closes_its_session_and_refuses_its_tokens_until_now(
    relay: Relay, open_agent: AgentFactory, api: ControlApi
) -> None:
    """POST revoke: the live tab is closed (4409), its token is refused (4401, "revoked"), and
    a token issued afterwards opens a session."""
    old = agent_token()
    live = await open_agent(relay, hello=False)
    await live.hello(old)
    status, body = await post_revoke(api, "agent-1", None)
    assert (status, body) == (200, {"agentId": "agent-1", "tokenId": None})
    assert (await live.closed())[0] == 4409
    code, message = await refused(open_agent, relay, old)
    assert code == 4401 and "revoked" in message
    await asyncio.sleep(1.1)  # token times are in whole seconds
    fresh = await open_agent(relay, hello=False)
    await fresh.hello(agent_token())


async def test_revoking_one_token_leaves_the_agents_other_tokens_alone(
    relay: Relay, open_agent: AgentFactory, api: ControlApi
) -> None:
    """Revoke by ``tokenId``: that token is refused, another of the same agent still works."""
    leaked, kept = agent_token(jti="leaked-1"), agent_token(jti="kept-1")
    status, body = await post_revoke(api, "agent-1", {"tokenId": "leaked-1"})
    assert status == 404  # no session yet: the agent is unknown
    first = await open_agent(relay, hello=False)
    await first.hello(kept)
    status, body = await post_revoke(api, "agent-1", {"tokenId": "leaked-1"})
    assert (status, body["tokenId"]) == (200, "leaked-1")
    code, message = await refused(open_agent, relay, leaked)
    assert code == 4401 and "revoked" in message
    again = await open_agent(relay, hello=False)
    await again.hello(kept)


async def test_an_older_token_cannot_take_a_live_session_over(
    relay: Relay, open_agent: AgentFactory
) -> None:
    """A token issued an hour before the live session's: 4401, and the live tab stays."""
    live = await open_agent(relay, hello=False)
    await live.hello(agent_token())
    code, message = await refused(open_agent, relay, agent_token(issued=time.time() - 3600))
    assert code == 4401 and "older token" in message
    await live.send({"type": "ping"})
    assert (await live.recv())["type"] == "pong"


async def test_the_command_line_revokes_an_agent(
    relay: Relay, open_agent: AgentFactory, redis_url: str, tmp_path: Any
) -> None:
    """``softphone-relay revoke agent-1``: one line of JSON, the session closed."""
    live = await open_agent(relay)
    result = await asyncio.to_thread(run_cli, redis_url, tmp_path, "revoke", "agent-1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '{"agentId":"agent-1","tokenId":null}'
    assert (await live.closed())[0] == 4409


async def test_after_a_refresh_the_token_it_replaced_cannot_take_the_session_over(
    relay: Relay, open_agent: AgentFactory, redis_client: aioredis.Redis
) -> None:
    """A session opened with a token from a minute ago refreshes to a new one: the old token
    (no longer the newest) is refused 4401, and the live tab stays."""
    now = time.time()
    first = agent_token(issued=now - 60)
    live = await open_agent(relay, hello=False)
    await live.hello(first)
    claims = {"sub": "agent-1", "partnerId": PARTNER, "aud": AUDIENCE, "iat": int(now)}
    newer = jwt.encode(claims | {"exp": int(now) + 1200}, SECRET, algorithm="HS256")
    await live.send({"type": "refresh", "token": newer})
    assert (await live.next("refreshed"))["type"] == "refreshed"

    async def recorded() -> bool:  # the refresh is recorded beside the session's answer
        issued = await redis_client.hget(keys.agent_record("agent-1"), "tokenIssuedAt")
        return issued == str(int(now)).encode()

    await eventually(recorded, within=5, step=0.05)
    code, message = await refused(open_agent, relay, first)
    assert code == 4401 and "older token" in message
    await live.send({"type": "ping"})
    assert (await live.next("pong"))["type"] == "pong"
