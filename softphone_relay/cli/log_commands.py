"""Operator commands that read the log: ``status``, ``tail`` and ``dlq``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

import msgspec

from projections.archive.catalog import open_catalog
from projections.registry import DEAD_LETTER_GROUPS as GROUPS
from relay.errors import ConfigError
from relay.log import clients, keys
from relay.log.streams import parse_stream_id
from relay.privacy.personal import started_personal_data
from relay.privacy.sealing import ERASED
from softphone_relay.cli.runtime import settings_and_url
from softphone_relay.ops.dead_letters import DeadLetter, DeadLetters
from softphone_relay.ops.log_range import EventFilter, LoggedEvent, position
from softphone_relay.ops.log_reader import follow, opened, read_range, shard_count
from softphone_relay.ops.status import gather as gather_status
from softphone_relay.ops.status import render as render_status

PAGE_SIZE: Final = 500


class DlqOptions(msgspec.Struct, kw_only=True):
    """``dlq``'s arguments."""

    action: str
    ids: list[str] = msgspec.field(default_factory=list)
    group: str = "calls"
    error: str | None = None
    all: bool = False
    json: bool = False
    limit: int = 1000
    data_dir: str | None = None


class TailOptions(msgspec.Struct, kw_only=True):
    """``tail``'s arguments."""

    from_: str | None = None
    agent: str | None = None
    conversation: str | None = None
    partner: str | None = None
    name: str | None = None
    json: bool = False
    follow: bool = True
    data_dir: str | None = None


async def dlq(args: DlqOptions) -> int:
    """``dlq list|show|requeue|drop``: the dead letters of one projection group."""
    if args.group not in GROUPS:
        raise ConfigError("--group", f"unknown group {args.group}; one of {', '.join(GROUPS)}")
    _, url = settings_and_url(args.data_dir)
    redis = clients.connect(url)
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


def _matcher(args: DlqOptions) -> Callable[[DeadLetter], bool]:
    """Which dead letters ``requeue``/``drop`` act on: ids, ``--error TEXT`` or ``--all``."""
    chosen = sum(bool(x) for x in (args.ids, args.error, args.all))
    if chosen != 1:
        raise ConfigError("dlq", "name dead letters by ID..., or --error TEXT, or --all")
    if args.all:
        return lambda _: True
    if args.error:
        text = args.error
        return lambda letter: text in letter.error
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


async def status(*, json: bool = False, data_dir: str | None = None) -> int:
    """``status``: shards, groups (lag, pending, consumers), dead letters, agents, Salesforce."""
    settings, url = settings_and_url(data_dir)
    redis = clients.connect(url)
    try:
        shards = max(settings.relay.shards, await shard_count(redis))
        found = await gather_status(redis, shards, open_catalog(settings.projections.archive_url))
    finally:
        await redis.aclose()
    print(msgspec.json.encode(found).decode() if json else render_status(found))
    return 0


def _event_filter(args: TailOptions) -> EventFilter:
    names = frozenset(n.strip() for n in (args.name or "").split(",") if n.strip())
    return EventFilter(
        partner=args.partner, agent=args.agent, conversation=args.conversation, names=names
    )


def event_line(event: LoggedEvent, as_json: bool) -> str:
    """One event as ``tail`` and ``export`` print it: a readable line, or one JSON object."""
    envelope = event.envelope
    if as_json:
        fields = msgspec.to_builtins(envelope)
        fields["data"] |= dict.fromkeys(event.erased, ERASED)
        return json.dumps(
            {"stream": event.stream, "entryId": event.id, **fields}, separators=(",", ":")
        )
    at = envelope.at.isoformat().replace("+00:00", "Z")
    conversation = f" conv={envelope.conversationId}" if envelope.conversationId else ""
    data = json.dumps(
        {**envelope.data, **dict.fromkeys(event.erased, ERASED)}, separators=(",", ":")
    )
    return (
        f"{at}  {event.id:<17} {envelope.name:<22} agent={envelope.agentId}{conversation}  {data}"
    )


async def tail(args: TailOptions) -> int:
    """``tail``: the log from a point (or from now), filtered; follows until Ctrl-C."""
    settings, url = settings_and_url(args.data_dir)
    event_filter = _event_filter(args)
    # Following blocks one connection per XREAD group (a cluster: one per shard's slot).
    redis = clients.connect(url, timeout=5.0, max_connections=max(64, settings.relay.shards + 8))
    try:
        shards = max(settings.relay.shards, await shard_count(redis))
        personal = await started_personal_data(redis, settings.relay)
        streams = [keys.event_stream(s) for s in range(shards)]
        archive = open_catalog(settings.projections.archive_url) if args.from_ else None
        # Where each shard is now, as a concrete id: following from ``$`` would skip what a
        # shard that was quiet in one read received before the next. A shard whose entries
        # are all archived (its Redis stream empty) is as far as its archive.
        last = {}
        for shard, stream in enumerate(streams):
            last[stream] = await _last_id(redis, stream)
            if archive is not None and (archived := await archive.high_water(shard)):
                last[stream] = max(last[stream], archived, key=parse_stream_id)
        if args.from_ is not None:
            start = position("--from", args.from_)
            # Up to where the log is now; what comes after is followed below, once.
            async for event in opened(
                read_range(redis, start, "+", event_filter, shards=shards, archive=archive),
                personal,
            ):
                if parse_stream_id(event.id) <= parse_stream_id(last[event.stream]):
                    print(event_line(event, args.json), flush=True)
        if args.follow:
            cluster = clients.cluster_seed(url) is not None
            async for event in opened(follow(redis, last, cluster, PAGE_SIZE), personal, 1):
                if event_filter.matches(event.envelope):
                    print(event_line(event, args.json), flush=True)
    finally:
        await redis.aclose()
    return 0


async def _last_id(redis: Any, stream: str) -> str:
    entries = await redis.xrevrange(stream, count=1)
    return str(entries[0][0].decode()) if entries else "0-0"
