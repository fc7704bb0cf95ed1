"""The event log's Redis model, shared by the relay, the projections and the operator tools.

Pure: ``keys`` (every key and channel), ``streams`` (stream ids), ``envelope`` (what an entry
stores), ``resume``, ``delivery_rules`` and ``request_rules`` (command resume, delivery and
expiry, request states), ``agent_records``. On Redis: ``clients`` (building clients, pipelined
scripts, ``LOG_ERRORS``), ``event_log`` (append with dedupe), ``commands`` (command streams),
``requests`` (request statuses) and ``agents`` (agent records and presence).
"""
