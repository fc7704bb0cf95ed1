"""The projection groups: the one list of what ``project`` can run. Pure.

Each group names the module that builds its projection (``build(context)``), imported only
when the group runs, so ``project --group presence`` never loads the Salesforce integration.
A new projection is one module with a ``build`` function and one line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final, Protocol, cast

import msgspec

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from softphone_relay.projections.calls.projection import RecordSink
    from softphone_relay.projections.outcomes import Projection
    from softphone_relay.projections.worker import WorkerSettings
    from softphone_relay.relay.settings import Settings


class ProjectionGroup(msgspec.Struct, frozen=True):
    """A consumer group and how its projection is built."""

    name: str
    module: str
    """The module whose ``build(context)`` makes the projection."""
    summary: str
    waits_for_batches: bool = False
    """Whether batches wait ``SOFTPHONE_RELAY_BATCH_WAIT`` to fill (fewer, larger writes);
    latency-critical groups never wait."""
    batch_size: int = 200
    """Entries read per batch at most."""
    claim_idle: float | None = None
    """Seconds an entry may stay unacked at a consumer before another worker takes it over;
    None: ``SOFTPHONE_RELAY_CLAIM_IDLE``. Latency-critical groups take a dead worker's entries
    over at once: their effects are idempotent and take milliseconds, so taking over a slow
    but live worker's entry costs nothing, while waiting would let a click-to-dial expire."""


CALLS_BATCH_SIZE: Final = 2_000
"""Entries per calls batch at most: a call is about five events, so a full batch is about 400
calls, two full sObject Collections requests, and its lookup and caller search are shared by
all of them (``bench/calls.py``: 17.6 Salesforce requests per 1,000 calls; a batch of 200
entries, 40 calls, costs about 75)."""

LATENCY_CRITICAL_CLAIM_IDLE: Final = 1.0
"""Claim idle time of the groups a person waits on (a click-to-dial, a presence change)."""

GROUPS: Final = (
    ProjectionGroup(
        "calls",
        "softphone_relay.projections.calls.projection",
        "call records written to Salesforce",
        waits_for_batches=True,
        batch_size=CALLS_BATCH_SIZE,
    ),
    ProjectionGroup(
        "dispatch",
        "softphone_relay.projections.dispatch.projection",
        "click-to-dial and presence requests into commands",
        claim_idle=LATENCY_CRITICAL_CLAIM_IDLE,
    ),
    ProjectionGroup(
        "presence",
        "softphone_relay.projections.presence.projection",
        "agent presence, echoes suppressed",
        claim_idle=LATENCY_CRITICAL_CLAIM_IDLE,
    ),
)
NAMES: Final = tuple(group.name for group in GROUPS)


class BuildContext(Protocol):
    """What a projection's ``build`` may use; the command line provides it."""

    @property
    def redis(self) -> aioredis.Redis:
        """The log's client."""

    @property
    def settings(self) -> Settings:
        """The relay settings (shards, partners, command TTL, ...)."""

    @property
    def worker_settings(self) -> WorkerSettings:
        """How this group's worker reads (claim idle time, batch wait)."""

    @property
    def call_sink(self) -> Callable[[], Awaitable[RecordSink]]:
        """Opens where call records are written (the org, logged in; or the stand-in)."""


Builder = Callable[[BuildContext], Awaitable["Projection"]]


def group(name: str) -> ProjectionGroup:
    """The group called ``name``; KeyError if there is none."""
    for found in GROUPS:
        if found.name == name:
            return found
    raise KeyError(name)


def builder(found: ProjectionGroup) -> Builder:
    """The group's ``build`` function (its module imported now)."""
    return cast(Builder, importlib.import_module(found.module).build)
