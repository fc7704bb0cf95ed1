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

    from projections.calls.projection import RecordSink
    from projections.outcomes import Projection
    from projections.salesforce.connect import SalesforceConnection
    from projections.settings import ProjectionSettings
    from projections.worker import WorkerSettings
    from relay.privacy.personal import PersonalData
    from relay.settings import RelaySettings


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
    reads_itself: bool = False
    """The group's ``build`` returns a :class:`Runner` that reads the log itself (the
    archiver writes spans of a shard, not batches); otherwise a ``Projection`` that the
    generic worker runs."""
    needs: str | None = None
    """The setting (a ``Settings`` field) without which the group is left out when no group
    is named; naming it anyway stops with that setting's name."""
    uses_salesforce: bool = False
    """The group writes through the org's REST API: the command line reads the
    ``SOFTPHONE_RELAY_SF_*`` settings when it runs."""
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
        "projections.calls.projection",
        "call records written to Salesforce",
        waits_for_batches=True,
        batch_size=CALLS_BATCH_SIZE,
        uses_salesforce=True,
    ),
    ProjectionGroup(
        "archive",
        "projections.archive.archiver",
        "every entry into compressed segments in the archive (SOFTPHONE_RELAY_ARCHIVE_URL)",
        reads_itself=True,
        needs="archive_url",
    ),
    ProjectionGroup(
        "dispatch",
        "projections.dispatch.projection",
        "click-to-dial and presence requests into commands",
        claim_idle=LATENCY_CRITICAL_CLAIM_IDLE,
    ),
    ProjectionGroup(
        "presence",
        "projections.presence.projection",
        "agent presence, echoes suppressed",
        claim_idle=LATENCY_CRITICAL_CLAIM_IDLE,
    ),
    ProjectionGroup(
        "voicecalls",
        "projections.voice.projection",
        "inbound calls as VoiceCalls in Salesforce Voice (SOFTPHONE_RELAY_TELEPHONY_URL)",
        claim_idle=LATENCY_CRITICAL_CLAIM_IDLE,
        needs="telephony_url",
        uses_salesforce=True,
    ),
)
NAMES: Final = tuple(group.name for group in GROUPS)
DEAD_LETTER_GROUPS: Final = tuple(group.name for group in GROUPS if not group.reads_itself)
"""The groups run by the generic worker, the ones with dead letters (the archiver keeps
every entry as it is and never gives one up)."""


class Runner(Protocol):
    """What runs a group: the generic worker, or a group's own loop."""

    @property
    def group(self) -> str:
        """The consumer group."""

    async def run(self) -> None:
        """Work until :meth:`stop`."""

    def stop(self) -> None:
        """Finish what is in hand, then return from :meth:`run`."""


class BuildContext(Protocol):
    """What a projection's ``build`` may use; the command line provides it."""

    @property
    def redis(self) -> aioredis.Redis:
        """The log's client."""

    @property
    def relay_settings(self) -> RelaySettings:
        """What every package shares (shards, partners, command TTL, ...)."""

    @property
    def projection_settings(self) -> ProjectionSettings:
        """The projections' own settings (the archive, retention, ...)."""

    @property
    def worker_settings(self) -> WorkerSettings:
        """How this group's worker reads (claim idle time, batch wait)."""

    @property
    def call_sink(self) -> Callable[[], Awaitable[RecordSink]]:
        """Opens where call records are written (the org, logged in; or the stand-in)."""

    @property
    def salesforce(self) -> Callable[[], Awaitable[SalesforceConnection]]:
        """Opens the org's REST API (logged in; or the stand-in)."""

    @property
    def personal(self) -> PersonalData | None:
        """Seals and opens callers' personal data, when data keys are configured."""


Builder = Callable[[BuildContext], Awaitable["Projection | Runner"]]


def default_groups(settings: ProjectionSettings) -> list[str]:
    """The groups ``project`` and ``up`` run when none is named: each whose setting is set."""
    return [g.name for g in GROUPS if g.needs is None or getattr(settings, g.needs) is not None]


def group(name: str) -> ProjectionGroup:
    """The group called ``name``; KeyError if there is none."""
    for found in GROUPS:
        if found.name == name:
            return found
    raise KeyError(name)


def builder(found: ProjectionGroup) -> Builder:
    """The group's ``build`` function (its module imported now)."""
    return cast(Builder, importlib.import_module(found.module).build)
