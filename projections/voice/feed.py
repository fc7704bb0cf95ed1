"""What the agent's Salesforce Voice connector hears of a logged event (its feed item), and how
a call's kind is remembered between events. Pure: the ``voicecalls`` group stores the item
(:mod:`relay.wire.connector`) once the VoiceCall exists.

The contract's hooks become the connector's ``call`` items as Salesforce's desk-phone model
needs them (README, "Salesforce Voice"): ``incomingCall`` rings an inbound call (with its
VoiceCall's id), ``outboundCallInitiated`` rings an outbound one, ``callAccepted`` connects,
``callRejected`` ends as declined (the agent refused it) or missed (it rang out), and
``callEnded`` ends a completed call and puts the agent in after-call work. ``statusChanged``
becomes a ``status`` item; ``callNotesSubmitted`` is for the VoiceCall's fields alone.
"""

from __future__ import annotations

from typing import Any, Final

from relay.log.envelope import Envelope

LIFETIMES: Final = {"ringing": 60.0, "connected": 300.0, "ended": 1800.0, "status": 300.0}
"""How long after its event a feed item may still reach the connector, by the call's state (or
``status``): a ring a minute old is over (a late worker must not ring a ghost in Omni), while
a late end still closes the call there."""
CALL_TYPE_FIELD: Final = "type"
"""The state hash's field holding a call's kind (``Inbound`` or ``Outbound``)."""
FED_EVENTS: Final = frozenset(
    {"incomingCall", "outboundCallInitiated", "callAccepted", "callRejected", "callEnded"}
)
"""The call hooks that become ``call`` items."""


def call_type(envelope: Envelope, known: str | None) -> str | None:
    """The call's kind after this event: set by the event that starts it, else as known."""
    if envelope.name == "incomingCall":
        return "Inbound"
    if envelope.name == "outboundCallInitiated":
        return "Outbound"
    return known


def feed_item(
    envelope: Envelope, kind: str | None, voice_call_id: str | None
) -> tuple[str, dict[str, Any]] | None:
    """The feed item of one event (name and data), or None when the connector need not hear
    of it. ``kind`` is the call's kind (:func:`call_type`); a call of unknown kind (its start
    was never logged) is left out, as Salesforce has nothing to attach it to."""
    data = envelope.data
    if envelope.name == "statusChanged":
        return "status", {"softphoneId": data["softphoneId"]}
    if envelope.name not in FED_EVENTS or kind is None or not envelope.conversationId:
        return None
    item: dict[str, Any] = {"conversationId": envelope.conversationId, "callType": kind}
    match envelope.name:
        case "incomingCall":
            item["state"] = "ringing"
            if data.get("callerANI"):
                item["callerANI"] = data["callerANI"]
            if voice_call_id:
                item["voiceCallId"] = voice_call_id
        case "outboundCallInitiated":
            item["state"] = "ringing"
            if data.get("dialledTo"):
                item["dialledTo"] = data["dialledTo"]
        case "callAccepted":
            item["state"] = "connected"
        case "callRejected":
            item["state"] = "ended"
            item["reason"] = "declined" if data.get("reason") == "active" else "missed"
        case _:  # callEnded
            item["state"] = "ended"
            item["reason"] = "ended"
            item["afterCallWork"] = True
    return "call", item


def lifetime(name: str, data: dict[str, Any]) -> float:
    """How long after its event the feed item ``name`` (``data``) is worth delivering."""
    return LIFETIMES["status" if name == "status" else data["state"]]
