"""The archiver as operators run it (``project --group archive``), SIGKILLed while the log
grows and restarted: the archive still holds every entry once, in order."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from projections.archive.stores import open_store
from relay.log.event_log import EventLog
from tests.helpers import CLI, call, clean_env, conversation_ids, shard_archive, shard_log

SHARDS = 2


def start_archiver(env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    """``project --group archive``, its output appended to ``cwd/archiver.log``."""
    with (cwd / "archiver.log").open("ab") as output:
        return subprocess.Popen(
            [*CLI, "project", "--group", "archive"],
            cwd=cwd,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture(params=["file", "s3"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    """The archive's URL and the variables a process needs to reach it."""
    if request.param == "file":
        return f"file://{tmp_path / 'archive'}", {}
    return request.getfixturevalue("bucket_url"), request.getfixturevalue("s3_env")


async def test_an_archiver_killed_while_the_log_grows_loses_and_repeats_nothing(
    target: tuple[str, dict[str, str]],
    redis_client: aioredis.Redis,
    redis_url: str,
    tmp_path: Path,
) -> None:
    """Calls are appended for three seconds (one-second segments); the archiver is SIGKILLed
    at a random moment and started again (it takes the shards over once the dead one's
    lease has expired). Once the last span is sealed, each shard's archive
    equals its log, entry for entry."""
    url, extra = target
    env = clean_env(
        SOFTPHONE_RELAY_REDIS_URL=redis_url,
        SOFTPHONE_RELAY_SHARDS=str(SHARDS),
        SOFTPHONE_RELAY_ARCHIVE_URL=url,
        SOFTPHONE_RELAY_ARCHIVE_SEGMENT="1s",
        SOFTPHONE_RELAY_WORKER_METRICS_PORT="0",
        **extra,
    )
    store = open_store(url)
    log = EventLog(redis_client, shards=SHARDS, dedupe_ttl=3600)
    archiver = start_archiver(env, tmp_path)
    kill_at = time.monotonic() + random.uniform(0.5, 2.0)
    killed = False
    try:
        started = time.monotonic()
        while time.monotonic() - started < 3.0:
            conversations = conversation_ids(10)
            await log.append_all([e for n, c in enumerate(conversations) for e in call(c, n)])
            if not killed and time.monotonic() >= kill_at:
                archiver.send_signal(signal.SIGKILL)
                archiver.wait(10)
                killed = True
                archiver = start_archiver(env, tmp_path)
            await asyncio.sleep(0.02)
        deadline = time.monotonic() + 30
        while True:
            logs = [await shard_log(redis_client, s) for s in range(SHARDS)]
            archives = [await shard_archive(store, s) for s in range(SHARDS)]
            if archives == logs or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert killed
        for shard in range(SHARDS):
            assert [i for i, _ in archives[shard]] == [i for i, _ in logs[shard]]
            assert archives[shard] == logs[shard]
    finally:
        archiver.send_signal(signal.SIGTERM)
        archiver.wait(15)
    assert archiver.returncode == 0, (tmp_path / "archiver.log").read_text()
