"""``softphone-relay status`` and ``tail`` against a real log."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from pathlib import Path

import redis.asyncio as aioredis

from projections.worker import Worker, WorkerSettings
from relay.log import keys
from relay.log.event_log import EventLog
from relay.server.server import Relay
from tests.helpers import CLI, PARTNER, AgentFactory, Recorder, clean_env, envelope, run_cli


async def test_tail_prints_the_log_filtered(
    relay: Relay, open_agent: AgentFactory, redis_url: str, tmp_path: Path
) -> None:
    """``tail --from - --conversation C --json --no-follow``: that call's events, in order."""
    agent = await open_agent(relay)
    for conversation in ("c1", "c2"):
        for name in ("incomingCall", "callEnded"):
            await agent.event(name, {"partnerId": PARTNER, "conversationId": conversation})
            await agent.recv()
    result = run_cli(
        redis_url, tmp_path, "tail", "--from", "-", "--conversation", "c2", "--json", "--no-follow"
    )
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["name"], e["conversationId"]) for e in lines] == [
        ("incomingCall", "c2"),
        ("callEnded", "c2"),
    ]
    text = run_cli(redis_url, tmp_path, "tail", "--from", "-", "--name", "callEnded", "--no-follow")
    assert [line.split()[2] for line in text.stdout.splitlines()] == ["callEnded", "callEnded"]


def test_tail_refuses_a_bad_position(redis_url: str, tmp_path: Path) -> None:
    """A --from that is neither an id nor a time is one line, exit 2."""
    result = run_cli(redis_url, tmp_path, "tail", "--from", "yesterday", "--no-follow")
    assert result.returncode == 2 and "--from: expected a stream id" in result.stderr


async def test_status_shows_lengths_lag_pending_and_agents(
    relay: Relay,
    open_agent: AgentFactory,
    redis_url: str,
    redis_client: aioredis.Redis,
    tmp_path: Path,
) -> None:
    """Three events, a calls group that has read none: length 3, lag 3, nothing pending."""
    agent = await open_agent(relay)
    for n in range(3):
        await agent.event("callEnded", {"partnerId": PARTNER, "conversationId": f"c{n}"})
        await agent.recv()
    await Worker(redis_client, Recorder(), WorkerSettings()).ensure_groups()
    found = json.loads(run_cli(redis_url, tmp_path, "status", "--json").stdout)
    shard = found["shards"][0]
    assert shard["length"] == 3
    [group] = shard["groups"]
    assert (group["group"], group["lag"], group["pending"]) == ("calls", 3, 0)
    assert found["onlineAgents"] == {relay.instance_id: 1}
    assert found["deadLetters"] == {"calls": 0, "presence": 0, "dispatch": 0, "voicecalls": 0}
    assert "SHARD" in run_cli(redis_url, tmp_path, "status").stdout


def on_shard(shard: int) -> str:
    """A conversation id that lands on ``shard`` of two."""
    while keys.shard_of(conversation := str(uuid.uuid4()), 2) != shard:
        pass
    return conversation


async def test_tail_follows_every_shard_without_skipping_an_entry(
    redis_url: str, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    """Following from concrete ids, not ``$``: a shard quiet in one read loses nothing."""
    env = clean_env(SOFTPHONE_RELAY_REDIS_URL=redis_url, SOFTPHONE_RELAY_SHARDS="2")
    tail = await asyncio.create_subprocess_exec(
        *CLI, "tail", "--json", cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE
    )
    assert tail.stdout is not None
    try:
        await asyncio.sleep(2.0)  # started and following
        log = EventLog(redis_client, shards=2, dedupe_ttl=3600)
        sent = []
        for round_ in range(8):
            # A burst on shard 0 keeps tail printing while one entry lands on shard 1: a
            # reader that kept ``$`` for the quiet shard would skip that entry.
            burst = [envelope("callEnded", on_shard(0), round_) for _ in range(300)]
            await log.append_batch(burst)
            await asyncio.sleep(0.003)
            lone = envelope("callEnded", on_shard(1), round_)
            await log.append_batch([lone])
            sent += [e.id for e in burst] + [lone.id]
            await asyncio.sleep(0.05)
        seen: list[str] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                while len(seen) < len(sent):
                    seen.append(json.loads(await tail.stdout.readline())["id"])
        assert sorted(seen) == sorted(sent), f"tail skipped {len(set(sent) - set(seen))} entries"
    finally:
        tail.terminate()
        await tail.wait()


def test_a_shard_redis_refuses_is_an_error_not_an_empty_shard(
    redis_url: str, tmp_path: Path
) -> None:
    """Only ``no such key`` means empty: a key of the wrong type is reported as what it is."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.set(keys.event_stream(0), "not a stream")
    client.close()
    result = run_cli(redis_url, tmp_path, "status", "--json")
    assert result.returncode == 2
    assert result.stderr.startswith("softphone-relay: error: the event log (Redis) refused a")
    assert "WRONGTYPE" in result.stderr
