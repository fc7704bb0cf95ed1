"""The sink against a stand-in that fails the way a real org does: every call still ends as
exactly one Task with its fields, and nothing a real org would take is dead-lettered."""

from __future__ import annotations

from typing import Any

import pytest

from projections.calls.fold import CallRecord
from projections.outcomes import Done, Pause, Reject, Retry
from projections.salesforce import org_client
from projections.salesforce.sink import SalesforceSink
from projections.salesforce.standin.faults import CONCURRENT_LIMIT_MESSAGE, MAX_REQUEST_HEAD
from projections.salesforce.standin.org import Org
from projections.salesforce.standin.schema import TASK, VANILLA, FieldSpec, ObjectSpec
from projections.salesforce.standin.server import StandIn, StandInState
from projections.salesforce.task_mapping import TaskMapping
from tests.helpers import ConnectionFactory, call_record, conversation_ids, tasks

TASK_WITH_RESERVATION = ObjectSpec(
    "Task",
    TASK.key_prefix,
    {
        **TASK.fields,
        "Reservation_Start__c": FieldSpec(
            name="Reservation_Start__c", label="Reservation Start", type="date"
        ),
    },
)


def records(ids: list[str], **fields: Any) -> list[CallRecord]:
    return [call_record(c, **{"notes": "Booked two nights", **fields}) for c in ids]


def sink_for(connection: ConnectionFactory, **options: Any) -> SalesforceSink:
    return SalesforceSink(connection(), options.pop("mapping", TaskMapping()), **options)


def query_lines(standin: StandIn) -> list[str]:
    """The lookups of Tasks (the org's Task statuses, read once, aside)."""
    return [q for q in standin.state.queries if " FROM Task " in q]


@pytest.fixture
def standin_state() -> StandInState:
    """A vanilla org, plus a custom date field on Task for the type-error test."""
    objects = [TASK_WITH_RESERVATION, *(o for o in VANILLA if o.name != "Task")]
    return StandInState(org=Org(objects))


async def test_a_create_whose_connection_drops_after_the_commit_is_not_made_twice(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """The org committed 20 Tasks and the answer was lost: the sink asks before it creates
    again, so each call is one Task."""
    ids = conversation_ids(20)
    standin.state.faults.drop_next_creates = 1
    sink = sink_for(connection, retry_base=0.01)
    assert await sink.write(records(ids)) == {c: Done() for c in ids}
    found = tasks(standin)
    assert sorted(found) == sorted(ids)
    assert all(t["Description"] == "Booked two nights" for t in found.values())


async def test_a_create_that_is_partly_committed_creates_only_the_rest(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """Some calls already hold a Task when the lost create is looked up again: only the
    others are created."""
    ids = conversation_ids(6)
    sink = sink_for(connection, retry_base=0.01)
    await sink.write(records(ids[:3]))
    standin.state.faults.drop_next_creates = 1
    assert await sink.write(records(ids)) == {c: Done() for c in ids}
    assert sorted(tasks(standin)) == sorted(ids)


async def test_a_create_answered_after_the_client_gave_up_is_logged_once(
    standin: StandIn, connection: ConnectionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The org answers too late every time: Retry (an attempt counted), and the next write,
    once it answers again, updates the Tasks the late creates made."""
    monkeypatch.setattr(org_client, "REQUEST_TIMEOUT", 0.3)
    ids = conversation_ids(5)
    standin.state.faults.hold_seconds = 0.6
    sink = sink_for(connection, retry_base=0.01)
    outcomes = await sink.write(records(ids))
    assert all(isinstance(o, Retry) for o in outcomes.values()), outcomes
    standin.state.faults.hold_seconds = 0.0
    assert await sink.write(records(ids, notes="Called back")) == {c: Done() for c in ids}
    assert {t["Description"] for t in tasks(standin).values()} == {"Called back"}


async def test_a_lookup_that_times_out_again_and_again_counts_attempts_and_says_why(
    standin: StandIn, connection: ConnectionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow lookup (CallObject not indexed on a large Task table) is a Retry that names
    the custom index, not a pause that never ends."""
    monkeypatch.setattr(org_client, "REQUEST_TIMEOUT", 0.2)
    standin.state.faults.delay_seconds = 0.5
    outcomes = await sink_for(connection, retry_base=0.01).write(records(conversation_ids(2)))
    assert all(isinstance(o, Retry) and "CallObject" in o.error for o in outcomes.values())


async def test_200_uuid_conversations_are_looked_up_in_one_query(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """A full chunk of UUID ids fits one lookup URL."""
    ids = conversation_ids(200)
    sink = sink_for(connection)
    assert await sink.write(records(ids)) == {c: Done() for c in ids}
    assert len(query_lines(standin)) == 1 and len(tasks(standin)) == 200


async def test_ids_of_128_characters_are_looked_up_in_url_sized_chunks(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """200 ids of the contract's longest: lookups cut to stay under the org's 16,384 bytes,
    and written twice they are still one Task each."""
    ids = conversation_ids(200, longest=True)
    sink = sink_for(connection)
    await sink.write(records(ids))
    assert await sink.write(records(ids, notes="Follow-up")) == {c: Done() for c in ids}
    assert len(tasks(standin)) == 200
    assert len(query_lines(standin)) == 6  # three lookups per write


async def test_a_414_splits_the_lookup_and_blames_no_record(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """A lookup URL the org finds too long is a sizing error: split, never dead-lettered."""
    ids = conversation_ids(200, longest=True)
    sink = sink_for(connection, query_url_bytes=10 * MAX_REQUEST_HEAD)
    assert await sink.write(records(ids)) == {c: Done() for c in ids}
    assert sink.metrics.errors.labels("HTTP_414")._value.get() >= 1
    assert len(tasks(standin)) == 200


async def test_a_value_of_the_wrong_type_costs_only_its_own_record(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """The org refuses the whole collection (400 JSON_PARSER_ERROR); the sink splits the
    chunk, rejects the one bad record and writes the other 49."""
    mapping = TaskMapping(fields={"reservationStartDate": "Reservation_Start__c"})
    ids = conversation_ids(50)
    batch = records(ids[:-1], reservationStartDate="2026-12-01")
    batch.append(call_record(ids[-1], reservationStartDate="01/12/2026"))
    outcomes = await sink_for(connection, mapping=mapping).write(batch)
    bad = outcomes.pop(ids[-1])
    assert isinstance(bad, Reject) and "JSON_PARSER_ERROR" in bad.error
    assert outcomes == {c: Done() for c in ids[:-1]}
    assert sorted(tasks(standin)) == sorted(ids[:-1])


async def test_a_row_lock_raised_in_a_trigger_is_retried_not_dead_lettered(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY wrapping UNABLE_TO_LOCK_ROW is a Retry."""
    ids = conversation_ids(3)
    standin.state.faults.trigger_lock_next_records = 1
    outcomes = await sink_for(connection).write(records(ids))
    assert isinstance(outcomes[ids[0]], Retry) and "UNABLE_TO_LOCK_ROW" in outcomes[ids[0]].error
    assert outcomes[ids[1]] == outcomes[ids[2]] == Done()


async def test_the_concurrent_request_limit_is_waited_out_briefly(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """ConcurrentRequests is tried again after a short backoff (the request did not run),
    not a five-minute pause like the daily quota."""
    ids = conversation_ids(2)
    standin.state.faults.fail_next = [(403, "REQUEST_LIMIT_EXCEEDED", CONCURRENT_LIMIT_MESSAGE)]
    sink = sink_for(connection, retry_base=0.01)
    assert await sink.write(records(ids)) == {c: Done() for c in ids}
    assert await sink.write(records(conversation_ids(1))) != {}


async def test_a_lasting_concurrent_limit_pauses_briefly(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """Still turned away after the in-place tries: a short Pause, no attempt counted."""
    standin.state.faults.fail_next = [(403, "REQUEST_LIMIT_EXCEEDED", CONCURRENT_LIMIT_MESSAGE)] * 3
    outcomes = await sink_for(connection, retry_base=0.01).write(records(conversation_ids(2)))
    assert all(isinstance(o, Pause) and o.seconds < 60 for o in outcomes.values()), outcomes


async def test_archived_tasks_are_found_and_updated_not_created_again(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """A replay of calls over a year old: ``query`` would not see their archived Tasks,
    ``queryAll`` does."""
    ids = conversation_ids(3)
    sink = sink_for(connection)
    await sink.write(records(ids))
    for task in tasks(standin).values():
        standin.state.org.archive(task["Id"])
    assert await sink.write(records(ids, notes="Replayed")) == {c: Done() for c in ids}
    assert {t["Description"] for t in tasks(standin).values()} == {"Replayed"}


async def test_a_caller_merged_away_since_is_dropped_and_the_call_still_logged(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """The cached Contact was deleted: the Task is created without a WhoId, and the next
    call from that number searches again."""
    contact = standin.state.org.create("Contact", {"LastName": "Diaz", "Phone": "+18883973342"})
    first, second, third = conversation_ids(3)
    sink = sink_for(connection)
    await sink.write(records([first]))
    assert tasks(standin)[first]["WhoId"] == contact
    standin.state.org.delete(contact)
    assert await sink.write(records([second])) == {second: Done()}
    assert tasks(standin)[second].get("WhoId") is None
    searches = sum(1 for _, path in standin.state.requests if path.endswith("/search/"))
    await sink.write(records([third]))
    assert sum(1 for _, path in standin.state.requests if path.endswith("/search/")) == (
        searches + 1
    )


async def test_a_contact_the_search_index_does_not_have_yet_leaves_the_call_unlinked(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """A Contact created a minute ago is not searchable yet: the Task is logged without a
    WhoId rather than held back."""
    standin.state.org.search_lag = 900.0
    standin.state.org.create("Contact", {"LastName": "Diaz", "Phone": "+18883973342"})
    (conversation,) = conversation_ids(1)
    assert await sink_for(connection).write(records([conversation])) == {conversation: Done()}
    assert tasks(standin)[conversation].get("WhoId") is None


async def test_a_task_is_owned_by_the_agents_salesforce_user(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """The record names the agent's User: the Task is created with that OwnerId."""
    user = standin.state.org.create(
        "User", {"Username": "ana@example.com", "LastName": "Silva", "IsActive": True}
    )
    (conversation,) = conversation_ids(1)
    await sink_for(connection).write(records([conversation], ownerId=user))
    assert tasks(standin)[conversation]["OwnerId"] == user


async def test_an_inactive_owner_leaves_the_task_with_the_integration_user(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """An agent whose User was deactivated: the Task is still created, without an owner of
    its own (INACTIVE_OWNER_OR_USER is no reason to lose the call log)."""
    user = standin.state.org.create(
        "User", {"Username": "left@example.com", "LastName": "Gone", "IsActive": False}
    )
    ids = conversation_ids(2)
    outcomes = await sink_for(connection).write(records(ids, ownerId=user))
    assert outcomes == {c: Done() for c in ids}
    assert all(t.get("OwnerId") is None for t in tasks(standin).values())
