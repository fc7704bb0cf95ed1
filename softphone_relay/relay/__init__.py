"""The relay core: the softphone contract and the ``softphone.v1`` wire protocol (pure modules),
the websocket shell that authenticates agents and appends their events to the durable log, and
the command streams that carry commands back to whichever relay holds an agent's socket.

Never imports another package of ``softphone_relay``.
"""
