"""The softphone.v1 relay: contract types, wire protocol, the durable event log, delivery."""
