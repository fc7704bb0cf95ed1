"""Presence from statusChanged with echo suppression (pure), property-tested."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from projections.presence.fold import Report, observe, pending
from relay.log.agent_records import PresenceRecord

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
STATUSES = ["available", "busy", "break", "offline"]


def report(status: str, second: int, event_id: str | None = None) -> Report:
    return Report(
        agentId="a",
        softphoneId=status,
        at=T0 + timedelta(seconds=second),
        eventId=event_id or f"e{second:04d}",
    )


class Agent:
    """The projection's state for one agent, applying updates as the I/O shell does."""

    def __init__(self) -> None:
        self.record: PresenceRecord | None = None
        self.expected: set[str] = set()
        self.forwarded: list[str] = []

    def ask(self, status: str) -> None:
        self.expected.add(status)

    def see(self, seen: Report) -> None:
        update = observe(self.record, frozenset(self.expected), seen)
        if update.record is not None:
            self.record = msgspec.structs.replace(update.record, forwarded=True)
        if update.consumes is not None:
            self.expected.discard(update.consumes)
        if update.forward:
            self.forwarded.append(seen.eventId)


def test_an_echo_of_our_own_update_is_not_passed_on() -> None:
    """update_presence(busy) then statusChanged(busy): stored, not a change."""
    agent = Agent()
    agent.see(report("available", 1))
    agent.ask("busy")
    agent.see(report("busy", 2))
    assert agent.record is not None and agent.record.softphoneId == "busy"
    assert agent.forwarded == ["e0001"]
    assert agent.expected == set(), "the echo used up the expectation"


def test_a_real_change_after_an_echo_is_passed_on() -> None:
    """The agent then goes on break by hand: that is news."""
    agent = Agent()
    agent.ask("busy")
    agent.see(report("busy", 1))
    agent.see(report("break", 2))
    assert agent.forwarded == ["e0002"]


def test_the_answer_to_get_presence_is_not_a_change() -> None:
    """statusChanged(X) while the agent is already X is a repeat."""
    agent = Agent()
    agent.see(report("available", 1))
    agent.see(report("available", 2))
    assert agent.forwarded == ["e0001"]
    assert agent.record is not None and agent.record.eventId == "e0002"


def test_two_updates_in_flight_are_both_echoes() -> None:
    """update(busy), update(break), then both confirmations: nothing passed on."""
    agent = Agent()
    agent.see(report("available", 1))
    agent.ask("busy")
    agent.ask("break")
    agent.see(report("busy", 2))
    agent.see(report("break", 3))
    assert agent.forwarded == ["e0001"]


def test_an_older_report_changes_nothing() -> None:
    """A report that arrives late never moves presence backwards."""
    agent = Agent()
    agent.see(report("busy", 5))
    agent.see(report("available", 3))
    assert agent.record is not None and agent.record.softphoneId == "busy"
    assert agent.forwarded == ["e0005"]


def test_a_change_stored_but_not_yet_forwarded_is_forwarded_on_redelivery() -> None:
    """The worker died between storing a change and putting it on the feed."""
    stored = PresenceRecord(agentId="a", softphoneId="busy", at=T0, eventId="e1", forwarded=False)
    update = observe(
        stored, frozenset(), Report(agentId="a", softphoneId="busy", at=T0, eventId="e1")
    )
    assert update.forward and update.record is not None and update.record.forwarded


def test_expired_expectations_are_not_pending() -> None:
    """An update_presence whose confirmation never came stops counting after its expiry."""
    assert pending({"busy": 2_000.0, "break": 500.0}, now_ms=1_000.0) == frozenset({"busy"})


operations = st.lists(
    st.tuples(st.sampled_from(["ask", "user", "query"]), st.sampled_from(STATUSES)),
    max_size=30,
)


@given(operations)
def test_only_the_agents_own_changes_are_passed_on(ops: list[tuple[str, str]]) -> None:
    """Whatever mix of our updates (each confirmed), the agent's own changes and presence
    queries: exactly the agent's own changes to a new status are passed on."""
    agent = Agent()
    truth: str | None = None
    expected_forwards: list[str] = []
    for second, (kind, status) in enumerate(ops, start=1):
        if kind == "query":
            if truth is None:
                continue
            status = truth
        if kind == "ask":
            agent.ask(status)
        seen = report(status, second)
        if kind == "user" and status != truth:
            expected_forwards.append(seen.eventId)
        truth = status
        agent.see(seen)
    assert agent.forwarded == expected_forwards
    assert (agent.record.softphoneId if agent.record else None) == truth


@given(
    st.lists(st.sampled_from(STATUSES), min_size=1, max_size=15),
    st.randoms(use_true_random=False),
    st.integers(min_value=0, max_value=5),
)
def test_redelivery_and_disorder_never_pass_a_change_on_twice(
    statuses: list[str], rng: object, duplicates: int
) -> None:
    """Reports shuffled and repeated: each forwarded at most once, and the latest one wins."""
    reports = [report(status, second) for second, status in enumerate(statuses, start=1)]
    delivered = reports + [reports[i % len(reports)] for i in range(duplicates)]
    rng.shuffle(delivered)  # type: ignore[attr-defined]
    agent = Agent()
    for seen in delivered:
        agent.see(seen)
    assert len(agent.forwarded) == len(set(agent.forwarded))
    assert agent.record is not None and agent.record.eventId == reports[-1].eventId
