"""The log's stored envelope (version 2): what the entry says elsewhere is left out, and put
back on reading; entries of the first format read as they are."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec

from relay.log.envelope import Envelope, decode_stored, encode_stored

PARTNER = "215fd887-39be-4935-981f-2670d6afeaa7"
ENTRY_ID = "1764121684565-3"
APPENDED = datetime(2025, 11, 26, 1, 48, 4, 565_000, tzinfo=UTC)


def event(**data: object) -> Envelope:
    conversation = str(uuid.uuid4())
    at = datetime(2025, 11, 26, 1, 48, 4, 123_456, tzinfo=UTC)
    return Envelope(
        id=str(uuid.uuid4()),
        name="callAccepted",
        agentId="agent-0042@example.com",
        partnerId=PARTNER,
        conversationId=conversation,
        at=at,
        receivedAt=APPENDED,
        sessionId=uuid.uuid4().hex,
        data={"partnerId": PARTNER, "conversationId": conversation, **data},
    )


def test_an_event_reads_back_as_it_was_received() -> None:
    """Every field, ``data`` included and in its order, and ``receivedAt`` from the id."""
    original = event(callerANI="+18883973342", recordingStatus="ON")
    back = decode_stored(encode_stored(original), ENTRY_ID)
    assert back == original
    assert list(back.data) == list(original.data)


def test_what_the_entry_says_elsewhere_is_not_stored() -> None:
    """No receivedAt, no copies of the envelope's partner and conversation in data."""
    original = event(callerANI="+18883973342")
    stored = msgspec.json.decode(encode_stored(original))
    assert stored["v"] == 2 and stored["k"] == 3
    assert "receivedAt" not in stored
    assert stored["data"] == {"callerANI": "+18883973342"}
    assert len(encode_stored(original)) <= len(msgspec.json.encode(original)) - 130


def test_data_that_differs_from_the_envelope_is_kept_as_sent() -> None:
    """A softphone naming another partner in data: stored and read back as it said."""
    original = event()
    original.data["partnerId"] = "another-partner"
    stored = msgspec.json.decode(encode_stored(original))
    assert stored["data"]["partnerId"] == "another-partner" and stored["k"] == 2
    assert decode_stored(encode_stored(original), ENTRY_ID) == original


def test_data_without_the_identity_keys_gets_none_on_reading() -> None:
    """statusChanged's data has no partnerId: none is added when it is read."""
    original = event()
    original.data.clear()
    original.data["softphoneId"] = "available"
    assert "k" not in msgspec.json.decode(encode_stored(original))
    assert decode_stored(encode_stored(original), ENTRY_ID).data == {"softphoneId": "available"}


def test_an_entry_of_the_first_format_reads_as_it_is() -> None:
    """Entries written before version 2 keep their own receivedAt and data."""
    original = event(callerANI="+18883973342")
    original.receivedAt = datetime(2025, 11, 26, 1, 48, 4, 999_999, tzinfo=UTC)
    assert decode_stored(msgspec.json.encode(original), ENTRY_ID) == original
