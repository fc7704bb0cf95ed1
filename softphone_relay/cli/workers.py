"""``softphone-relay project``: projection workers, built from the group registry; and how
``up`` runs the same workers beside its relay.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, start_http_server

from projections import registry
from projections.archive.groups import GROUP as ARCHIVE_GROUP
from projections.archive.groups import create_groups as create_archive_groups
from projections.metrics import LogGauges, WorkerMetrics
from projections.settings import ProjectionSettings
from projections.worker import Worker, WorkerSettings
from relay.errors import ConfigError, reason
from relay.log import clients
from relay.privacy.personal import PersonalData, personal_data
from relay.settings import RelaySettings
from softphone_relay.cli.runtime import stop_on_signals
from softphone_relay.ops.retention import keep_trimmed
from softphone_relay.ops.status import watch as watch_log
from softphone_relay.settings import Settings, settings_from_env

if TYPE_CHECKING:
    from projections.calls.projection import RecordSink
    from projections.outcomes import Projection
    from projections.salesforce.connect import SalesforceConnection, SalesforceSettings

log = logging.getLogger(__name__)


def worker_settings(settings: Settings, group: registry.ProjectionGroup) -> WorkerSettings:
    """How ``group``'s worker reads; only groups that wait for batches wait."""
    return WorkerSettings(
        shards=settings.relay.shards,
        batch_size=group.batch_size,
        batch_wait_ms=int(settings.projections.batch_wait * 1000) if group.waits_for_batches else 0,
        claim_idle_ms=int((group.claim_idle or settings.projections.claim_idle) * 1000),
    )


@dataclass(frozen=True, slots=True)
class GroupContext:
    """What one group's ``build`` gets (the registry's ``BuildContext``)."""

    redis: aioredis.Redis
    relay_settings: RelaySettings
    projection_settings: ProjectionSettings
    worker_settings: WorkerSettings
    call_sink: Callable[[], Awaitable[RecordSink]]
    salesforce: Callable[[], Awaitable[SalesforceConnection]]
    personal: PersonalData | None = None


class Workers:
    """The workers of some groups, their chores, and what they hold open (the org's session)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        settings: Settings,
        metrics_registry: CollectorRegistry,
        salesforce: SalesforceSettings | None,
    ) -> None:
        self.redis = redis
        self.settings = settings
        self._metrics_registry = metrics_registry
        self._salesforce = salesforce
        self.connection: SalesforceConnection | None = None

    async def call_sink(self) -> RecordSink:
        """The Salesforce sink, logged in (a refused login stops here, clearly)."""
        from projections.salesforce.metrics import SalesforceMetrics
        from projections.salesforce.sink import SalesforceSink

        connection = await self.salesforce_connection()
        assert self._salesforce is not None
        metrics = SalesforceMetrics(self._metrics_registry)
        return SalesforceSink(connection, self._salesforce.mapping, metrics=metrics)

    async def salesforce_connection(self) -> SalesforceConnection:
        """The org's REST API, logged in (a refused login stops here, clearly)."""
        from projections.salesforce.connect import SalesforceConnection

        if self._salesforce is None:
            raise ConfigError(
                "SOFTPHONE_RELAY_SF_INSTANCE_URL",
                "the calls and voicecalls groups need a Salesforce org: JWT bearer (SF_USERNAME, "
                "SF_CONSUMER_KEY, SF_PRIVATE_KEY_FILE), client credentials, or a session",
            )
        self.connection = SalesforceConnection(self._salesforce)
        try:
            await asyncio.to_thread(self.connection.client)
            log.info("event=salesforce_connected flow=%r", self.connection.flow)
        except OSError as error:  # requests' errors are OSErrors
            # Unreachable is not refused: the worker starts and pauses until the org answers.
            log.warning(
                "event=salesforce_unreachable flow=%r error=%r", self.connection.flow, str(error)
            )
        return self.connection

    async def build(self, groups: Sequence[str]) -> list[registry.Runner]:
        """One worker per group named, in the order given. With an archive configured, its
        group is created on every shard first, whichever groups run here, so that no
        retention pass (here or elsewhere) trims what the archive has not stored."""
        if self.settings.projections.archive_url is not None:
            created = await create_archive_groups(self.redis, self.settings.relay.shards)
            if created:
                log.info("event=archive_group_created streams=%s", ",".join(created))
        metrics = WorkerMetrics(self._metrics_registry)
        personal = personal_data(self.redis, self.settings.relay)
        if personal is not None:
            await personal.start()
        workers: list[registry.Runner] = []
        for name in groups:
            group = registry.group(name)
            reads = worker_settings(self.settings, group)
            context = GroupContext(
                self.redis,
                self.settings.relay,
                self.settings.projections,
                reads,
                self.call_sink,
                self.salesforce_connection,
                personal,
            )
            built = await registry.builder(group)(context)
            if group.reads_itself:
                workers.append(cast(registry.Runner, built))
            else:
                projection = cast("Projection", built)
                workers.append(
                    Worker(self.redis, projection, reads, metrics=metrics, personal=personal)
                )
        return workers

    def chores(self, stop: asyncio.Event) -> list[Coroutine[Any, Any, None]]:
        """What runs beside the workers: the log gauges, picklist refreshes (with ``calls``),
        and the retention if one is set."""
        chores = [
            watch_log(
                self.redis, self.settings.relay.shards, LogGauges(self._metrics_registry), stop
            )
        ]
        if self.connection is not None:
            from projections.salesforce.picklists import DispositionRefresher

            refresher = DispositionRefresher(
                self.connection,
                self.redis,
                self.settings.relay.partners,
                interval=self.settings.projections.disposition_refresh,
            )
            chores.append(refresher.run(refresher.interval, stop))
        if self.settings.projections.retention is not None:
            chores.append(
                keep_trimmed(
                    self.redis,
                    self.settings.relay.shards,
                    self.settings.projections.retention,
                    stop,
                    required=self._required_groups(),
                )
            )
        return chores

    def _required_groups(self) -> frozenset[str]:
        """The groups that must exist before the log may be trimmed: the archive's, if any."""
        return frozenset({ARCHIVE_GROUP}) if self.settings.projections.archive_url else frozenset()

    def close(self) -> None:
        """Close the org's session, if one was opened."""
        if self.connection is not None:
            self.connection.close()


async def run_workers(
    workers: Sequence[registry.Runner],
    stop: asyncio.Event,
    chores: Sequence[Coroutine[Any, Any, None]] = (),
) -> None:
    """Run the workers until ``stop`` or a worker fails; each finishes the batch in hand.
    ``chores`` run beside them and end on ``stop``."""
    running = [asyncio.create_task(w.run()) for w in workers]
    stopped = asyncio.create_task(stop.wait())
    background = [asyncio.create_task(chore) for chore in chores]
    await asyncio.wait([*running, stopped], return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    stop.set()
    for worker in workers:
        worker.stop()
    await asyncio.gather(*running, *background)


def parse_groups(text: str) -> list[str]:
    """``--group calls,presence`` as group names, each one the registry knows."""
    groups = [g.strip() for g in text.split(",") if g.strip()]
    unknown = sorted(set(groups) - set(registry.NAMES))
    if unknown or not groups:
        raise ConfigError(
            "--group",
            f"unknown group {', '.join(unknown) or '(none)'}; available: "
            f"{', '.join(registry.NAMES)}",
        )
    return groups


async def project(*, group: str | None, data_dir: str | None = None) -> int:
    """Run the workers of the ``--group`` groups until SIGINT or SIGTERM."""
    del data_dir  # project is configured by the environment only
    settings = settings_from_env(os.environ)
    if settings.relay.redis_url is None:
        raise ConfigError("SOFTPHONE_RELAY_REDIS_URL", "required by project")
    groups = (
        parse_groups(group) if group is not None else registry.default_groups(settings.projections)
    )
    salesforce = None
    if any(g.uses_salesforce for g in registry.GROUPS if g.name in groups):
        from projections.salesforce.connect import salesforce_settings_from_env

        salesforce = salesforce_settings_from_env(os.environ)
    stop = stop_on_signals()
    metrics_registry = CollectorRegistry()
    if port := settings.projections.worker_metrics_port:
        try:
            start_http_server(port, settings.relay.host, registry=metrics_registry)
        except OSError as error:
            raise ConfigError(
                "SOFTPHONE_RELAY_WORKER_METRICS_PORT",
                f"cannot listen on {settings.relay.host}:{port}: {reason(error)}",
            ) from None
    redis = clients.connect(settings.relay.redis_url)
    workers = Workers(redis, settings, metrics_registry, salesforce)
    try:
        running = await workers.build(groups)
        log.info("event=project_started groups=%s", ",".join(w.group for w in running))
        await run_workers(running, stop, workers.chores(stop))
    finally:
        workers.close()
        await redis.aclose()
    return 0
