"""What a click-to-dial or presence request becomes: a command, or a clear refusal. Pure.

- ``startCallRequested`` → ``start_call``: the number normalised to E.164 (with the partner's
  default region), completed with the partner's ``partner_config`` (``businessSegmentId``,
  ``channelOriginId``) and its ``dialFrom`` default; ``participantType`` defaults to
  ``Traveler`` (the customer, in the contract's words).
- ``presenceUpdateRequested`` → ``update_presence`` (and the presence we now expect back, so
  the softphone's confirming ``statusChanged`` is known for an echo).
- ``presenceQueryRequested`` → ``get_presence``.

A command expires ``ttl`` after the relay received the request
(``relay.log.request_rules.expiry_of``): a request that comes out of the log later than that (a
replay, a backlog) is refused as expired instead of dialling. A request for an agent with no live
softphone session fails at once, rather than queueing a call that would ring minutes later when the
agent logs in.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from relay.log.envelope import Envelope
from relay.log.request_rules import expiry_of
from relay.settings import Partner
from relay.wire.phone import NotAPhoneNumber, to_e164


class Enqueue(msgspec.Struct, frozen=True, kw_only=True):
    """Send this command to the agent's softphone."""

    name: str
    data: Any
    expires_at: datetime
    expect_presence: str | None = None


class Refuse(msgspec.Struct, frozen=True, kw_only=True):
    """The request will not become a command; ``reason`` says why."""

    state: Literal["failed", "expired"]
    reason: str


Decision = Enqueue | Refuse


def decide(
    envelope: Envelope, partner: Partner | None, *, online: bool, now: datetime, ttl: float
) -> Decision:
    """The command a request becomes, or why it does not."""
    expires_at = expiry_of(envelope, ttl)
    if now >= expires_at:
        return Refuse(state="expired", reason="the request expired before it could be dispatched")
    if not online:
        return Refuse(
            state="failed",
            reason=f"agent {envelope.agentId!r} has no live softphone session",
        )
    data = envelope.data
    match envelope.name:
        case "startCallRequested":
            return _start_call(envelope, partner, expires_at)
        case "presenceUpdateRequested":
            status = str(data["softphoneId"])
            return Enqueue(
                name="update_presence",
                data={"softphoneId": status},
                expires_at=expires_at,
                expect_presence=status,
            )
        case "presenceQueryRequested":
            return Enqueue(name="get_presence", data=None, expires_at=expires_at)
    return Refuse(state="failed", reason=f"{envelope.name} is not a request")


def _start_call(envelope: Envelope, partner: Partner | None, expires_at: datetime) -> Decision:
    data = envelope.data
    if partner is None:
        return Refuse(
            state="failed",
            reason=(
                f"partner {envelope.partnerId!r} has no businessSegmentId/channelOriginId "
                "configured (SOFTPHONE_RELAY_PARTNERS_FILE)"
            ),
        )
    try:
        dial_to = to_e164(str(data["dialTo"]), partner.region)
    except NotAPhoneNumber as error:
        return Refuse(state="failed", reason=f"dialTo: {error}")
    command: dict[str, Any] = {
        "partnerId": envelope.partnerId,
        "businessSegmentId": partner.businessSegmentId,
        "channelOriginId": partner.channelOriginId,
        "dialTo": dial_to,
        "participantType": data.get("participantType") or "Traveler",
    }
    dial_from = data.get("dialFrom") or partner.dialFrom
    if dial_from:
        command["dialFrom"] = dial_from
    return Enqueue(name="start_call", data=command, expires_at=expires_at)
