"""The ``softphone.v1`` wire frames (DESIGN.md section 3), one ``Struct`` each.

Frames from the network are strict: unknown ``type``, unknown fields or wrong types are refused.
Only an event's ``data`` is open (the log keeps what the softphone said); it is checked against
the contract by :mod:`relay.wire.contract`.

Beyond DESIGN.md: a client may send ``{"type":"ping"}`` and gets ``{"type":"pong"}``. Browsers
cannot see websocket-level pings, so this is how clientjs detects a dead relay.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

import msgspec

from relay.errors import BadFrame
from relay.wire.contract import whole

SUBPROTOCOL: Final = "softphone.v1"

StreamId = Annotated[str, msgspec.Meta(pattern=whole(r"[0-9]{1,20}-[0-9]{1,20}"))]
ClientId = Annotated[str, msgspec.Meta(pattern=whole(r"[A-Za-z0-9._:-]{1,128}"))]
Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]


class ClientFrame(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True):
    """Base of the frames a client sends."""


class Hello(ClientFrame, tag="hello"):
    """First frame of a session: who the client is and where its command stream stands."""

    token: Annotated[str, msgspec.Meta(min_length=1, max_length=8192)]
    lastCommandId: StreamId | None = None
    client: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    role: Literal["softphone", "connector"] = "softphone"
    """``connector``: the agent's Salesforce Voice connector (:mod:`relay.wire.connector`), a
    session beside the softphone's that receives the agent's feed and sends requests only."""


class EventFrame(ClientFrame, tag="event"):
    """A contract hook or CRM request; ``id`` is the idempotency key."""

    id: ClientId
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    at: Timestamp
    data: dict[str, Any] = msgspec.field(default_factory=dict)


class CommandAck(ClientFrame, tag="ack"):
    """The command ``id`` was handed to the softphone."""

    id: StreamId


class Refresh(ClientFrame, tag="refresh"):
    """A fresh token for the open session, sent before the current one expires."""

    token: Annotated[str, msgspec.Meta(min_length=1, max_length=8192)]


class Ping(ClientFrame, tag="ping"):
    """Application-level heartbeat from the client."""


class ServerFrame(msgspec.Struct, tag_field="type", kw_only=True):
    """Base of the frames the relay sends."""


class Welcome(ServerFrame, tag="welcome"):
    """The session is open; ``config`` is what the softphone needs at load."""

    sessionId: str
    agentId: str
    partnerId: str
    heartbeatSec: float
    config: dict[str, Any]
    recovered: bool = True
    expiresAt: int | None = None
    """When the session's token expires (Unix seconds): refresh it before then."""


class EventAck(ServerFrame, tag="ack"):
    """The event ``id`` is durably in the log at ``seq``."""

    id: str
    seq: str
    duplicate: bool = False


class IncomingCallAck(EventAck, tag="ack", kw_only=True):
    """The ack of an ``incomingCall`` with a caller number: ``searchTerms`` are the forms a CRM
    may hold that number in (:func:`relay.wire.phone.search_forms`), for the screen pop."""

    searchTerms: list[str]


class Nack(ServerFrame, tag="nack"):
    """The event (or frame) was refused; ``code`` says why. The connection stays open."""

    id: str | None
    code: str
    message: str


class CommandFrame(ServerFrame, tag="command"):
    """A command for the softphone; ``id`` is its position in the agent's command stream."""

    id: str
    name: str
    data: Any
    expiresAt: datetime


class ErrorFrame(ServerFrame, tag="error"):
    """Sent just before the relay closes the connection with the matching close code."""

    code: str
    message: str


class Pong(ServerFrame, tag="pong"):
    """Answer to a client ``ping``."""


class Refreshed(ServerFrame, tag="refreshed"):
    """The session now runs on the refreshed token, until ``expiresAt`` (Unix seconds)."""

    expiresAt: int


AnyClientFrame = Hello | EventFrame | CommandAck | Ping | Refresh

_decoder: Final[msgspec.json.Decoder[AnyClientFrame]] = msgspec.json.Decoder(AnyClientFrame)
_loose: Final = msgspec.json.Decoder(dict[str, Any])
_encoder: Final = msgspec.json.Encoder()


def decode_client_frame(message: str | bytes) -> AnyClientFrame:
    """Decode one client frame; raise :class:`BadFrame` saying precisely what is wrong, and
    nothing else, whatever the input."""
    if isinstance(message, bytes):
        raise BadFrame("binary frames are not accepted; send JSON text frames")
    try:
        return _decoder.decode(message)
    except msgspec.DecodeError as error:
        raise BadFrame(str(error)) from None
    except RecursionError:
        raise BadFrame("the frame is nested too deeply") from None


def frame_event_id(message: str | bytes) -> str | None:
    """Best effort: the ``id`` of an event frame that failed to decode, for its nack; None
    whatever is wrong with the frame (not JSON, not UTF-8, nested too deeply)."""
    try:
        raw = _loose.decode(message)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return None
    event_id = raw.get("id")
    if raw.get("type") == "event" and isinstance(event_id, str) and len(event_id) <= 128:
        return event_id
    return None


def encode_frame(frame: ServerFrame) -> bytes:
    """Encode a relay frame as JSON bytes (sent as a text frame)."""
    return _encoder.encode(frame)
