"""The Salesforce sink's Prometheus metrics: requests, errors by code, records by outcome,
logins, and the org's API usage as last seen in ``Sforce-Limit-Info``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


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
