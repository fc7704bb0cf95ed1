"""``erase`` and ``subject``: a caller's (or a conversation's) personal data erased, or all
of it handed over (the data subject's access request); ``rewrap`` and ``reseal``: the keys
moved to a new key-encryption key, what was stored in clear sealed."""

from __future__ import annotations

import getpass
import sys
from collections.abc import AsyncIterator

import msgspec

from projections.archive.catalog import open_catalog
from projections.archive.reseal import ArchiveResealed, reseal_archive
from relay.errors import ConfigError
from relay.log import clients
from relay.log.event_log import EventLog
from relay.privacy.erasure import ErasureReport, erase_caller, erase_conversation
from relay.privacy.personal import PersonalData, local_keys, started_personal_data
from relay.privacy.reseal import ResealReport, reseal_redis
from relay.privacy.rewrap import rewrap
from relay.privacy.sealing import conversation_subject, party_subject, subjects_of
from relay.wire.phone import NotAPhoneNumber, to_e164
from softphone_relay.cli.history import private_output
from softphone_relay.cli.log_commands import event_line
from softphone_relay.cli.runtime import settings_and_url
from softphone_relay.ops.erased_events import erased_events
from softphone_relay.ops.log_range import EventFilter, LoggedEvent
from softphone_relay.ops.log_reader import opened, read_range, shard_count


class EraseOptions(msgspec.Struct, kw_only=True):
    """``erase``'s arguments."""

    caller: str | None = None
    conversation: str | None = None
    region: str | None = None
    by: str | None = None
    dry_run: bool = False
    json: bool = False
    data_dir: str | None = None


class RewrapOptions(msgspec.Struct, kw_only=True):
    """``rewrap``'s arguments."""

    dry_run: bool = False
    json: bool = False
    data_dir: str | None = None


class ResealOptions(msgspec.Struct, kw_only=True):
    """``reseal``'s arguments."""

    dry_run: bool = False
    json: bool = False
    data_dir: str | None = None


class ResealReports(msgspec.Struct, kw_only=True):
    """What ``reseal`` did in each tier."""

    redis: ResealReport
    archive: ArchiveResealed | None


class SubjectOptions(msgspec.Struct, kw_only=True):
    """``subject``'s arguments."""

    caller: str
    region: str | None = None
    out: str | None = None
    data_dir: str | None = None


def _needs(personal: PersonalData | None) -> PersonalData:
    if personal is None:
        raise ConfigError(
            "SOFTPHONE_RELAY_DATA_KEY",
            "personal data is not sealed here (no data key configured): nothing to erase or "
            "open by key",
        )
    return personal


async def erase(args: EraseOptions) -> int:
    """``erase``: delete the data keys of a caller's conversations, or of one conversation."""
    if (args.caller is None) == (args.conversation is None):
        raise ConfigError("erase", "give --caller NUMBER or --conversation ID")
    settings, url = settings_and_url(args.data_dir)
    redis = clients.connect(url, timeout=10.0)
    try:
        personal = _needs(await started_personal_data(redis, settings.relay))
        log_ = EventLog(redis, shards=settings.relay.shards, dedupe_ttl=settings.relay.dedupe_ttl)
        by = args.by or getpass.getuser()
        report: ErasureReport
        reached: set[str] = set()
        if args.caller is not None:
            number = args.caller
            if args.region is not None:
                number = _e164(number, args.region)
            report = await erase_caller(personal, log_, number, by=by, dry_run=args.dry_run)
            reached.add(party_subject(personal.party_of(number)))
        else:
            assert args.conversation is not None
            report = await erase_conversation(
                personal, log_, args.conversation, by=by, dry_run=args.dry_run
            )
        reached |= {conversation_subject(c) for c in report.conversations}
        shards = max(settings.relay.shards, await shard_count(redis))
        archive = open_catalog(settings.projections.archive_url)
        report.events = await erased_events(redis, archive, shards, reached)
    finally:
        await redis.aclose()
    if args.json:
        print(msgspec.json.encode(report).decode())
    else:
        verb = "would erase" if report.dry_run else "erased"
        tiers = ", ".join(f"{count:,} in {tier}" for tier, count in (report.events or {}).items())
        print(
            f"{verb} {report.what}: {len(report.conversations)} conversation(s), "
            f"{report.keys} data key(s), the personal fields of events ({tiers}); every copy "
            f"of them (Redis, archive, backups, exports) no longer opens"
            + (f" (logged at {report.seq})" if report.seq else "")
        )
        for conversation in report.conversations:
            print(f"  {conversation}")
    return 0


def _e164(number: str, region: str) -> str:
    try:
        return to_e164(number, region.upper())
    except NotAPhoneNumber as error:
        raise ConfigError("--caller", str(error)) from None


async def subject(args: SubjectOptions) -> int:
    """``subject``: every event about a caller, opened, from every tier, as JSONL."""
    settings, url = settings_and_url(args.data_dir)
    redis = clients.connect(url, timeout=10.0)
    out = private_output(args.out)
    count = 0
    try:
        personal = _needs(await started_personal_data(redis, settings.relay))
        number = _e164(args.caller, args.region) if args.region else args.caller
        party = personal.party_of(number)
        theirs = await personal.vault.subjects_of_party(party) | {party_subject(party)}
        conversations = {s[2:] for s in theirs if s.startswith("c:")}
        shards = max(settings.relay.shards, await shard_count(redis))
        archive = open_catalog(settings.projections.archive_url)

        async def about_them() -> AsyncIterator[LoggedEvent]:
            everything = read_range(redis, "-", "+", EventFilter(), shards=shards, archive=archive)
            async for event in everything:
                envelope = event.envelope
                if envelope.conversationId in conversations or theirs & subjects_of(
                    envelope.data, envelope.conversationId
                ):
                    yield event

        async for event in opened(about_them(), personal):
            out.write(event_line(event, as_json=True) + "\n")
            count += 1
    finally:
        if out is not sys.stdout:
            out.close()
        await redis.aclose()
    where = "stdout" if out is sys.stdout else args.out
    print(f"{count:,} events about that caller written to {where}", file=sys.stderr)
    return 0


async def rewrap_keys(args: RewrapOptions) -> int:
    """``rewrap``: every data key moved to the current key-encryption key."""
    settings, url = settings_and_url(args.data_dir)
    kek = local_keys(settings.relay)
    if kek is None:
        _needs(None)
        return 2
    redis = clients.connect(url, timeout=10.0)
    try:
        report = await rewrap(redis, kek, dry_run=args.dry_run)
    finally:
        await redis.aclose()
    if args.json:
        print(msgspec.json.encode(report).decode())
    else:
        verb = "would re-wrap" if report.dry_run else "re-wrapped"
        before = ", ".join(f"{count:,} by {key}" for key, count in sorted(report.before.items()))
        print(
            f"{verb} {report.rewrapped:,} of {report.keys:,} wrapped keys with key "
            f"{report.current} (before: {before or 'none'})"
        )
    return 0


async def reseal(args: ResealOptions) -> int:
    """``reseal``: seal what Redis and the archive hold in clear (run it once every relay has
    the data key)."""
    settings, url = settings_and_url(args.data_dir)
    redis = clients.connect(url, timeout=10.0)
    try:
        personal = _needs(await started_personal_data(redis, settings.relay))
        shards = max(settings.relay.shards, await shard_count(redis))
        catalog = open_catalog(settings.projections.archive_url)
        archive = None
        if catalog is not None:
            archive = await reseal_archive(catalog, personal, shards, dry_run=args.dry_run)
        in_redis = await reseal_redis(redis, personal, shards, dry_run=args.dry_run)
    finally:
        await redis.aclose()
    report = ResealReports(redis=in_redis, archive=archive)
    if args.json:
        print(msgspec.json.encode(report).decode())
        return 0
    verb = "would seal" if args.dry_run else "sealed"
    for stream in in_redis.streams:
        print(f"redis {stream.stream}: {verb} {stream.sealed:,} of {stream.entries:,} entries")
    print(f"redis calls states: {verb} {in_redis.states:,}")
    if archive is None:
        print("archive: none configured")
    else:
        print(
            f"archive: {verb} {archive.sealed:,} entries in {archive.rewritten:,} of "
            f"{archive.segments:,} segments; {archive.leftovers:,} leftover segments deleted"
        )
    return 0
