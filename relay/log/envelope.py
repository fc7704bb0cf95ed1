"""The log's record: an event as the relay stores it in field ``e`` of ``sp:events:{S}``
(DESIGN.md section 4). Pure; read by the relay, the projections and the operator tools alike.

Stored as JSON, readable with ``redis-cli``, without what the entry already says elsewhere
(``"v": 2``): ``receivedAt`` is the stream id's time (the relay appends within milliseconds
of receiving), and ``data``'s copies of the envelope's ``partnerId`` and ``conversationId``
are left out where they are equal (``"k"``: 1 for ``partnerId``, 2 for ``conversationId``,
3 for both) and put back on reading. That is 120 to 150 bytes less per call event, about a
fifth of its Redis memory. Entries written before (no ``v``) are read as they are.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

import msgspec


class Envelope(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An event as the log stores it: what the softphone said, stamped by the relay with the
    agent, partner and session it came from and when it was received."""

    id: str
    name: str
    agentId: str
    partnerId: str
    conversationId: str | None
    at: datetime
    receivedAt: datetime
    sessionId: str
    data: dict[str, Any]
    salesforceUserId: str | None = None
    """The agent's Salesforce User id, when the agent's token names one."""


STORED_VERSION: Final = 2
_IN_DATA: Final = (("partnerId", 1), ("conversationId", 2))


class StoredEnvelope(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An :class:`Envelope` as field ``e`` holds it (either format)."""

    v: int = 1
    id: str
    name: str
    agentId: str
    partnerId: str
    conversationId: str | None
    at: datetime
    receivedAt: datetime | None = None
    """Stored by version 1 only; version 2 reads it from the stream id."""
    sessionId: str
    data: dict[str, Any]
    salesforceUserId: str | None = None
    k: int = 0
    """Which of ``data``'s keys were left out as equal to the envelope's (version 2)."""


_stored_encoder: Final = msgspec.json.Encoder()
_stored_decoder: Final = msgspec.json.Decoder(StoredEnvelope)


def encode_stored(envelope: Envelope) -> bytes:
    """The JSON stored in an entry's field ``e`` (version 2): built field by field, as this
    runs once per event on the relay's hot path."""
    data = envelope.data
    left_out = 0
    if data.get("partnerId") == envelope.partnerId:
        left_out = 1
    if "conversationId" in data and data["conversationId"] == envelope.conversationId:
        left_out |= 2
    if left_out:
        data = dict(data)
        for key, bit in _IN_DATA:
            if left_out & bit:
                del data[key]
    return _stored_encoder.encode(
        StoredEnvelope(
            v=STORED_VERSION,
            k=left_out,
            id=envelope.id,
            name=envelope.name,
            agentId=envelope.agentId,
            partnerId=envelope.partnerId,
            conversationId=envelope.conversationId,
            at=envelope.at,
            sessionId=envelope.sessionId,
            data=data,
            salesforceUserId=envelope.salesforceUserId,
        )
    )


def decode_stored(raw: bytes, entry_id: str) -> Envelope:
    """The envelope in field ``e`` of entry ``entry_id``; ``msgspec.DecodeError`` (or its
    ``ValidationError``) when it is not one."""
    fields = msgspec.structs.asdict(_stored_decoder.decode(raw))
    del fields["v"]
    left_out = fields.pop("k")
    if fields["receivedAt"] is None:
        ms = int(entry_id.partition("-")[0])
        fields["receivedAt"] = datetime.fromtimestamp(ms / 1000, UTC)
    if left_out:
        restored = {key: fields[key] for key, bit in _IN_DATA if left_out & bit}
        fields["data"] = {**restored, **fields["data"]}
    return Envelope(**fields)
