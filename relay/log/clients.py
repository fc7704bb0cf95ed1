"""Redis clients for the log, and what every caller of Redis shares: which errors mean "did
not take effect for sure" (:data:`LOG_ERRORS`) and how scripts are sent in pipelines.

``redis://``, ``rediss://`` and ``unix://`` name one server; ``redis+cluster://`` (with TLS,
``rediss+cluster://``) a seed node of a Redis Cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, cast

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import RedisCluster
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisClusterException, RedisError
from redis.retry import Retry

LOG_ERRORS: Final = (RedisError, OSError, RedisClusterException)
"""What a call to the log may raise when it did not take effect for sure: Redis's errors, the
network's, and a cluster client's own (which is no ``RedisError``)."""

CLUSTER_SCHEMES: Final = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
"""``redis+cluster://`` (``rediss+cluster://`` with TLS) names a seed node of a Redis Cluster."""


def cluster_seed(url: str) -> str | None:
    """The plain ``redis://`` seed URL when ``url`` names a cluster, else None."""
    scheme, sep, rest = url.partition("://")
    plain = CLUSTER_SCHEMES.get(scheme)
    return f"{plain}{sep}{rest}" if plain and sep else None


def connect(url: str, *, timeout: float = 2.0, max_connections: int = 64) -> aioredis.Redis:
    """A client for the log: short timeouts, one quick reconnect, no slow hidden retries.

    The pool is bounded and blocking: a burst of new sessions waits for a connection (up to
    ``timeout``) instead of opening hundreds or failing. For ``redis+cluster://`` it is a
    cluster client (``RedisCluster``), which follows redirects and routes each command to the
    node of its key's slot; it offers the same commands, and every multi-key operation of ours
    stays within one slot (hash tags), so the rest of the code runs unchanged on it.
    """
    seed = cluster_seed(url)
    if seed is not None:
        cluster = RedisCluster.from_url(
            seed,
            max_connections=max_connections,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1),
            health_check_interval=0,
        )
        return cast(aioredis.Redis, cluster)
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=0,
    )
    return aioredis.Redis.from_pool(pool)


def queue_script(pipe: Pipeline, script: AsyncScript, keys_: list[str], args: list[Any]) -> None:
    """Queue a script call on a pipeline as a plain EVALSHA: a pipeline holding a Script object
    first asks SCRIPT EXISTS (one more round trip), and a cluster pipeline refuses evalsha()
    but routes the command by its keys' slot."""
    pipe.execute_command("EVALSHA", script.sha, len(keys_), *keys_, *args)


async def execute_loading_scripts(
    redis: aioredis.Redis, fill: Callable[[Pipeline], None], scripts: list[AsyncScript]
) -> list[Any]:
    """Send what ``fill`` queues as one pipeline; the replies, errors among them. If a script
    was missing (Redis restarted and lost its script cache), load ``scripts`` and send it again
    once."""
    for attempt in (1, 2):
        async with redis.pipeline(transaction=False) as pipe:
            fill(pipe)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        if attempt == 1 and any(isinstance(reply, NoScriptError) for reply in replies):
            for script in scripts:
                await redis.script_load(script.script)
            continue
        break
    return replies


async def count_entries(redis: aioredis.Redis, stream: str, start: str, end: str) -> int:
    """How many entries of ``stream`` lie between ``start`` and ``end`` (``XRANGE`` bounds:
    ``-``, ``+``, an id, or ``(id`` exclusive), read a page at a time: no big reply."""
    count = 0
    while True:
        page = cast(list[tuple[bytes, Any]], await redis.xrange(stream, start, end, COUNT_PAGE))
        count += len(page)
        if len(page) < COUNT_PAGE:
            return count
        start = f"({page[-1][0].decode()}"


COUNT_PAGE: Final = 10_000
