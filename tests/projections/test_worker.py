"""The worker framework against a real Redis: ack after the effect, retries, dead letters,
claiming a dead worker's entries, parallel workers, graceful stop.
"""

from __future__ import annotations

import asyncio
import json

import redis.asyncio as aioredis

from projections.outcomes import Done, LogEntry, Outcome, Pause, Retry, Wait
from projections.worker import Worker, WorkerSettings
from relay.log import keys
from tests.helpers import Recorder, append_ids

FAST = WorkerSettings(block_ms=50, claim_idle_ms=300, retry_after_ms=50, max_deliveries=3)


async def pending(client: aioredis.Redis, shard: int = 0) -> int:
    return int((await client.xpending(keys.event_stream(shard), "calls"))["pending"])


async def dead_letters(client: aioredis.Redis) -> list[dict[str, str]]:
    entries = await client.xrange(keys.dead_letters("calls"))
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


async def test_every_entry_is_handled_and_acked(redis_client: aioredis.Redis) -> None:
    """A drained log: every event handled once, nothing pending."""
    await append_ids(redis_client, *(f"e{i}" for i in range(50)))
    recorder = Recorder()
    await Worker(redis_client, recorder, FAST).run(burst=True)
    assert recorder.handled == [f"e{i}" for i in range(50)]
    assert await pending(redis_client) == 0


async def test_every_shard_is_read(redis_client: aioredis.Redis) -> None:
    """A worker reads all shards of the log."""
    for shard in range(3):
        await append_ids(redis_client, f"s{shard}", shard=shard)
    recorder = Recorder()
    await Worker(redis_client, recorder, WorkerSettings(shards=3, block_ms=50)).run(burst=True)
    assert sorted(recorder.handled) == ["s0", "s1", "s2"]


async def test_transient_failure_is_retried_until_it_succeeds(
    redis_client: aioredis.Redis,
) -> None:
    """A Retry leaves the entry pending; it comes back and is acked once it succeeds."""
    await append_ids(redis_client, "ok", "flaky")
    recorder = Recorder(retry={"flaky"})
    flaky_retried = asyncio.Event()
    retries = 0

    class Watching(Recorder):
        async def handle(self, entries: list[LogEntry]) -> dict[str, Outcome]:
            nonlocal retries
            outcomes = await recorder.handle(entries)
            retries += sum(isinstance(o, Retry) for o in outcomes.values())
            if retries >= 2:  # redelivered once: the first batch's ack is done
                flaky_retried.set()
            return outcomes

    worker = Worker(redis_client, Watching(), WorkerSettings(block_ms=50, retry_after_ms=50))
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(flaky_retried.wait(), 10)
        assert recorder.handled == ["ok"] and await pending(redis_client) == 1
        recorder.retry.clear()
        for _ in range(200):
            if await pending(redis_client) == 0:
                break
            await asyncio.sleep(0.05)
    finally:
        worker.stop()
        await task
    assert recorder.handled == ["ok", "flaky"] and await pending(redis_client) == 0


async def test_too_many_deliveries_go_to_the_dead_letters(redis_client: aioredis.Redis) -> None:
    """After max_deliveries the entry is dead-lettered with its error and attempts, then acked."""
    [entry_id] = await append_ids(redis_client, "doomed")
    await Worker(redis_client, Recorder(retry={"doomed"}), FAST).run(burst=True)
    [letter] = await dead_letters(redis_client)
    assert letter["id"] == entry_id and letter["stream"] == keys.event_stream(0)
    assert letter["attempts"] == "3" and "doomed failed for now" in letter["error"]
    assert json.loads(letter["e"])["id"] == "doomed"
    assert await pending(redis_client) == 0


async def test_rejected_entry_is_dead_lettered_and_the_rest_land(
    redis_client: aioredis.Redis,
) -> None:
    """A refused record goes to the dead letters at once; the others are handled."""
    await append_ids(redis_client, "a", "bad", "b")
    recorder = Recorder(reject={"bad"})
    await Worker(redis_client, recorder, FAST).run(burst=True)
    assert recorder.handled == ["a", "b"]
    [letter] = await dead_letters(redis_client)
    assert (letter["attempts"], letter["error"]) == ("1", "bad is refused")


async def test_undecodable_entry_is_dead_lettered(redis_client: aioredis.Redis) -> None:
    """A log entry that is no envelope is poison: dead-lettered, never handed over."""
    await redis_client.xadd(keys.event_stream(0), {"e": b"not json"})
    await append_ids(redis_client, "fine")
    recorder = Recorder()
    await Worker(redis_client, recorder, FAST).run(burst=True)
    assert recorder.handled == ["fine"]
    assert "not an event envelope" in (await dead_letters(redis_client))[0]["error"]


async def test_a_failing_batch_is_retried_not_lost(redis_client: aioredis.Redis) -> None:
    """A projection that raises leaves the whole batch pending for a retry."""

    class Crashing(Recorder):
        calls = 0

        async def handle(self, entries: list[LogEntry]) -> dict[str, Outcome]:
            Crashing.calls += 1
            if Crashing.calls == 1:
                raise ConnectionError("salesforce went away")
            return await super().handle(entries)

    await append_ids(redis_client, "x", "y")
    recorder = Crashing()
    await Worker(redis_client, recorder, FAST).run(burst=True)
    assert recorder.handled == ["x", "y"] and Crashing.calls == 2


async def test_a_dead_workers_entries_are_claimed_by_another(
    redis_client: aioredis.Redis,
) -> None:
    """Entries read by a consumer that never acks are taken over after claim_idle."""
    await append_ids(redis_client, "p", "q")
    dead = Worker(redis_client, Recorder(), FAST, consumer="dead")
    await dead.ensure_groups()
    await redis_client.xreadgroup("calls", "dead", {keys.event_stream(0): ">"}, count=10)
    assert await pending(redis_client) == 2
    recorder = Recorder()
    await Worker(redis_client, recorder, FAST, consumer="alive").run(burst=True)
    assert sorted(recorder.handled) == ["p", "q"] and await pending(redis_client) == 0


async def test_parallel_workers_share_the_log_without_repeats(
    redis_client: aioredis.Redis,
) -> None:
    """Two workers on one group each take part of the log; no entry is handled twice."""
    await append_ids(redis_client, *(f"e{i}" for i in range(300)))
    first, second = Recorder(), Recorder()
    settings = WorkerSettings(batch_size=20, block_ms=50, claim_idle_ms=60_000)
    await asyncio.gather(
        Worker(redis_client, first, settings).run(burst=True),
        Worker(redis_client, second, settings).run(burst=True),
    )
    assert sorted(first.handled + second.handled) == sorted(f"e{i}" for i in range(300))
    assert first.handled and second.handled


async def test_stop_finishes_the_batch_in_hand(redis_client: aioredis.Redis) -> None:
    """On stop, the batch being handled completes and is acked before run() returns."""
    await append_ids(redis_client, "m", "n")
    gate = asyncio.Event()
    recorder = Recorder(gate=gate)
    worker = Worker(redis_client, recorder, FAST)
    task = asyncio.create_task(worker.run())
    await recorder.started.wait()
    worker.stop()
    gate.set()
    await asyncio.wait_for(task, 5)
    assert recorder.handled == ["m", "n"] and await pending(redis_client) == 0


async def test_a_batch_waits_a_bounded_time_to_fill(redis_client: aioredis.Redis) -> None:
    """Entries arriving within batch_wait join the batch: one effect instead of several."""
    batches: list[int] = []

    class Sizes(Recorder):
        async def handle(self, entries: list[LogEntry]) -> dict[str, Outcome]:
            batches.append(len(entries))
            return await super().handle(entries)

    settings = WorkerSettings(block_ms=1000, batch_size=10, batch_wait_ms=1500)
    worker = Worker(redis_client, Sizes(), settings)
    await worker.ensure_groups()
    task = asyncio.create_task(worker.run())
    try:
        await append_ids(redis_client, "first")
        await asyncio.sleep(0.1)
        await append_ids(redis_client, "second", "third")
        for _ in range(100):
            if batches:
                break
            await asyncio.sleep(0.05)
    finally:
        worker.stop()
        await task
    assert batches == [3]


class PausingTarget:
    """A projection whose target is down for the first ``down`` batches."""

    group = "calls"

    def __init__(self, down: int) -> None:
        self.down = down
        self.handled: list[str] = []
        self.deliveries: list[int] = []

    async def handle(self, entries: list[LogEntry]) -> dict[str, Outcome]:
        self.deliveries += [e.deliveries for e in entries]
        if self.down > 0:
            self.down -= 1
            return {e.id: Pause("target unavailable", 0.01) for e in entries}
        self.handled += [e.envelope.id for e in entries if e.envelope is not None]
        return {e.id: Done() for e in entries}


async def test_pauses_do_not_count_as_attempts(redis_client: aioredis.Redis) -> None:
    """A target down for longer than max_deliveries rounds dead-letters nothing."""
    await append_ids(redis_client, "e1", "e2")
    target = PausingTarget(down=FAST.max_deliveries * 2)
    await Worker(redis_client, target, FAST).run(burst=True)
    assert sorted(target.handled) == ["e1", "e2"]
    assert await dead_letters(redis_client) == []
    assert max(target.deliveries) == 1, "each pause took its delivery back"


class WaitingTarget:
    """A projection whose effect stays unknown for the first ``rounds`` offers of each entry."""

    group = "calls"

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        self.offers: dict[str, int] = {}
        self.deliveries: list[int] = []

    async def handle(self, entries: list[LogEntry]) -> dict[str, Outcome]:
        self.deliveries += [e.deliveries for e in entries]
        outcomes: dict[str, Outcome] = {}
        for entry in entries:
            self.offers[entry.id] = self.offers.get(entry.id, 0) + 1
            waiting = self.offers[entry.id] <= self.rounds
            outcomes[entry.id] = Wait("may still commit", 1.0) if waiting else Done()
        return outcomes


async def test_a_waiting_entry_is_offered_again_without_counting_attempts(
    redis_client: aioredis.Redis,
) -> None:
    """Waiting longer than max_deliveries offers dead-letters nothing, and the entry lands."""
    await append_ids(redis_client, "e1", "e2")
    target = WaitingTarget(rounds=FAST.max_deliveries * 2)
    await Worker(redis_client, target, FAST).run(burst=True)
    assert sorted(target.offers.values()) == [FAST.max_deliveries * 2 + 1] * 2
    assert await dead_letters(redis_client) == [] and await pending(redis_client) == 0
    assert max(target.deliveries) == 1, "each wait took its delivery back"


class FailsOnce:
    """The real client, except that its first ``XAUTOCLAIM`` fails the way a client library
    should not (not a RedisError): fault injection into the library, not into our code."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self.failed = False

    def __getattr__(self, name: str) -> object:
        return getattr(self._client, name)

    async def xautoclaim(self, *args: object, **kwargs: object) -> object:
        if not self.failed:
            self.failed = True
            raise RuntimeError("the client library broke")
        return await self._client.xautoclaim(*args, **kwargs)  # type: ignore[arg-type]


async def test_an_unexpected_client_failure_is_logged_and_the_shard_loop_goes_on(
    redis_client: aioredis.Redis,
) -> None:
    """No exception from the client library ends a worker: it backs off and reads again."""
    await append_ids(redis_client, "e1", "e2")
    recorder = Recorder()
    flaky = FailsOnce(redis_client)
    await Worker(flaky, recorder, FAST).run(burst=True)  # type: ignore[arg-type]
    assert flaky.failed and recorder.handled == ["e1", "e2"]
    assert await pending(redis_client) == 0
