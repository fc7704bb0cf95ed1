"""The workers' Prometheus metrics: batches and outcomes, and the log's lag, pending entries
and dead letters per group, served by ``project`` on its own port."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from projections.metrics import LogGauges, WorkerMetrics
from projections.worker import Worker, WorkerSettings
from softphone_relay.embedded import free_port
from softphone_relay.ops.status import gather, observe
from tests.helpers import Recorder, append_ids

SETTINGS = WorkerSettings(block_ms=50)


async def test_a_worker_counts_its_batches_and_each_entry_by_outcome(
    redis_client: aioredis.Redis,
) -> None:
    """Batch sizes, batch times and settled entries by outcome are counted."""
    await append_ids(redis_client, "e1", "e2", "e3")
    registry = CollectorRegistry()
    projection = Recorder(reject={"e2"})
    await Worker(redis_client, projection, SETTINGS, metrics=WorkerMetrics(registry)).run(
        burst=True
    )

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"group": "calls", **labels})

    assert sample("softphone_relay_projector_entries_total", outcome="done") == 2
    assert sample("softphone_relay_projector_entries_total", outcome="reject") == 1
    assert sample("softphone_relay_projector_batch_size_sum") == 3
    assert sample("softphone_relay_projector_batch_seconds_count") == 1


async def test_the_log_gauges_show_lag_pending_and_dead_letters(
    redis_client: aioredis.Redis,
) -> None:
    """The log gauges read lag, pending entries and dead letters from Redis."""
    await append_ids(redis_client, "e1", "e2", "e3")
    await Worker(redis_client, Recorder(reject={"e1"}), SETTINGS).run(burst=True)
    await append_ids(redis_client, "e4", "e5")
    stream = "sp:events:{0}"
    await redis_client.xreadgroup("calls", "x", {stream: ">"}, count=1)  # e4: pending
    registry = CollectorRegistry()

    status = await gather(redis_client, 1)
    observe(LogGauges(registry), status.shards, status.deadLetters)

    labels = {"group": "calls", "stream": stream}
    assert registry.get_sample_value("softphone_relay_projector_lag", labels) == 1
    assert registry.get_sample_value("softphone_relay_projector_pending", labels) == 1
    assert registry.get_sample_value("softphone_relay_dead_letters", {"group": "calls"}) == 1
    assert registry.get_sample_value("softphone_relay_log_entries", {"stream": stream}) == 5


def test_project_serves_the_lag_of_its_groups_on_its_metrics_port(
    redis_url: str, tmp_path: Path
) -> None:
    """project serves its groups' gauges on its metrics port."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOFTPHONE_RELAY_")} | {
        "SOFTPHONE_RELAY_REDIS_URL": redis_url,
        "SOFTPHONE_RELAY_WORKER_METRICS_PORT": str(port),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "softphone_relay", "project", "--group", "presence"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    lag = 'softphone_relay_projector_lag{group="presence",stream="sp:events:{0}"} 0.0'
    text = ""
    try:
        deadline = time.monotonic() + 20
        while lag not in text and time.monotonic() < deadline:
            time.sleep(0.2)
            with contextlib.suppress(OSError):
                text = scrape(port)
    finally:
        process.terminate()
        process.wait(10)
    assert lag in text
    assert 'softphone_relay_dead_letters{group="calls"} 0.0' in text


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
        return str(answer.read().decode())
