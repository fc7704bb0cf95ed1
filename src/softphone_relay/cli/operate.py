"""Operator commands: ``token``, ``send``, ``call``, ``presence``, ``dlq``, ``status``, ``tail``.

``call`` and ``presence`` go through the same path as the control API (``relay.control``):
the request becomes an event in the log, the ``dispatch`` projection turns it into a command,
and the command reaches the agent on whichever relay holds its socket. They then follow the
request until the softphone acks it (or it fails or expires) and print where it stands.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any, cast

import msgspec

from softphone_relay.cli.dev import DEV_PARTNERS, DevState, data_dir
from softphone_relay.control.service import CallBody, Control
from softphone_relay.ops.dead_letters import DeadLetter, DeadLetters
from softphone_relay.ops.log_reader import (
    EventFilter,
    LoggedEvent,
    entry_order,
    position,
    read_range,
    shard_count,
)
from softphone_relay.ops.status import gather as gather_status
from softphone_relay.ops.status import render as render_status
from softphone_relay.relay import event_log, keys
from softphone_relay.relay.auth import mint_token
from softphone_relay.relay.commands import CommandLog
from softphone_relay.relay.errors import ConfigError
from softphone_relay.relay.protocol import Envelope
from softphone_relay.relay.requests import RequestStatus
from softphone_relay.relay.settings import Settings, settings_from_env

PAGE_SIZE = 500
FINAL_STATES = frozenset({"acked", "failed", "expired"})


def settings_and_url(args: argparse.Namespace) -> tuple[Settings, str]:
    """The configuration, and the log's URL (from the environment or a running ``up``)."""
    settings = settings_from_env(os.environ)
    if settings.redis_url is not None:
        return settings, settings.redis_url
    url = DevState(data_dir(args)).redis_url()
    if url is None:
        raise ConfigError("SOFTPHONE_RELAY_REDIS_URL", "not set, and no `softphone-relay up` runs")
    if settings.partners is None:
        settings = msgspec.structs.replace(settings, partners=DEV_PARTNERS)
    return settings, url


async def send(args: argparse.Namespace) -> None:
    """Enqueue a command for an agent directly (no request, no dispatch): for testing."""
    settings, url = settings_and_url(args)
    try:
        data = json.loads(args.json)
    except json.JSONDecodeError as error:
        raise ConfigError("JSON", f"not valid JSON: {error}") from None
    redis = event_log.connect(url)
    try:
        command_id = await CommandLog(redis).enqueue(
            args.agent, args.name, data, ttl_seconds=args.ttl or settings.command_ttl
        )
    finally:
        await redis.aclose()
    print(command_id)


def token(args: argparse.Namespace) -> None:
    """Mint an HS256 agent token."""
    settings = settings_from_env(os.environ)
    secret = settings.secret or DevState(data_dir(args)).existing_secret()
    if secret is None:
        raise ConfigError("SOFTPHONE_RELAY_SECRET", "needed to mint a token (or run `up` first)")
    print(mint_token(secret, args.agent, args.partner, args.ttl))


async def call(args: argparse.Namespace) -> int:
    """Click-to-dial ``args.number`` on the agent's softphone; 1 if it failed or expired."""
    settings, url = settings_and_url(args)
    body = CallBody(
        dialTo=args.number,
        dialFrom=args.dial_from,
        participantType=args.participant_type,
        recordId=args.record_id,
    )
    redis = event_log.connect(url)
    try:
        control = Control(settings, redis)
        info = await control.agent(args.agent, None)
        accepted = await control.start_call(info, body, source="cli")
        return await _follow(control, accepted.requestId, args.wait)
    finally:
        await redis.aclose()


async def presence(args: argparse.Namespace) -> int:
    """Show the agent's presence, or with a status, ask its softphone to switch to it."""
    settings, url = settings_and_url(args)
    redis = event_log.connect(url)
    try:
        control = Control(settings, redis)
        info = await control.agent(args.agent, None)
        if args.softphone_id is None:
            print(msgspec.json.encode(await control.presence(info)).decode())
            return 0
        accepted = await control.update_presence(info, args.softphone_id, source="cli")
        return await _follow(control, accepted.requestId, args.wait)
    finally:
        await redis.aclose()


async def _follow(control: Control, request_id: str, wait: float) -> int:
    """Print the request's status once it is final (or after ``wait`` seconds)."""
    deadline = time.monotonic() + wait
    status: RequestStatus = await control.status(request_id, None)
    while status.state not in FINAL_STATES and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        status = await control.status(request_id, None)
    print(msgspec.json.encode(status).decode())
    if status.state in ("failed", "expired"):
        print(f"softphone-relay: {status.state}: {status.reason}", file=sys.stderr)
        return 1
    return 0


async def dlq(args: argparse.Namespace) -> int:
    """``dlq list|show|requeue|drop``: the dead letters of one projection group."""
    if args.group not in keys.GROUPS:
        raise ConfigError("--group", f"unknown group {args.group}; one of {', '.join(keys.GROUPS)}")
    _, url = settings_and_url(args)
    redis = event_log.connect(url)
    try:
        letters = DeadLetters(redis, args.group)
        if args.action == "list":
            found = await letters.entries(limit=args.limit)
            if args.json:
                for letter in found:
                    print(msgspec.json.encode(letter).decode())
            else:
                _print_table(found)
            return 0
        if args.action == "show":
            for dlq_id in args.ids:
                one = await letters.get(dlq_id)
                if one is None:
                    raise ConfigError("ID", f"no dead letter {dlq_id} in {args.group}")
                print(json.dumps(msgspec.to_builtins(one), indent=2))
            return 0
        match = _matcher(args)
        done = await (letters.requeue(match) if args.action == "requeue" else letters.drop(match))
        verb = "requeued" if args.action == "requeue" else "dropped"
        print(f"{verb} {len(done)} dead letter(s) of {args.group}")
        return 0
    finally:
        await redis.aclose()


def _matcher(args: argparse.Namespace) -> Callable[[DeadLetter], bool]:
    """Which dead letters ``requeue``/``drop`` act on: ids, ``--error TEXT`` or ``--all``."""
    chosen = sum(bool(x) for x in (args.ids, args.error, args.all))
    if chosen != 1:
        raise ConfigError("dlq", "name dead letters by ID..., or --error TEXT, or --all")
    if args.all:
        return lambda _: True
    if args.error:
        return lambda letter: args.error in letter.error
    ids = set(args.ids)
    return lambda letter: letter.id in ids


def _print_table(letters: list[DeadLetter]) -> None:
    if not letters:
        print("no dead letters")
        return
    print(f"{'ID':<17} {'ENTRY':<24} {'EVENT':<22} {'TRIES':>5}  ERROR")
    for d in letters:
        entry = f"{d.stream.removeprefix('sp:events:')}/{d.entryId}"
        print(f"{d.id:<17} {entry:<24} {d.name or '?':<22} {d.attempts:>5}  {d.error[:80]}")


async def status(args: argparse.Namespace) -> int:
    """``status``: shards, groups (lag, pending, consumers), dead letters, agents, Salesforce."""
    settings, url = settings_and_url(args)
    redis = event_log.connect(url)
    try:
        shards = max(settings.shards, await shard_count(redis))
        found = await gather_status(redis, shards)
    finally:
        await redis.aclose()
    print(msgspec.json.encode(found).decode() if args.json else render_status(found))
    return 0


def _event_filter(args: argparse.Namespace) -> EventFilter:
    names = frozenset(n.strip() for n in (args.name or "").split(",") if n.strip())
    return EventFilter(
        partner=args.partner, agent=args.agent, conversation=args.conversation, names=names
    )


def event_line(event: LoggedEvent, as_json: bool) -> str:
    envelope = event.envelope
    if as_json:
        return json.dumps(
            {"stream": event.stream, "entryId": event.id, **msgspec.to_builtins(envelope)},
            separators=(",", ":"),
        )
    at = envelope.at.isoformat().replace("+00:00", "Z")
    conversation = f" conv={envelope.conversationId}" if envelope.conversationId else ""
    data = json.dumps(envelope.data, separators=(",", ":"))
    return (
        f"{at}  {event.id:<17} {envelope.name:<22} agent={envelope.agentId}{conversation}  {data}"
    )


async def tail(args: argparse.Namespace) -> int:
    """``tail``: the log from a point (or from now), filtered; follows until Ctrl-C."""
    settings, url = settings_and_url(args)
    event_filter = _event_filter(args)
    redis = event_log.connect(url, timeout=5.0)
    try:
        shards = max(settings.shards, await shard_count(redis))
        streams = [keys.event_stream(s) for s in range(shards)]
        last = {s: "$" for s in streams}
        if args.from_ is not None:
            start = position("--from", args.from_)
            # Up to where the log is now; what comes after is followed below, once.
            last = {s: await _last_id(redis, s) for s in streams}
            async for event in read_range(redis, start, "+", event_filter, shards=shards):
                if entry_order(event.id) <= entry_order(last[event.stream]):
                    print(event_line(event, args.json), flush=True)
        while args.follow:
            reply = cast(
                list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]],
                await redis.xread(last, block=1000, count=PAGE_SIZE),  # type: ignore[arg-type]
            )
            for stream_name, entries in reply or []:
                stream = stream_name.decode()
                for entry_id, fields in entries:
                    last[stream] = entry_id.decode()
                    try:
                        envelope = msgspec.json.decode(fields.get(b"e", b""), type=Envelope)
                    except msgspec.DecodeError:
                        continue
                    if event_filter.matches(envelope):
                        logged = LoggedEvent(stream, entry_id.decode(), envelope)
                        print(event_line(logged, args.json), flush=True)
    finally:
        await redis.aclose()
    return 0


async def _last_id(redis: Any, stream: str) -> str:
    entries = await redis.xrevrange(stream, count=1)
    return str(entries[0][0].decode()) if entries else "0-0"
