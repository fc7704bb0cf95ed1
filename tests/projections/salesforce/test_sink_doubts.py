"""The lookup path (no key field) after a create whose answer was lost: the call waits until
the first request can no longer commit, looked up now and then, and is created only then
if it is still missing. First the bookkeeping (pure), then the sink against the stand-in's
slow commits."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from projections.calls.fold import CallRecord
from projections.outcomes import Done, Wait
from projections.salesforce import org_client
from projections.salesforce.doubts import Step, UnansweredCreates
from projections.salesforce.sink import SalesforceSink
from projections.salesforce.standin.server import StandIn
from projections.salesforce.task_mapping import TaskMapping
from tests.helpers import (
    ConnectionFactory,
    call_record,
    conversation_ids,
    late_inserts_committed,
    tasks_of,
)


def test_a_call_with_no_unanswered_create_is_written() -> None:
    assert UnansweredCreates().step("c1", now=0.0) is Step.WRITE


def test_a_call_in_doubt_waits_and_is_looked_up_every_recheck() -> None:
    doubts = UnansweredCreates(window=600.0, recheck=30.0)
    doubts.note("c1", sent_at=0.0, looked_at=1.0)
    assert doubts.step("c1", now=20.0) is Step.WAIT
    assert doubts.step("c1", now=31.0) is Step.LOOK
    assert doubts.step("c1", now=40.0) is Step.WAIT, "the due lookup counts as made"
    assert doubts.remaining("c1", now=40.0) == 560.0


def test_once_the_window_has_passed_the_call_is_written_and_forgotten() -> None:
    doubts = UnansweredCreates(window=600.0, recheck=30.0)
    doubts.note("c1", sent_at=0.0, looked_at=1.0)
    assert doubts.step("c1", now=600.0) is Step.WRITE
    assert len(doubts) == 0


def test_a_call_found_is_forgotten() -> None:
    doubts = UnansweredCreates()
    doubts.note("c1", sent_at=0.0, looked_at=1.0)
    doubts.forget("c1")
    assert doubts.step("c1", now=2.0) is Step.WRITE


def records(ids: list[str], **fields: Any) -> list[CallRecord]:
    return [call_record(c, **{"notes": "Booked two nights", **fields}) for c in ids]


def creates(standin: StandIn) -> int:
    return sum(1 for m, p in standin.state.requests if m == "POST" and p.endswith("/sobjects"))


async def test_a_create_that_commits_after_the_client_gave_up_makes_one_task(
    standin: StandIn, connection: ConnectionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow trigger: the insert commits after the client's timeout and the re-lookup. The
    calls wait (no second create), and once the insert has committed the next look finds
    the Tasks and updates them: one Task per call, with the later notes."""
    monkeypatch.setattr(org_client, "REQUEST_TIMEOUT", 0.3)
    standin.state.faults.late_next_creates = 1
    standin.state.faults.late_seconds = 0.8
    ids = conversation_ids(3)
    doubts = UnansweredCreates(window=30.0, recheck=0.2)
    sink = SalesforceSink(connection(), TaskMapping(), retry_base=0.01, doubts=doubts)
    first = await sink.write(records(ids))
    assert all(isinstance(o, Wait) and 29 < o.seconds <= 30 for o in first.values()), first
    requests_before = len(standin.state.requests)
    again = await sink.write(records(ids))
    assert all(isinstance(o, Wait) for o in again.values())
    assert len(standin.state.requests) == requests_before, "a wait between looks asks nothing"
    await late_inserts_committed(standin)
    await asyncio.sleep(0.2)
    assert await sink.write(records(ids, notes="Called back")) == {c: Done() for c in ids}
    found = tasks_of(standin)
    assert sorted(t["CallObject"] for t in found) == sorted(ids)
    assert {t["Description"] for t in found} == {"Called back"}
    assert creates(standin) == 1 and len(doubts) == 0


async def sink_with_a_failing_create(
    standin: StandIn, connection: ConnectionFactory, doubts: UnansweredCreates
) -> SalesforceSink:
    """A sink whose next request is a create that answers 503 without taking effect (its
    outcome unknown): the Task statuses are read already, the lookup and the caller search
    are skipped (``known``, no caller match)."""
    sink = SalesforceSink(
        connection(), TaskMapping(match_callers=False), retry_base=0.01, doubts=doubts
    )
    await sink.write(records(conversation_ids(1)))
    standin.state.faults.unavailable(times=1)
    return sink


async def test_a_create_that_never_committed_is_made_once_the_window_has_passed(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """The calls wait out the window, then the lookup still finds nothing and they are
    created, once."""
    ids = conversation_ids(4)
    doubts = UnansweredCreates(window=0.5, recheck=0.1)
    sink = await sink_with_a_failing_create(standin, connection, doubts)
    outcomes = await sink.write(records(ids), known={})
    assert all(isinstance(o, Wait) for o in outcomes.values()), outcomes
    await asyncio.sleep(0.5)
    assert await sink.write(records(ids)) == {c: Done() for c in ids}
    assert sorted(t["CallObject"] for t in tasks_of(standin)[1:]) == sorted(ids)


async def test_calls_not_in_doubt_are_written_beside_waiting_ones(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """A batch with a waiting call and a new one: the new one is created at once."""
    waiting, fresh = conversation_ids(2)
    doubts = UnansweredCreates(window=60.0, recheck=60.0)
    sink = await sink_with_a_failing_create(standin, connection, doubts)
    assert isinstance((await sink.write(records([waiting]), known={}))[waiting], Wait)
    outcomes = await sink.write(records([waiting, fresh]))
    assert isinstance(outcomes[waiting], Wait) and outcomes[fresh] == Done()
    assert [t["CallObject"] for t in tasks_of(standin)[1:]] == [fresh]
