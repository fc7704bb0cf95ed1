"""The tiered log under faults: retention never deletes what the archive has not stored, and a
reader never skips part of the log silently (issue 26). Each case runs the command line as an
operator would, against a real Redis and a real archive (a directory, or an S3 endpoint that is
slow or not there)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from projections.archive.archiver import Archiver
from projections.archive.catalog import MARKER, ArchiveMissing
from projections.archive.groups import GROUP, group_info
from projections.archive.segments import shard_prefix
from projections.archive.stores import TEMPORARY, FileStore
from projections.metrics import LogGauges
from relay.log import keys
from relay.log.envelope import encode_stored
from softphone_relay.ops.status import gather, observe
from tests.helpers import CLI, call, clean_env, conversation_ids, eventually, run_cli

from .conftest import CREDENTIALS


async def append_hours_ago(
    redis: aioredis.Redis, calls: int, hours: float, shards: int = 1
) -> list[str]:
    """``calls`` answered calls (four entries each) logged ``hours`` ago, spread over
    ``shards`` by conversation; the conversations."""
    base_ms = int((time.time() - hours * 3600) * 1000)
    conversations = conversation_ids(calls)
    for n, conversation in enumerate(conversations):
        stream = keys.event_stream(keys.shard_of(conversation, shards))
        for i, event in enumerate(call(conversation, n)):
            await redis.xadd(stream, {"e": encode_stored(event)}, id=f"{base_ms + n}-{i}")
    return conversations


async def archive_everything(redis: aioredis.Redis, store: FileStore, shards: int) -> None:
    """Archive every sealed span of every shard, as a running archiver would."""
    archiver = Archiver(redis, store, shards=shards, span_seconds=60, grace_seconds=0)
    for shard in range(shards):
        await archiver.archive_sealed(shard)


@contextlib.asynccontextmanager
async def silent_endpoint() -> AsyncIterator[str]:
    """An HTTP endpoint that accepts connections and never answers (an S3 that hangs)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def s3_endpoint_that(behaves: str) -> AsyncIterator[str]:
    """An S3 endpoint that is ``slow`` (never answers) or ``unreachable`` (refuses)."""
    if behaves == "slow":
        async with silent_endpoint() as url:
            yield url
    else:
        yield f"http://127.0.0.1:{closed_port()}"


async def read_until(path: Path, text: str, within: float) -> str:
    """The file's text once it holds ``text`` (fails after ``within`` seconds)."""
    found = ""

    async def holds_it() -> bool:
        nonlocal found
        found = await asyncio.to_thread(lambda: path.read_text() if path.exists() else "")
        return text in found

    try:
        await eventually(holds_it, within=within, step=0.1)
    except AssertionError:
        raise AssertionError(f"{text!r} never appeared in {path}:\n{found}") from None
    return found


@pytest.mark.parametrize("archive", ["slow", "unreachable"])
async def test_turning_the_archive_on_with_a_retention_trims_nothing_it_has_not_stored(
    archive: str, redis_client: aioredis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """A log whose 80 entries are two hours old; ``project --group archive`` starts with an
    archive (slow to answer, or not reachable at all) and a retention of one hour. The
    retention pass that runs at once is held back by the archive group, created before it:
    all 80 stay."""
    await append_hours_ago(redis_client, 20, hours=2)
    async with s3_endpoint_that(archive) as endpoint:
        env = clean_env(
            SOFTPHONE_RELAY_REDIS_URL=redis_url,
            SOFTPHONE_RELAY_ARCHIVE_URL="s3://archive/log",
            SOFTPHONE_RELAY_RETENTION="1h",
            SOFTPHONE_RELAY_WORKER_METRICS_PORT="0",
            AWS_ENDPOINT_URL=endpoint,
            **CREDENTIALS,
        )
        output = tmp_path / "project.log"
        with output.open("wb") as sink:
            project = await asyncio.create_subprocess_exec(
                *CLI,
                "project",
                "--group",
                "archive",
                cwd=tmp_path,
                env=env,
                stdout=sink,
                stderr=sink,
            )
        try:
            text = await read_until(output, "event=log_trimmed", within=30)
        finally:
            with contextlib.suppress(ProcessLookupError):
                project.terminate()
            await project.wait()
    assert "held_by=archive removed=0" in text, text
    assert await redis_client.xlen(keys.event_stream(0)) == 80


async def test_trim_with_an_archive_that_never_ran_refuses_and_keeps_everything(
    redis_client: aioredis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """``trim`` with ``SOFTPHONE_RELAY_ARCHIVE_URL`` set but no archiver ever run: one line
    saying why, exit 2, and the 40 entries are all still there."""
    await append_hours_ago(redis_client, 10, hours=2)
    env = clean_env(SOFTPHONE_RELAY_ARCHIVE_URL=f"file://{tmp_path / 'archive'}")
    trim = run_cli(redis_url, tmp_path, "trim", "--older-than", "1h", env=env)
    assert trim.returncode == 2, trim.stdout
    [line] = trim.stderr.splitlines()
    assert "refusing to trim" in line and "'archive' consumer group" in line
    assert await redis_client.xlen(keys.event_stream(0)) == 40


def without_root_privileges() -> list[str]:
    """What to run a command under so that file permissions apply to it even as root (the
    capabilities that let root read any folder are taken out of its bounding set)."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


async def test_export_fails_on_an_archive_folder_it_cannot_read(
    redis_client: aioredis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """One shard's archive folder cannot be listed: ``export`` exits 2 naming it, instead of
    writing the other shard's half of the log and exiting 0."""
    await append_hours_ago(redis_client, 20, hours=2, shards=2)
    store = FileStore(tmp_path / "archive")
    await archive_everything(redis_client, store, shards=2)
    for shard in range(2):
        await redis_client.xtrim(keys.event_stream(shard), maxlen=0, approximate=False)
    folder = store.root / shard_prefix(1)
    folder.chmod(0)
    try:
        env = clean_env(
            SOFTPHONE_RELAY_REDIS_URL=redis_url,
            SOFTPHONE_RELAY_SHARDS="2",
            SOFTPHONE_RELAY_ARCHIVE_URL=f"file://{store.root}",
        )
        out = tmp_path / "log.jsonl"
        export = await asyncio.to_thread(
            subprocess.run,
            [*without_root_privileges(), *CLI, "export", "--out", str(out)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        folder.chmod(0o755)
    assert export.returncode == 2, export.stdout
    assert "Permission denied" in export.stderr and "shard-0001" in export.stderr


async def test_export_from_an_archive_folder_that_is_not_there_is_an_error(
    redis_client: aioredis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """The archive's folder is missing (not mounted): ``export`` says so instead of printing
    only what Redis still holds as if it were the whole log."""
    await append_hours_ago(redis_client, 10, hours=2)
    store = FileStore(tmp_path / "archive")
    await archive_everything(redis_client, store, shards=1)
    env = clean_env(SOFTPHONE_RELAY_ARCHIVE_URL=f"file://{tmp_path / 'not-mounted'}")
    export = run_cli(redis_url, tmp_path, "export", "--out", str(tmp_path / "log.jsonl"), env=env)
    assert export.returncode == 2
    assert MARKER in export.stderr and "not mounted" in export.stderr


async def test_an_archiver_on_an_empty_archive_that_the_log_says_was_written_stays_put(
    redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    """The log's archive group has moved (something was archived), but the archive configured
    now is empty and unmarked: the archiver refuses it and never moves the group."""
    await append_hours_ago(redis_client, 10, hours=2)
    await archive_everything(redis_client, FileStore(tmp_path / "archive"), shards=1)
    before = await group_info(redis_client, keys.event_stream(0))
    assert before is not None
    await append_hours_ago(redis_client, 5, hours=1)
    elsewhere = Archiver(
        redis_client, FileStore(tmp_path / "empty"), shards=1, span_seconds=60, grace_seconds=0
    )
    with pytest.raises(ArchiveMissing, match="is it mounted"):
        await elsewhere.archive_sealed(0)
    after = await group_info(redis_client, keys.event_stream(0))
    assert after is not None and after["last-delivered-id"] == before["last-delivered-id"]
    assert not (tmp_path / "empty").exists()


async def test_tail_from_a_point_reads_the_archive_of_a_shard_whose_redis_stream_is_empty(
    redis_client: aioredis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """Every entry archived and trimmed from Redis: ``tail --from - --no-follow`` prints them
    all from the archive, as ``export`` does."""
    await append_hours_ago(redis_client, 20, hours=2)
    store = FileStore(tmp_path / "archive")
    await archive_everything(redis_client, store, shards=1)
    await redis_client.xtrim(keys.event_stream(0), maxlen=0, approximate=False)
    assert await redis_client.xlen(keys.event_stream(0)) == 0
    env = clean_env(SOFTPHONE_RELAY_ARCHIVE_URL=f"file://{store.root}")
    tail = run_cli(redis_url, tmp_path, "tail", "--from", "-", "--no-follow", "--json", env=env)
    assert tail.returncode == 0, tail.stderr
    assert len(tail.stdout.splitlines()) == 80


async def test_status_shows_the_archive_groups_lag_from_its_creation(
    redis_client: aioredis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """40 entries, 10 of them trimmed before the archive was turned on: once the archiver has
    started (nothing sealed yet), ``status`` shows the archive group 30 behind, and the
    projector_lag gauge says the same."""
    await append_hours_ago(redis_client, 10, hours=0)
    stream = keys.event_stream(0)
    [tenth, *_] = [entry_id for entry_id, _ in await redis_client.xrange(stream, "-", "+")][10:]
    await redis_client.xtrim(stream, minid=tenth, approximate=False)
    archiver = Archiver(redis_client, FileStore(tmp_path / "archive"), shards=1)
    assert await archiver.archive_sealed(0) == 0  # the span is not over yet
    status = run_cli(redis_url, tmp_path, "status", "--json")
    assert status.returncode == 0, status.stderr
    [shard] = json.loads(status.stdout)["shards"]
    assert {g["group"]: g["lag"] for g in shard["groups"]} == {GROUP: 30}
    gauges = LogGauges()
    observe(gauges, (await gather(redis_client, 1)).shards, {})
    assert gauges.lag.labels(GROUP, stream)._value.get() == 30


async def test_an_archiver_removes_what_a_killed_write_left_and_hands_its_lease_back(
    redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    """A temporary file from a write that never finished is gone once the archiver has started
    on its shard; once it stops, the shard's lease is free at once (not in 10 s)."""
    await append_hours_ago(redis_client, 5, hours=2)
    store = FileStore(tmp_path / "archive")
    folder = store.root / shard_prefix(0)
    folder.mkdir(parents=True)
    leftover = folder / f"{TEMPORARY}0badcafe-segment"
    leftover.write_bytes(b"half a segment")
    archiver = Archiver(redis_client, store, shards=1, span_seconds=60, grace_seconds=0)
    running = asyncio.create_task(archiver.run())
    try:
        await eventually(
            lambda: asyncio.to_thread(lambda: not leftover.exists()), within=10, step=0.05
        )
        assert await redis_client.exists(keys.archive_lease(0))
    finally:
        archiver.stop()
        await running
    assert not await redis_client.exists(keys.archive_lease(0))
