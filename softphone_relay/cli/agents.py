"""Operator commands that act on agents: ``token``, ``send``, ``call`` and ``presence``.

``call`` and ``presence`` go through the same path as the control API
(``relay.control.service``): the request becomes an event in the log, the ``dispatch`` projection
turns it into a command, and the command reaches the agent on whichever relay holds its socket.
They then follow the request until the softphone acks it (or it fails or expires) and print
where it stands.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import TYPE_CHECKING, Final

import msgspec

from relay.errors import ConfigError
from relay.log import clients
from relay.wire.auth import SALESFORCE_USER_PATTERN, mint_token
from softphone_relay.cli.dev import DevState
from softphone_relay.cli.runtime import data_dir as resolve_data_dir
from softphone_relay.cli.runtime import settings_and_url
from softphone_relay.settings import settings_from_env

if TYPE_CHECKING:
    from relay.control.service import Control

FINAL_STATES: Final = frozenset({"acked", "failed", "expired"})


def token(
    *,
    agent: str,
    partner: str,
    ttl: int,
    salesforce_user: str | None = None,
    data_dir: str | None = None,
) -> int:
    """Mint an HS256 agent token (naming the agent's Salesforce User, if given)."""
    settings = settings_from_env(os.environ)
    secret = settings.relay.secret or DevState(resolve_data_dir(data_dir)).existing_secret()
    if secret is None:
        raise ConfigError("SOFTPHONE_RELAY_SECRET", "needed to mint a token (or run `up` first)")
    if salesforce_user is not None and not SALESFORCE_USER_PATTERN.match(salesforce_user):
        raise ConfigError("--salesforce-user", f"{salesforce_user!r} is not a User id (005...)")
    print(mint_token(secret, agent, partner, ttl, salesforce_user_id=salesforce_user))
    return 0


async def send(
    *, agent: str, name: str, json_text: str, ttl: float | None = None, data_dir: str | None = None
) -> int:
    """Enqueue a command for an agent directly (no request, no dispatch): for testing."""
    settings, url = settings_and_url(data_dir)
    try:
        data = json.loads(json_text)
    except json.JSONDecodeError as error:
        raise ConfigError("JSON", f"not valid JSON: {error}") from None
    from relay.log.commands import CommandLog
    from relay.privacy.personal import started_personal_data

    redis = clients.connect(url)
    try:
        personal = await started_personal_data(redis, settings.relay)
        command_id = await CommandLog(redis, personal).enqueue(
            agent, name, data, ttl_seconds=ttl or settings.relay.command_ttl
        )
    finally:
        await redis.aclose()
    print(command_id)
    return 0


async def call(
    *,
    agent: str,
    number: str,
    dial_from: str | None = None,
    participant_type: str | None = None,
    record_id: str | None = None,
    wait: float = 5.0,
    data_dir: str | None = None,
) -> int:
    """Click-to-dial ``number`` on the agent's softphone; 1 if it failed or expired."""
    from relay.control.service import CallBody, Control

    settings, url = settings_and_url(data_dir)
    body = CallBody(
        dialTo=number,
        dialFrom=dial_from,
        participantType=participant_type,  # type: ignore[arg-type]  # argparse checked choices
        recordId=record_id,
    )
    redis = clients.connect(url)
    try:
        control = Control(settings.relay, redis)
        info = await control.agent(agent, None)
        accepted = await control.start_call(info, body, source="cli")
        return await _follow(control, accepted.requestId, wait)
    finally:
        await redis.aclose()


async def presence(
    *, agent: str, softphone_id: str | None = None, wait: float = 5.0, data_dir: str | None = None
) -> int:
    """Show the agent's presence, or with a status, ask its softphone to switch to it."""
    from relay.control.service import Control

    settings, url = settings_and_url(data_dir)
    redis = clients.connect(url)
    try:
        control = Control(settings.relay, redis)
        info = await control.agent(agent, None)
        if softphone_id is None:
            print(msgspec.json.encode(await control.presence(info)).decode())
            return 0
        accepted = await control.update_presence(info, softphone_id, source="cli")
        return await _follow(control, accepted.requestId, wait)
    finally:
        await redis.aclose()


async def revoke(*, agent: str, token_id: str | None = None, data_dir: str | None = None) -> int:
    """Revoke the agent's tokens (all issued until now, or one by id) and close its session."""
    from relay.control.service import Control

    settings, url = settings_and_url(data_dir)
    redis = clients.connect(url)
    try:
        control = Control(settings.relay, redis)
        revoked = await control.revoke(await control.agent(agent, None), token_id)
        print(msgspec.json.encode(revoked).decode())
        return 0
    finally:
        await redis.aclose()


async def _follow(control: Control, request_id: str, wait: float) -> int:
    """Print the request's status once it is final (or after ``wait`` seconds)."""
    deadline = time.monotonic() + wait
    status = await control.status(request_id, None)
    while status.state not in FINAL_STATES and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        status = await control.status(request_id, None)
    print(msgspec.json.encode(status).decode())
    if status.state in ("failed", "expired"):
        print(f"softphone-relay: {status.state}: {status.reason}", file=sys.stderr)
        return 1
    return 0
