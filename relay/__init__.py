"""The relay service, at the bottom of the dependency order: it imports no other package of ours.

Its rooms, each with one job::

    wire/     the softphone contract as msgspec types, the ``softphone.v1`` frames, the session
              state machine, agent tokens, E.164 numbers (pure)
    log/      the log's Redis model every package shares: key names, stream ids, the stored
              envelope, the event log (append with dedupe), command streams, request states,
              agent records, and ``clients`` (Redis clients, script helpers, ``LOG_ERRORS``)
    server/   the asyncio shell: the relay process, its connections (websockets' sans-I/O
              protocol), sessions, the appender, command delivery, the GET endpoints, metrics
    control/  the control API: click-to-dial and presence requests from server-side callers

``errors`` (the error tree and its wire codes and HTTP statuses), ``backoff`` and ``settings``
(the relay's settings as a type, and the parsing of their text) serve every room. ``wire`` and
``log`` never import ``server`` or ``control``, and neither of those imports the other.
"""
