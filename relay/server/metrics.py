"""The relay's Prometheus metrics, on a registry of their own per relay instance."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class RelayMetrics:
    """Connections, events in, acks and their latency, nacks by code, commands delivered."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge(
            "softphone_relay_connections", "Open websocket sessions.", registry=r
        )
        self.events_received = Counter(
            "softphone_relay_events_received", "Event frames received.", registry=r
        )
        self.events_acked = Counter(
            "softphone_relay_events_acked",
            "Events acked after the durable append.",
            ["duplicate"],
            registry=r,
        )
        self.ack_latency = Histogram(
            "softphone_relay_ack_latency_seconds",
            "From receiving an event frame to sending its ack.",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.nacks = Counter(
            "softphone_relay_nacks", "Refused frames, by nack code.", ["code"], registry=r
        )
        self.closes = Counter(
            "softphone_relay_closes",
            "Sessions closed by the relay, by close code.",
            ["code"],
            registry=r,
        )
        self.commands_delivered = Counter(
            "softphone_relay_commands_delivered",
            "Command frames sent to softphones.",
            ["name"],
            registry=r,
        )
        self.commands_expired = Counter(
            "softphone_relay_commands_expired",
            "Commands not delivered because they had expired.",
            registry=r,
        )
        self.append_batch_size = Histogram(
            "softphone_relay_append_batch_size",
            "Events per Redis append round trip.",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
            registry=r,
        )

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
