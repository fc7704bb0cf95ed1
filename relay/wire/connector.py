"""What a Salesforce Voice connector's session receives and may send (README, "Salesforce Voice").

A connector is the agent's second client, inside Salesforce: it never replaces the softphone's
session nor is replaced by it (its commands are a mailbox of their own,
:func:`relay.log.keys.connector_mailbox`). It receives the agent's *feed*: one item per logged
hook that Salesforce must hear of, written by the ``voicecalls`` group once the VoiceCall
exists (so an inbound call's item carries its id), and delivered like commands (in order,
acked, resumed, never after it expires). It sends requests only (click-to-dial, presence): the
calls themselves are the softphone's to report.

Feed items, by name:

- ``call``: a call's state changed (:class:`CallFeedItem`), ``ringing`` (an inbound call
  offered, or an outbound call dialled), ``connected`` or ``ended``.
- ``status``: the softphone's presence changed (:class:`StatusFeedItem`).
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec

from relay.errors import InvalidEvent, UnknownEvent
from relay.wire.contract import E164, REQUESTS, CallerId, Id

CONNECTOR_EVENTS: Final = frozenset(REQUESTS)
"""What a connector session may send: requests, never a contract hook."""


class CallFeedItem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A call of the agent changed state (Salesforce's ``PhoneCall``, from the contract's
    hooks: ``incomingCall``, ``outboundCallInitiated``, ``callAccepted``, ``callRejected``,
    ``callEnded``)."""

    conversationId: Id
    """The call's id in Salesforce (``PhoneCall.callId``, the VoiceCall's ``VendorCallKey``)."""
    callType: Literal["Inbound", "Outbound"]
    state: Literal["ringing", "connected", "ended"]
    callerANI: CallerId | None = None
    """An inbound call's caller (sealed in the mailbox like every personal field)."""
    dialledTo: E164 | None = None
    """An outbound call's dialled number (sealed in the mailbox)."""
    voiceCallId: Annotated[str, msgspec.Meta(min_length=15, max_length=18)] | None = None
    """The VoiceCall the ``voicecalls`` group created for an inbound call (None if it could
    not: Salesforce then creates it from the connector's event)."""
    reason: Literal["ended", "declined", "missed"] | None = None
    """Why an ended call ended: completed, refused by the agent (``callRejected`` active) or
    not answered (passive)."""
    afterCallWork: bool = False
    """The agent is in after-call work (a completed call's end)."""


class StatusFeedItem(msgspec.Struct, kw_only=True):
    """The softphone's presence is now ``softphoneId`` (``statusChanged``)."""

    softphoneId: Id


FEED: Final[dict[str, type[msgspec.Struct]]] = {
    "call": CallFeedItem,
    "status": StatusFeedItem,
}
"""The feed items a connector receives, by name."""


def validate_feed_item(name: str, data: Any) -> Any:
    """Check a feed item; return it as plain JSON-ready data. Raises :class:`InvalidEvent`
    (or :class:`UnknownEvent`) naming the item and the field."""
    model = FEED.get(name)
    if model is None:
        raise UnknownEvent(f"unknown feed item {name!r}; expected one of {', '.join(FEED)}")
    try:
        return msgspec.to_builtins(msgspec.convert(data, model))
    except msgspec.ValidationError as error:
        raise InvalidEvent(f"{name}: {error}") from None
