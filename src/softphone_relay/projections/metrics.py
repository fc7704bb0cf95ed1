"""The projections' Prometheus metrics: Salesforce requests, errors, limits, records written;
worker batches and outcomes; the log's lag, pending entries and dead letters per group.

They live on a registry the caller chooses: ``up`` puts them on the relay's, so one
``/metrics`` shows everything; ``project`` serves its own.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class SalesforceMetrics:
    """What the Salesforce sink did and what the org reported."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "softphone_relay_salesforce_requests",
            "Salesforce REST requests, by operation (query, search, create, update, upsert).",
            ["operation"],
            registry=r,
        )
        self.errors = Counter(
            "softphone_relay_salesforce_errors",
            "Failed Salesforce requests, by Salesforce error code (or HTTP/transport error).",
            ["code"],
            registry=r,
        )
        self.records = Counter(
            "softphone_relay_salesforce_records",
            "Call records written, by outcome (done, retry, pause, reject).",
            ["outcome"],
            registry=r,
        )
        self.logins = Counter(
            "softphone_relay_salesforce_logins",
            "Logins to Salesforce after a session expired.",
            registry=r,
        )
        self.api_used = Gauge(
            "softphone_relay_salesforce_api_used",
            "The org's API requests in the last 24 h, as last reported (Sforce-Limit-Info).",
            registry=r,
        )
        self.api_max = Gauge(
            "softphone_relay_salesforce_api_max",
            "The org's daily API request limit, as last reported.",
            registry=r,
        )
        self.request_delay = Gauge(
            "softphone_relay_salesforce_request_delay_seconds",
            "The wait before each request while the org nears its daily limit.",
            registry=r,
        )


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
