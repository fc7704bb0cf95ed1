"""What a request becomes: a command, or a refusal with its reason (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from projections.dispatch.fold import Enqueue, Refuse, decide
from relay.log.envelope import Envelope
from relay.settings import Partner
from tests.helpers import PARTNER

RECEIVED = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
NOW = RECEIVED + timedelta(seconds=1)
ACME = Partner(
    businessSegmentId="seg-1",
    channelOriginId="origin-1",
    dialFrom="+18449401117",
    region="US",
)


def request(name: str, **data: Any) -> Envelope:
    return Envelope(
        id="req-1",
        name=name,
        agentId="agent-1",
        partnerId=PARTNER,
        conversationId=None,
        at=RECEIVED,
        receivedAt=RECEIVED,
        sessionId="api",
        data={"partnerId": PARTNER, **data},
    )


def test_click_to_dial_becomes_a_complete_start_call() -> None:
    """The number in E.164, the partner's config and caller id, a Traveler by default."""
    decision = decide(
        request("startCallRequested", dialTo="(888) 397-3342"),
        ACME,
        online=True,
        now=NOW,
        ttl=30,
    )
    assert decision == Enqueue(
        name="start_call",
        data={
            "partnerId": PARTNER,
            "businessSegmentId": "seg-1",
            "channelOriginId": "origin-1",
            "dialTo": "+18883973342",
            "participantType": "Traveler",
            "dialFrom": "+18449401117",
        },
        expires_at=RECEIVED + timedelta(seconds=30),
    )


def test_the_request_can_choose_caller_id_and_participant() -> None:
    """dialFrom and participantType given in the request win over the defaults."""
    decision = decide(
        request(
            "startCallRequested",
            dialTo="+442079460958",
            dialFrom="+18005550100",
            participantType="Supplier",
        ),
        ACME,
        online=True,
        now=NOW,
        ttl=30,
    )
    assert isinstance(decision, Enqueue)
    assert decision.data["dialFrom"] == "+18005550100"
    assert decision.data["participantType"] == "Supplier"


def test_what_is_not_a_phone_number_fails_with_the_reason() -> None:
    """No command for 'call me maybe'; the reason names the field and the problem."""
    decision = decide(
        request("startCallRequested", dialTo="call me maybe"), ACME, online=True, now=NOW, ttl=30
    )
    assert decision == Refuse(
        state="failed",
        reason="dialTo: 'call me maybe' is not a phone number: it has no digits to dial",
    )


def test_an_offline_agent_fails_at_once() -> None:
    """A call must not wait for the agent to log in and then ring."""
    decision = decide(
        request("startCallRequested", dialTo="+18883973342"), ACME, online=False, now=NOW, ttl=30
    )
    assert decision == Refuse(
        state="failed", reason="agent 'agent-1' has no live softphone session"
    )


def test_a_request_older_than_its_expiry_is_never_dispatched() -> None:
    """Replayed a month later, or stuck in a backlog: expired, not dialled."""
    late = RECEIVED + timedelta(seconds=30)
    decision = decide(
        request("startCallRequested", dialTo="+18883973342"), ACME, online=True, now=late, ttl=30
    )
    assert isinstance(decision, Refuse) and decision.state == "expired"


def test_the_command_expires_when_the_request_does() -> None:
    """Dispatched 10 s after receipt with a 30 s expiry: the command has 20 s left."""
    decision = decide(
        request("presenceQueryRequested"),
        None,
        online=True,
        now=RECEIVED + timedelta(seconds=10),
        ttl=30,
    )
    assert decision == Enqueue(
        name="get_presence", data=None, expires_at=RECEIVED + timedelta(seconds=30)
    )


def test_a_presence_update_is_expected_back() -> None:
    """update_presence(X) records X, so the softphone's confirmation is known as an echo."""
    decision = decide(
        request("presenceUpdateRequested", softphoneId="available"),
        None,
        online=True,
        now=NOW,
        ttl=30,
    )
    assert isinstance(decision, Enqueue)
    assert (decision.name, decision.data, decision.expect_presence) == (
        "update_presence",
        {"softphoneId": "available"},
        "available",
    )


def test_click_to_dial_needs_the_partner_config() -> None:
    """Without businessSegmentId/channelOriginId the softphone could not dial: say so."""
    decision = decide(
        request("startCallRequested", dialTo="+18883973342"), None, online=True, now=NOW, ttl=30
    )
    assert isinstance(decision, Refuse) and "SOFTPHONE_RELAY_PARTNERS_FILE" in decision.reason
