"""Operator commands over the log's history: ``replay``, ``export`` and ``trim``.

``replay`` re-runs the ``calls`` projection over a range into a target: the configured org
(default), another org (``--sf-env FILE``), the stand-in of a running ``up``
(``--target standin``) or a JSONL file (``--target jsonl:PATH``). ``export`` writes a range of
the log to JSONL; ``trim`` applies the retention now.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Final

import msgspec

from projections.archive.catalog import open_catalog
from projections.archive.groups import GROUP
from projections.salesforce.connect import (
    PREFIX as SF_PREFIX,
)
from projections.salesforce.connect import (
    SalesforceConnection,
    SalesforceSettings,
    SessionAuth,
    salesforce_settings_from_env,
)
from projections.salesforce.metrics import SalesforceMetrics
from projections.salesforce.sink import SalesforceSink
from relay.errors import ConfigError
from relay.log import clients
from relay.log.streams import parse_stream_id
from relay.privacy.personal import started_personal_data
from relay.settings import parse_duration
from softphone_relay.cli.dev import DevState, running_standin
from softphone_relay.cli.log_commands import event_line
from softphone_relay.cli.progress import ProgressPrinter
from softphone_relay.cli.runtime import data_dir, settings_and_url
from softphone_relay.ops.log_range import EventFilter, position
from softphone_relay.ops.log_reader import opened, read_range, shard_count
from softphone_relay.ops.replay import Replay, ReplayTarget
from softphone_relay.ops.replay_plan import Change, ReplayReport
from softphone_relay.ops.replay_targets import JsonlTarget, SalesforceTarget
from softphone_relay.ops.retention import trim as trim_log


class RangeOptions(msgspec.Struct, kw_only=True):
    """A range of the log and the filters of ``replay`` and ``export``."""

    from_: str = "-"
    to: str = "+"
    partner: str | None = None
    agent: str | None = None
    conversation: str | None = None
    data_dir: str | None = None


class ReplayOptions(RangeOptions, kw_only=True):
    """``replay``'s arguments."""

    group: str = "calls"
    target: str = "salesforce"
    sf_env: str | None = None
    dry_run: bool = False
    include_partial: bool = False
    json: bool = False


class ExportOptions(RangeOptions, kw_only=True):
    """``export``'s arguments."""

    out: str | None = None


class TrimOptions(msgspec.Struct, kw_only=True):
    """``trim``'s arguments."""

    older_than: str | None = None
    dry_run: bool = False
    json: bool = False
    data_dir: str | None = None


REPLAYABLE: Final = ("calls",)
SHOWN_FAILURES: Final = 20
STOPPED: Final = 130
"""The exit status of a command stopped by Ctrl-C (128 + SIGINT)."""


def _range(args: RangeOptions) -> tuple[str, str]:
    start = position("--from", args.from_)
    end = position("--to", args.to, end=True)
    ends = ("-", "+")
    if start not in ends and end not in ends and parse_stream_id(start) > parse_stream_id(end):
        raise ConfigError("--from", f"{args.from_} is after --to {args.to}")
    return start, end


def _filter(args: RangeOptions) -> EventFilter:
    return EventFilter(partner=args.partner, agent=args.agent, conversation=args.conversation)


def _read_env_file(path: str) -> dict[str, str]:
    """``KEY=VALUE`` lines (``#`` comments, optional quotes), as a dotenv file has them."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ConfigError("--sf-env", f"cannot read {path}: {error.strerror}") from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep or not key.strip().startswith(SF_PREFIX):
            raise ConfigError("--sf-env", f"{path}:{number}: expected {SF_PREFIX}NAME=VALUE")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def _salesforce_target(
    salesforce: SalesforceSettings, description: str, *, live: bool
) -> tuple[SalesforceTarget, SalesforceConnection]:
    connection = SalesforceConnection(salesforce)
    sink = SalesforceSink(connection, salesforce.mapping, metrics=SalesforceMetrics(None))
    target = SalesforceTarget(sink, salesforce.mapping, description=description, live=live)
    return target, connection


def _target(
    args: ReplayOptions,
) -> tuple[ReplayTarget, SalesforceConnection | None]:
    """The replay's target, and the Salesforce connection to close after (if any)."""
    if args.target.startswith("jsonl:"):
        path = args.target.removeprefix("jsonl:")
        if not path:
            raise ConfigError("--target", "jsonl:PATH needs a path")
        return JsonlTarget(Path(path)), None
    if args.target == "standin":
        address = running_standin(DevState(data_dir(args.data_dir)))
        if address is None:
            raise ConfigError("--target", "standin: no `softphone-relay up` with a stand-in runs")
        settings = SalesforceSettings(
            auth=SessionAuth(address.instance_url, address.session_id), ca_file=address.ca_file
        )
        return _salesforce_target(settings, f"the stand-in at {address.instance_url}", live=True)
    if args.target != "salesforce":
        raise ConfigError(
            "--target", f"expected salesforce, standin or jsonl:PATH, got {args.target!r}"
        )
    if args.sf_env:
        env = {k: v for k, v in os.environ.items() if not k.startswith(SF_PREFIX)}
        salesforce = salesforce_settings_from_env(env | _read_env_file(args.sf_env))
        live = False
    else:
        salesforce = salesforce_settings_from_env(os.environ)
        live = True
    if salesforce is None:
        raise ConfigError(
            SF_PREFIX + "INSTANCE_URL",
            "no Salesforce org configured for --target salesforce (or use --sf-env FILE, "
            "--target standin, --target jsonl:PATH)",
        )
    return _salesforce_target(salesforce, "Salesforce", live=live)


def _change_line(change: Change) -> str:
    fields = ", ".join(
        f"{k}={new!r}" if change.action == "create" else f"{k}: {old!r} -> {new!r}"
        for k, (old, new) in change.fields.items()
    )
    return f"{change.action} {change.conversationId}  {fields}"


def _resume_command(args: ReplayOptions, resume_from: str) -> str:
    """The command that carries on from ``resume_from``, options as given."""
    words = ["softphone-relay", "replay", "--from", resume_from]
    if args.to != "+":
        words += ["--to", args.to]
    for flag, value in (
        ("--partner", args.partner),
        ("--agent", args.agent),
        ("--conversation", args.conversation),
        ("--sf-env", args.sf_env),
    ):
        if value:
            words += [flag, value]
    if args.target != "salesforce":
        words += ["--target", args.target]
    if args.include_partial:
        words.append("--include-partial")
    if args.dry_run:
        words.append("--dry-run")
    return shlex.join(words)


@contextlib.contextmanager
def _stop_on_interrupt(stop: asyncio.Event) -> Iterator[None]:
    """Ctrl-C (or SIGTERM) asks the running command to stop at the next safe point."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        yield
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def _summary(report: ReplayReport, target: ReplayTarget, dry_run: bool) -> str:
    verb = "would replay" if dry_run else "replayed"
    head = (
        f"{verb} {report.events:,} call events of {report.conversations:,} conversations "
        f"into {target.description}: {report.created:,} created, {report.updated:,} updated, "
        f"{report.unchanged:,} unchanged"
    )
    extra = [
        f"{report.in_progress:,} still in progress (not written)" if report.in_progress else "",
        f"{report.partial:,} began before --from (left out; widen --from or --include-partial)"
        if report.partial
        else "",
        f"{len(report.failed):,} failed" if report.failed else "",
        f"{len(report.busy):,} busy (a worker held them; replay again)" if report.busy else "",
    ]
    rate = report.events / report.seconds if report.seconds > 0 else 0.0
    tail = f"{report.requests:,} target requests, {report.seconds:.1f} s, {rate:,.0f} events/s"
    return "; ".join([head, *(e for e in extra if e), tail])


async def replay(args: ReplayOptions) -> int:
    """``replay``: the calls projection re-run over a range into a target."""
    if args.group not in REPLAYABLE:
        raise ConfigError(
            "--group",
            f"{args.group} cannot be replayed (only calls: dispatch and presence act in real "
            "time, and their commands expire)",
        )
    start, end = _range(args)
    settings, url = settings_and_url(args.data_dir)
    target, connection = _target(args)
    redis = clients.connect(url, timeout=10.0)
    stop = asyncio.Event()
    progress = ProgressPrinter(sys.stderr)

    def show(change: Change) -> None:
        if args.dry_run and change.action != "unchanged":
            print(
                msgspec.json.encode(change).decode() if args.json else _change_line(change),
                flush=True,
            )

    try:
        with _stop_on_interrupt(stop):
            shards = max(settings.relay.shards, await shard_count(redis))
            runner = Replay(
                redis,
                target,
                shards=shards,
                dry_run=args.dry_run,
                include_partial=args.include_partial,
                on_progress=progress,
                on_change=show,
                stop=stop,
                archive=open_catalog(settings.projections.archive_url),
                personal=await started_personal_data(redis, settings.relay),
            )
            report = await runner.run(start, end, _filter(args))
    finally:
        progress.finish()
        await target.close()
        if connection is not None:
            connection.close()
        await redis.aclose()
    print(_summary(report, target, args.dry_run), flush=True)
    for conversation, error in list(report.failed.items())[:SHOWN_FAILURES]:
        print(f"softphone-relay: failed {conversation}: {error}", file=sys.stderr)
    if report.resume_from is not None:
        why = "stopped" if stop.is_set() else "the target stopped taking records"
        print(
            f"softphone-relay: {why}; resume with:\n  {_resume_command(args, report.resume_from)}",
            file=sys.stderr,
        )
        return STOPPED if stop.is_set() else 1
    return 1 if report.failed or report.busy else 0


def private_output(path: str | None) -> IO[str]:
    """Where ``export`` writes: stdout, or a new file only its owner can read (the log holds
    callers' numbers; closed by the caller)."""
    if path in (None, "-"):
        return sys.stdout
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)  # a file that was there keeps no wider mode
        return os.fdopen(descriptor, "w")  # closed in export's finally
    except OSError as error:
        raise ConfigError("--out", f"cannot write {path}: {error.strerror}") from None


async def export(args: ExportOptions) -> int:
    """``export``: a range of the log as JSONL (one event per line, with its stream and id)."""
    start, end = _range(args)
    settings, url = settings_and_url(args.data_dir)
    redis = clients.connect(url, timeout=10.0)
    out = private_output(args.out)
    stop = asyncio.Event()
    count, last = 0, None
    began = time.monotonic()
    try:
        with _stop_on_interrupt(stop):
            shards = max(settings.relay.shards, await shard_count(redis))
            archive = open_catalog(settings.projections.archive_url)
            personal = await started_personal_data(redis, settings.relay)
            async for event in opened(
                read_range(redis, start, end, _filter(args), shards=shards, archive=archive),
                personal,
            ):
                out.write(event_line(event, as_json=True) + "\n")
                count, last = count + 1, event.id
                if stop.is_set():
                    break
    finally:
        if out is not sys.stdout:
            out.close()
        await redis.aclose()
    where = "stdout" if out is sys.stdout else args.out
    print(
        f"exported {count:,} events to {where} in {time.monotonic() - began:.1f} s"
        + (f" (last {last})" if last else ""),
        file=sys.stderr,
    )
    if stop.is_set():
        resume = f"({last}" if last else args.from_
        print(f"softphone-relay: stopped; carry on with --from '{resume}'", file=sys.stderr)
        return STOPPED
    return 0


async def trim(args: TrimOptions) -> int:
    """``trim``: apply the retention (``SOFTPHONE_RELAY_RETENTION`` or ``--older-than``)."""
    settings, url = settings_and_url(args.data_dir)
    retention = settings.projections.retention
    if args.older_than:
        retention = parse_duration("--older-than", args.older_than)
    if retention is None:
        raise ConfigError(
            "SOFTPHONE_RELAY_RETENTION", "not set (the log is kept forever); or pass --older-than"
        )
    cutoff_ms = int((time.time() - retention) * 1000)
    redis = clients.connect(url, timeout=10.0)
    try:
        shards = max(settings.relay.shards, await shard_count(redis))
        # With an archive, its group must exist (and so hold back what it has not stored).
        required = frozenset({GROUP}) if settings.projections.archive_url else frozenset()
        done = await trim_log(redis, shards, cutoff_ms, dry_run=args.dry_run, required=required)
    finally:
        await redis.aclose()
    if args.json:
        for shard in done:
            print(json.dumps(msgspec.to_builtins(shard)))
        return 0
    verb = "would remove" if args.dry_run else "removed"
    for shard in done:
        held = f" (held back by group {shard.held_by})" if shard.held_by else ""
        print(f"{shard.stream}: {verb} {shard.removed:,} entries before {shard.minid}{held}")
    return 0
