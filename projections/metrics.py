"""The projections' Prometheus metrics: worker batches and outcomes; the log's lag, pending entries
and dead letters per group (the Salesforce sink's are in ``projections.salesforce.metrics``).

They live on a registry the caller chooses: ``up`` puts them on the relay's, so one
``/metrics`` shows everything; ``project`` serves its own.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class WorkerMetrics:
    """What the projection workers do: batches, their size and time, entries by outcome."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.batch_size = Histogram(
            "softphone_relay_projector_batch_size",
            "Entries per batch a worker handled, by consumer group.",
            ["group"],
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
            registry=r,
        )
        self.batch_seconds = Histogram(
            "softphone_relay_projector_batch_seconds",
            "Time to handle and settle one batch, by consumer group.",
            ["group"],
            registry=r,
        )
        self.entries = Counter(
            "softphone_relay_projector_entries",
            "Log entries settled, by group and outcome (done, retry, pause, reject).",
            ["group", "outcome"],
            registry=r,
        )


class LogGauges:
    """The log as the groups see it, refreshed every few seconds from Redis."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.length = Gauge(
            "softphone_relay_log_entries",
            "Entries in each shard of the log.",
            ["stream"],
            registry=r,
        )
        self.lag = Gauge(
            "softphone_relay_projector_lag",
            "Entries of a shard not yet delivered to a consumer group.",
            ["group", "stream"],
            registry=r,
        )
        self.pending = Gauge(
            "softphone_relay_projector_pending",
            "Entries delivered to a consumer group but not yet acknowledged.",
            ["group", "stream"],
            registry=r,
        )
        self.dead_letters = Gauge(
            "softphone_relay_dead_letters",
            "Entries a consumer group gave up on (its dead-letter stream's length).",
            ["group"],
            registry=r,
        )
