"""The Salesforce sink against the stand-in over HTTPS: batched, idempotent, precise outcomes."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from projections.calls.fold import CallRecord
from projections.outcomes import Done, Pause, Reject, Retry
from projections.salesforce.connect import SalesforceConnection, SalesforceSettings, SessionAuth
from projections.salesforce.limits import LimitPolicy
from projections.salesforce.sink import SalesforceSink
from projections.salesforce.standin.org import Org
from projections.salesforce.standin.schema import TASK, VANILLA, FieldSpec, ObjectSpec
from projections.salesforce.standin.server import StandIn, StandInState
from projections.salesforce.task_mapping import TaskMapping
from tests.helpers import ConnectionFactory, call_record, conversation_ids, standin_http, tasks

CALL_LOG = ObjectSpec(
    "Call_Log__c",
    "a01",
    {
        f.name: f
        for f in [
            FieldSpec(name="Id", label="Record ID", type="id", createable=False, updateable=False),
            FieldSpec(
                name="Conversation_Id__c",
                label="Conversation",
                type="string",
                length=64,
                external_id=True,
            ),
            FieldSpec(name="Notes__c", label="Notes", type="textarea", length=32000),
        ]
    },
)


IDS = conversation_ids(450)
"""Conversation ids shaped like the contract's (UUIDs)."""
C1, C2, OLD, NEW, OK, BAD, A, B = IDS[:8]


def record(conversation: str, **fields: Any) -> CallRecord:
    return call_record(conversation, **{"notes": "first", **fields})


@pytest.fixture
def standin_state() -> StandInState:
    """An org that also has a custom object with an External ID field."""
    return StandInState(org=Org([*VANILLA, CALL_LOG]))


async def test_new_calls_become_tasks_in_three_requests(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """One query, one caller search and one collection create for a batch of new calls (and,
    once a sink's first write and every 10 minutes, one read of the org's Task statuses)."""
    sink = SalesforceSink(connection(), TaskMapping())
    outcomes = await sink.write([record(c) for c in IDS[:5]])
    assert outcomes == {c: Done() for c in IDS[:5]}
    assert sorted(tasks(standin)) == sorted(IDS[:5])
    assert sink.requests == 4
    await sink.write([record(c) for c in IDS[5:10]])
    assert sink.requests == 6  # a lookup and a create: statuses and the caller are known


async def test_writing_again_updates_the_same_tasks(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """Idempotent: a second write (replay, redelivery, late notes) changes, never duplicates."""
    sink = SalesforceSink(connection(), TaskMapping())
    await sink.write([record(C1), record(C2)])
    outcomes = await sink.write([record(C1, notes="notes after the end"), record(C2)])
    assert outcomes == {C1: Done(), C2: Done()}
    assert len(tasks(standin)) == 2
    first = tasks(standin)[C1]
    assert first["Description"] == "notes after the end" and first["TaskSubtype"] == "Call"


async def test_mixed_batch_creates_and_updates(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """Known conversations are updated and new ones created in the same batch."""
    sink = SalesforceSink(connection(), TaskMapping())
    await sink.write([record(OLD)])
    before = sink.requests
    assert await sink.write([record(OLD), record(NEW)]) == {OLD: Done(), NEW: Done()}
    assert len(tasks(standin)) == 2 and sink.requests - before == 3


async def test_large_batches_are_chunked_by_200(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """450 calls: two lookups (cut by URL length), one search for their caller, three
    creates of at most 200 and the org's Task statuses."""
    sink = SalesforceSink(connection(), TaskMapping())
    outcomes = await sink.write([record(c) for c in IDS[:450]])
    assert len(outcomes) == 450 and all(o == Done() for o in outcomes.values())
    assert sink.requests == 7 and len(tasks(standin)) == 450
    assert standin.state.creates == 3


async def test_refused_record_is_rejected_and_the_rest_land(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """A field the org lacks fails that record with Salesforce's error; others are written."""
    sink = SalesforceSink(connection(), TaskMapping(fields={"language": "Language__c"}))
    outcomes = await sink.write([record(OK), record(BAD, language="en_US")])
    assert outcomes[OK] == Done()
    assert isinstance(outcomes[BAD], Reject) and "INVALID_FIELD" in outcomes[BAD].error
    assert list(tasks(standin)) == [OK]


async def test_lock_errors_are_retried(standin: StandIn, connection: ConnectionFactory) -> None:
    """UNABLE_TO_LOCK_ROW is transient."""
    standin.state.faults.lock_next_records = 1
    outcomes = await SalesforceSink(connection(), TaskMapping()).write([record(A), record(B)])
    assert isinstance(outcomes[A], Retry) and outcomes[B] == Done()


async def test_a_passing_503_is_retried_in_place(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """One 503 SERVER_UNAVAILABLE: the request is made again after a short backoff."""
    standin.state.faults.unavailable(1)
    sink = SalesforceSink(connection(), TaskMapping(), retry_base=0.01)
    assert await sink.write([record(A)]) == {A: Done()}
    assert len(tasks(standin)) == 1
    assert sink.metrics.errors.labels("SERVER_UNAVAILABLE")._value.get() == 1


async def test_a_lasting_outage_pauses_without_blaming_records(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """503s past the in-place retries: Pause (no attempt counted), nothing written."""
    standin.state.faults.unavailable(10)
    sink = SalesforceSink(connection(), TaskMapping(), attempts=3, retry_base=0.01)
    outcomes = await sink.write([record(A), record(B)])
    assert all(isinstance(o, Pause) for o in outcomes.values()), outcomes
    assert sink.requests == 3 and tasks(standin) == {}


async def test_an_unreachable_org_pauses(connection: ConnectionFactory, standin: StandIn) -> None:
    """A connection error is an outage too."""
    sink = SalesforceSink(connection(), TaskMapping(), retry_base=0.01)
    await standin.stop()
    outcomes = await sink.write([record(A)])
    assert isinstance(outcomes[A], Pause) and "ConnectionError" in outcomes[A].error


async def test_the_daily_limit_pauses_every_request(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """REQUEST_LIMIT_EXCEEDED: Pause for the policy's time, and no request until then."""
    state = standin.state
    state.api_max = state.api_usage
    sink = SalesforceSink(connection(limits=LimitPolicy(pause_seconds=60)), TaskMapping())
    first = await sink.write([record(A)])
    assert first[A] == Pause("REQUEST_LIMIT_EXCEEDED: the org's daily API limit is used up", 60)
    state.api_max = 1_000_000
    second = await sink.write([record(A)])
    assert isinstance(second[A], Pause) and 0 < second[A].seconds <= 60
    assert sink.requests == 1 and tasks(standin) == {}


async def test_requests_slow_down_near_the_daily_limit(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """Past slow_from of the budget each request waits, more as the budget runs out."""
    standin.state.api_max = standin.state.api_usage + 5
    policy = LimitPolicy(slow_from=0.5, max_delay_seconds=0.2)
    sink = SalesforceSink(connection(limits=policy), TaskMapping(match_callers=False))
    await sink.write([record(A)])
    assert sink.metrics.request_delay._value.get() == 0
    await sink.write([record(B)])
    assert sink.metrics.request_delay._value.get() > 0
    assert len(tasks(standin)) == 2


async def test_an_expired_session_without_login_pauses(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """A session id cannot be renewed: Pause (the operator must act), nothing dead-lettered."""
    sink = SalesforceSink(connection(), TaskMapping())
    standin.state.expire_sessions()
    outcomes = await sink.write([record(A)])
    assert isinstance(outcomes[A], Pause) and "INVALID_SESSION_ID" in outcomes[A].error


async def test_objects_with_an_external_id_are_upserted(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """A mapping onto an External ID field writes with one upsert request, idempotently."""
    mapping = TaskMapping(
        object="Call_Log__c",
        match_field="Conversation_Id__c",
        external_id=True,
        fields={"notes": "Notes__c"},
    )
    sink = SalesforceSink(connection(), mapping)
    assert await sink.write([record(C1)]) == {C1: Done()}
    assert await sink.write([record(C1, notes="later")]) == {C1: Done()}
    logs = [
        r for r in standin.state.org.records.values() if r["attributes"]["type"] == "Call_Log__c"
    ]
    assert [(r["Conversation_Id__c"], r["Notes__c"]) for r in logs] == [(C1, "later")]
    assert sink.requests == 2


async def test_api_usage_is_tracked(standin: StandIn, connection: ConnectionFactory) -> None:
    """The sink reads Sforce-Limit-Info from Salesforce's answers."""
    sink = SalesforceSink(connection(), TaskMapping())
    await sink.write([record(A)])
    assert sink.api_usage == (standin.state.api_usage, standin.state.api_max)
    assert sink.metrics.api_used._value.get() == standin.state.api_usage
    assert sink.metrics.api_max._value.get() == standin.state.api_max
    assert sink.metrics.requests.labels("create")._value.get() == 1


HOSTILE_IDS = [
    "it's",
    "back\\slash\\",
    'say "hi"',
    "line\nbreak\ttab",
    "paren) OR (x",
    "a, b",
    "é-ü-" + "x" * 124,  # the contract's longest: 128 characters
]


async def test_conversation_ids_of_any_characters_are_found_again_not_duplicated(
    connection: ConnectionFactory, standin: StandIn
) -> None:
    """Quoted by Salesforce's escape rules: a second write updates the same Tasks."""
    assert len(HOSTILE_IDS[-1]) == 128
    sink = SalesforceSink(connection(), TaskMapping())
    first = await sink.write([record(c) for c in HOSTILE_IDS])
    assert all(isinstance(o, Done) for o in first.values()), first
    again = await sink.write([record(c, notes="second") for c in HOSTILE_IDS])
    assert all(isinstance(o, Done) for o in again.values()), again
    found = tasks(standin)
    assert sorted(found) == sorted(HOSTILE_IDS)
    assert {t["Description"] for t in found.values()} == {"second"}


async def test_an_org_with_its_own_task_statuses_gets_them() -> None:
    """An org whose Status picklist is Open / Working / Done (restricted, so Completed would
    be refused): the sink reads TaskStatus and writes Done for a call that is over."""
    status = TASK.fields["Status"]
    custom = msgspec.structs.replace(
        status, picklist=("Open", "Working", "Done"), default="Open", restricted=True
    )
    task = ObjectSpec("Task", TASK.key_prefix, TASK.fields | {"Status": custom})
    org = Org([task, *(o for o in VANILLA if o.name != "Task")], closed_task_statuses=("Done",))
    standin = StandIn(StandInState(org=org))
    await standin.start()
    try:
        auth = SessionAuth(standin.instance_url, standin.state.new_session())
        settings = SalesforceSettings(auth=auth, ca_file=str(standin.ca_file))
        link = SalesforceConnection(settings, http=standin_http(standin))
        sink = SalesforceSink(link, TaskMapping())
        assert await sink.write([record(C1)]) == {C1: Done()}
        assert tasks(standin)[C1]["Status"] == "Done"
        link.close()
    finally:
        await standin.close()
