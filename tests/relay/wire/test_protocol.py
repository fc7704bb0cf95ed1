"""The sans-I/O session: hello, admission, events, commands acks, rate limits; no sockets."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.errors import (
    AuthenticationFailed,
    BadHello,
    HelloTimeout,
    PartnerForbidden,
    SessionReplaced,
)
from relay.settings import RateLimit
from relay.wire.auth import LEEWAY_SECONDS, TokenVerifier, mint_token
from relay.wire.frames import Nack, Pong, Refreshed, encode_frame
from relay.wire.protocol import (
    Admit,
    Append,
    Close,
    CommandAcked,
    Ignore,
    Reply,
    Session,
    State,
)
from tests.helpers import OTHER_PARTNER, PARTNER, SECRET, call_data, make_settings, token

WALL = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
GENEROUS = RateLimit(1000.0, 1000)


def new_session(rate: RateLimit = GENEROUS) -> Session:
    return Session(
        session_id="s1",
        verifier=TokenVerifier(secret=SECRET),
        partner_config=make_settings().partner_config,
        rate_limit=rate,
        heartbeat=20.0,
        now=0.0,
    )


def open_session(rate: RateLimit = GENEROUS) -> Session:
    session = new_session(rate)
    action = session.receive(json.dumps({"type": "hello", "token": token()}), now=0.0, wall=WALL)
    assert isinstance(action, Admit)
    session.open(recovered=True)
    return session


def event(data: dict[str, Any], name: str = "callEnded", event_id: str = "e1") -> str:
    return json.dumps(
        {"type": "event", "id": event_id, "name": name, "at": "2026-11-24T11:59:00Z", "data": data}
    )


def test_a_valid_hello_is_admitted_with_the_partner_config() -> None:
    """A hello with a good token asks the shell to admit the agent with its config."""
    session = new_session()
    action = session.receive(
        json.dumps({"type": "hello", "token": token("a1"), "lastCommandId": "5-0"}),
        now=0.0,
        wall=WALL,
    )
    assert isinstance(action, Admit)
    assert (action.identity.agent_id, action.last_command_id) == ("a1", "5-0")
    assert action.config["disposition"] == ["code1", "code2"]
    assert session.state is State.ADMITTING


def test_welcome_carries_session_agent_partner_and_config() -> None:
    """The welcome names the session, agent, partner, heartbeat and config."""
    session = new_session()
    session.receive(json.dumps({"type": "hello", "token": token()}), now=0.0, wall=WALL)
    welcome = session.open(recovered=False)
    assert (welcome.agentId, welcome.partnerId, welcome.recovered) == ("agent-1", PARTNER, False)
    assert welcome.config["partner_config"]["channelOriginId"]


def test_first_frame_other_than_hello_closes_4401() -> None:
    """Nothing is accepted before the hello."""
    action = new_session().receive(event(call_data()), now=0.0, wall=WALL)
    assert isinstance(action, Close) and isinstance(action.error, AuthenticationFailed)
    assert action.error.close_code == 4401


def test_bad_token_closes_4401() -> None:
    """A token signed with another key is refused."""
    bad = token().rsplit(".", 1)[0] + ".AAAA"
    action = new_session().receive(json.dumps({"type": "hello", "token": bad}), now=0, wall=WALL)
    assert isinstance(action, Close) and action.error.close_code == 4401


def test_expired_token_closes_4401_saying_expired() -> None:
    """An expired token says so."""
    action = new_session().receive(
        json.dumps({"type": "hello", "token": token(ttl=-120)}), now=0.0, wall=WALL
    )
    assert isinstance(action, Close) and "expired" in str(action.error)


def test_events_carry_the_salesforce_user_the_token_names() -> None:
    """A token's sfUserId is stamped on every envelope of the session (the Task's owner)."""
    user = "005Hs00000A1b2CIAR"
    session = new_session()
    hello = {
        "type": "hello",
        "token": mint_token(SECRET, "agent-1", PARTNER, 600, salesforce_user_id=user),
    }
    assert isinstance(session.receive(json.dumps(hello), now=0.0, wall=WALL), Admit)
    session.open(recovered=False)
    action = session.receive(event(call_data()), now=1.0, wall=WALL)
    assert isinstance(action, Append) and action.envelope.salesforceUserId == user


def test_a_salesforce_user_claim_that_is_no_user_id_closes_4401() -> None:
    """sfUserId must be a User id (005...): anything else refuses the token, saying why."""
    forged = jwt.encode(
        {
            "sub": "agent-1",
            "partnerId": PARTNER,
            "aud": "softphone-relay",
            "exp": 2**31,
            "sfUserId": "001Hs00000A1b2CIAR",
        },
        SECRET,
        algorithm="HS256",
    )
    action = new_session().receive(json.dumps({"type": "hello", "token": forged}), now=0, wall=WALL)
    assert isinstance(action, Close) and action.error.close_code == 4401
    assert "sfUserId" in str(action.error)


def test_unknown_partner_closes_4403() -> None:
    """A partner absent from the partners file is not served."""
    action = new_session().receive(
        json.dumps({"type": "hello", "token": token(partner=OTHER_PARTNER)}), now=0.0, wall=WALL
    )
    assert isinstance(action, Close) and isinstance(action.error, PartnerForbidden)


def test_malformed_hello_closes_4400() -> None:
    """A hello with a wrong field type is a bad hello."""
    action = new_session().receive(json.dumps({"type": "hello", "token": 5}), now=0.0, wall=WALL)
    assert isinstance(action, Close) and isinstance(action.error, BadHello)
    assert "$.token" in str(action.error)


def test_hello_timeout_closes_4408() -> None:
    """No hello in time is 4408."""
    assert isinstance(new_session().hello_timeout().error, HelloTimeout)


def test_event_becomes_an_envelope_stamped_with_the_agent() -> None:
    """The agent comes from the token, never from the payload."""
    action = open_session().receive(event(call_data("c9", agentId="mallory")), now=1, wall=WALL)
    assert isinstance(action, Append)
    envelope = action.envelope
    assert (envelope.agentId, envelope.partnerId, envelope.conversationId) == (
        "agent-1",
        PARTNER,
        "c9",
    )
    assert envelope.receivedAt == WALL and envelope.sessionId == "s1"


def test_an_incoming_calls_ack_carries_the_callers_search_forms() -> None:
    """The screen pop searches the forms the caller match searches, worked out by the relay."""
    session = open_session()
    action = session.receive(
        event(call_data("c9", callerANI="+442079460958"), name="incomingCall"), now=1, wall=WALL
    )
    assert isinstance(action, Append)
    ack = json.loads(encode_frame(session.appended(action.envelope, "1-0", duplicate=False)))
    assert ack == {
        "type": "ack",
        "id": "e1",
        "seq": "1-0",
        "duplicate": False,
        "searchTerms": ["442079460958", "2079460958", "02079460958"],
    }


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("incomingCall", call_data("c9", callerANI="")),
        ("incomingCall", call_data("c9", callerANI="+1555")),
        ("incomingCall", call_data("c9")),
        ("callEnded", call_data("c9", callerANI="+442079460958")),
    ],
)
def test_other_acks_carry_no_search_forms(name: str, data: dict[str, Any]) -> None:
    """Only an incoming call with a caller number has anything to search for."""
    session = open_session()
    action = session.receive(event(data, name=name), now=1, wall=WALL)
    assert isinstance(action, Append)
    ack = json.loads(encode_frame(session.appended(action.envelope, "1-0", duplicate=False)))
    assert "searchTerms" not in ack


def test_event_for_another_partner_is_forbidden() -> None:
    """``partnerId`` must be the session's."""
    action = open_session().receive(
        event({"partnerId": OTHER_PARTNER, "conversationId": "c"}), now=1, wall=WALL
    )
    assert isinstance(action, Reply) and isinstance(action.frame, Nack)
    assert (action.frame.code, action.frame.id) == ("forbidden", "e1")


def test_invalid_event_is_nacked_with_its_id_and_path() -> None:
    """An event failing the contract is nacked, naming the field."""
    action = open_session().receive(event({"partnerId": PARTNER}), now=1, wall=WALL)
    assert isinstance(action, Reply) and isinstance(action.frame, Nack)
    assert action.frame.code == "invalid_event" and "conversationId" in action.frame.message


def test_unknown_event_is_nacked() -> None:
    """An unknown event name gets ``unknown_event``."""
    action = open_session().receive(event({}, name="callTeleported"), now=1, wall=WALL)
    assert isinstance(action, Reply) and action.frame.code == "unknown_event"  # type: ignore[union-attr]


def test_malformed_event_frame_keeps_its_id_in_the_nack() -> None:
    """A frame that fails to decode is nacked with its id when one can be read."""
    frame = json.dumps({"type": "event", "id": "e7", "name": "callEnded", "at": "yesterday"})
    action = open_session().receive(frame, now=1, wall=WALL)
    assert isinstance(action, Reply) and isinstance(action.frame, Nack)
    assert (action.frame.id, action.frame.code) == ("e7", "bad_frame")
    assert "$.at" in action.frame.message


def test_unknown_frame_fields_are_refused() -> None:
    """Frames are strict: an unknown field is a bad frame."""
    frame = json.dumps({"type": "ping", "extra": 1})
    action = open_session().receive(frame, now=1, wall=WALL)
    assert isinstance(action, Reply) and action.frame.code == "bad_frame"  # type: ignore[union-attr]


def test_binary_frames_are_refused() -> None:
    """Only text frames are accepted."""
    action = open_session().receive(b'{"type":"ping"}', now=1, wall=WALL)
    assert isinstance(action, Reply) and "binary" in action.frame.message  # type: ignore[union-attr]


def test_command_ack_is_passed_on() -> None:
    """A client ack of a command becomes a decision to record it."""
    action = open_session().receive('{"type":"ack","id":"17-0"}', now=1, wall=WALL)
    assert action == CommandAcked("17-0")


def test_ping_gets_pong() -> None:
    """Application-level heartbeat."""
    action = open_session().receive('{"type":"ping"}', now=1, wall=WALL)
    assert isinstance(action, Reply) and isinstance(action.frame, Pong)


def test_second_hello_is_a_bad_frame() -> None:
    """Hello is said once."""
    action = open_session().receive(
        json.dumps({"type": "hello", "token": token()}), now=1, wall=WALL
    )
    assert isinstance(action, Reply) and action.frame.code == "bad_frame"  # type: ignore[union-attr]


def test_rate_limit_nacks_then_closes_4429() -> None:
    """Over the burst: nack ``rate_limited``; going on regardless: close 4429."""
    session = open_session(RateLimit(1.0, 2))
    codes = []
    for i in range(5):
        action = session.receive(event(call_data(), event_id=f"e{i}"), now=0.0, wall=WALL)
        codes.append(action.frame.code if isinstance(action, Reply) else type(action).__name__)  # type: ignore[union-attr]
    assert codes[:4] == ["Append", "Append", "rate_limited", "rate_limited"]
    assert codes[4] == "Close"


def test_rate_limit_refills_over_time() -> None:
    """Tokens come back at the configured rate."""
    session = open_session(RateLimit(1.0, 1))
    assert isinstance(session.receive(event(call_data()), now=0.0, wall=WALL), Append)
    assert isinstance(session.receive(event(call_data()), now=0.5, wall=WALL), Reply)
    assert isinstance(session.receive(event(call_data()), now=1.6, wall=WALL), Append)


def test_replaced_session_closes_4409() -> None:
    """A newer session of the same agent ends this one."""
    close = open_session().replaced()
    assert isinstance(close.error, SessionReplaced) and close.error.close_code == 4409


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=20,
)
frame_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["event", "ack", "ping", "hello", "other"])},
    optional={
        "id": json_values,
        "name": st.sampled_from(["callEnded", "incomingCall", "x"]),
        "at": st.sampled_from(["2026-11-24T11:59:00Z", "bad", 1]),
        "data": json_values,
    },
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(json_values, frame_like).map(json.dumps) | st.text() | st.binary())
def test_arbitrary_input_never_crashes_an_open_session(message: str | bytes) -> None:
    """Whatever arrives, an open session decides something; it never raises."""
    session = open_session()
    action = session.receive(message, now=1.0, wall=WALL)
    assert isinstance(action, Reply | Append | CommandAcked)


@settings(max_examples=200, deadline=None)
@given(st.one_of(json_values, frame_like).map(json.dumps) | st.text() | st.binary())
def test_arbitrary_first_frame_never_crashes(message: str | bytes) -> None:
    """Whatever the first frame is, the session admits or closes; it never raises."""
    action = new_session().receive(message, now=0.0, wall=WALL)
    assert isinstance(action, Close | Admit)


def test_unreachable_log_at_admission_closes_1013() -> None:
    """If the session cannot be claimed, the client is told to come back later."""
    session = new_session()
    session.receive(json.dumps({"type": "hello", "token": token()}), now=0.0, wall=WALL)
    close = session.unavailable("event log unavailable")
    assert close.error.close_code == 1013 and session.state is State.CLOSED


def refresh_frame(tok: str) -> str:
    return json.dumps({"type": "refresh", "token": tok})


def test_the_welcome_says_when_the_token_expires() -> None:
    """``expiresAt`` (Unix seconds) tells the client when to refresh."""
    session = new_session()
    hello = {"type": "hello", "token": token(ttl=600)}
    session.receive(json.dumps(hello), now=0.0, wall=WALL)
    welcome = session.open(recovered=True)
    assert welcome.expiresAt is not None and welcome.expiresAt > time.time() + 590


def test_an_open_session_ends_when_its_token_expires() -> None:
    """Past ``exp`` plus the leeway the hello had: close 4401 saying how to avoid it."""
    session = open_session()
    assert session.identity is not None
    expires = session.identity.expires_at
    assert session.expiry(expires + LEEWAY_SECONDS - 1) is None
    action = session.expiry(expires + LEEWAY_SECONDS)
    assert isinstance(action, Close) and action.error.close_code == 4401
    assert "refresh" in str(action.error) and session.state is State.CLOSED


def test_frames_after_the_expiry_are_dropped() -> None:
    """A frame that arrives while the expired session closes is ignored, never appended."""
    session = open_session()
    assert session.identity is not None
    session.expiry(session.identity.expires_at + LEEWAY_SECONDS)
    assert isinstance(session.receive(event(call_data()), now=1.0, wall=WALL), Ignore)


def test_a_refresh_moves_the_expiry_to_the_new_token() -> None:
    """A fresh token for the same agent: ``refreshed`` with the new expiry, and the old one
    no longer ends the session."""
    session = open_session()
    assert session.identity is not None
    old = session.identity.expires_at
    action = session.receive(refresh_frame(token(ttl=3600)), now=1.0, wall=WALL)
    assert isinstance(action, Reply) and isinstance(action.frame, Refreshed)
    assert action.frame.expiresAt > old
    assert session.expiry(old + LEEWAY_SECONDS) is None


def test_a_refresh_with_a_bad_token_is_refused_and_the_session_goes_on() -> None:
    """refresh_refused (a nack): the current token still holds until it expires."""
    session = open_session()
    assert session.identity is not None
    old = session.identity.expires_at
    bad = token().rsplit(".", 1)[0] + ".AAAA"
    action = session.receive(refresh_frame(bad), now=1.0, wall=WALL)
    assert isinstance(action, Reply) and isinstance(action.frame, Nack)
    assert action.frame.code == "refresh_refused"
    assert session.state is State.OPEN and session.identity.expires_at == old


def test_a_refresh_for_another_agent_closes_4401() -> None:
    """A session cannot be handed to someone else by refreshing it."""
    session = open_session()
    action = session.receive(refresh_frame(token("agent-2")), now=1.0, wall=WALL)
    assert isinstance(action, Close) and action.error.close_code == 4401


@pytest.mark.parametrize(
    "at", ["0001-01-01T00:00:00Z", "1699-12-31T23:59:59Z", "4001-01-01T00:00:00Z"]
)
def test_an_event_stamped_outside_the_dates_salesforce_stores_is_invalid(at: str) -> None:
    """A stamp before 1700-01-01 or after 4000-12-31 (GMT) is refused, naming ``$.at``."""
    frame = json.dumps(
        {"type": "event", "id": "e1", "name": "callEnded", "at": at, "data": call_data()}
    )
    action = open_session().receive(frame, now=1, wall=WALL)
    assert isinstance(action, Reply) and isinstance(action.frame, Nack)
    assert action.frame.code == "invalid_event" and "$.at" in action.frame.message
