"""The Salesforce sink against the stand-in over HTTPS: batched, idempotent, precise outcomes."""

from __future__ import annotations

from typing import Any

import pytest
from simple_salesforce import Salesforce

from projections.calls import CallRecord
from projections.salesforce import SalesforceSink, soql_string
from projections.sfstandin.org import VANILLA, FieldSpec, ObjectSpec, Org
from projections.sfstandin.server import StandIn, StandInState
from projections.task_mapping import TaskMapping
from projections.worker import Done, Reject, Retry
from tests.projections.conftest import call_record

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


def record(conversation: str, **fields: Any) -> CallRecord:
    return call_record(conversation, **{"notes": "first", **fields})


@pytest.fixture
def standin_state() -> StandInState:
    """An org that also has a custom object with an External ID field."""
    return StandInState(org=Org([*VANILLA, CALL_LOG]))


def tasks(standin: StandIn) -> list[dict[str, Any]]:
    return [r for r in standin.state.org.records.values() if r["attributes"]["type"] == "Task"]


async def test_new_calls_become_tasks_in_two_requests(standin: StandIn, sf: Salesforce) -> None:
    """One query and one collection create for a batch of new calls."""
    sink = SalesforceSink(sf, TaskMapping())
    outcomes = await sink.write([record(f"c{i}") for i in range(5)])
    assert outcomes == {f"c{i}": Done() for i in range(5)}
    assert sorted(t["CallObject"] for t in tasks(standin)) == [f"c{i}" for i in range(5)]
    assert sink.requests == 2


async def test_writing_again_updates_the_same_tasks(standin: StandIn, sf: Salesforce) -> None:
    """Idempotent: a second write (replay, redelivery, late notes) changes, never duplicates."""
    sink = SalesforceSink(sf, TaskMapping())
    await sink.write([record("c1"), record("c2")])
    outcomes = await sink.write([record("c1", notes="notes after the end"), record("c2")])
    assert outcomes == {"c1": Done(), "c2": Done()}
    assert len(tasks(standin)) == 2
    [c1] = [t for t in tasks(standin) if t["CallObject"] == "c1"]
    assert c1["Description"] == "notes after the end" and c1["TaskSubtype"] == "Call"


async def test_mixed_batch_creates_and_updates(standin: StandIn, sf: Salesforce) -> None:
    """Known conversations are updated and new ones created in the same batch."""
    sink = SalesforceSink(sf, TaskMapping())
    await sink.write([record("old")])
    sink.requests = 0
    assert await sink.write([record("old"), record("new")]) == {"old": Done(), "new": Done()}
    assert len(tasks(standin)) == 2 and sink.requests == 3


async def test_large_batches_are_chunked_by_200(standin: StandIn, sf: Salesforce) -> None:
    """450 calls: three chunks, a query and a create each."""
    sink = SalesforceSink(sf, TaskMapping())
    outcomes = await sink.write([record(f"c{i}") for i in range(450)])
    assert len(outcomes) == 450 and all(o == Done() for o in outcomes.values())
    assert sink.requests == 6 and len(tasks(standin)) == 450


async def test_refused_record_is_rejected_and_the_rest_land(
    standin: StandIn, sf: Salesforce
) -> None:
    """A field the org lacks fails that record with Salesforce's error; others are written."""
    sink = SalesforceSink(sf, TaskMapping(fields={"language": "Language__c"}))
    outcomes = await sink.write([record("ok"), record("bad", language="en_US")])
    assert outcomes["ok"] == Done()
    assert isinstance(outcomes["bad"], Reject) and "INVALID_FIELD" in outcomes["bad"].error
    assert [t["CallObject"] for t in tasks(standin)] == ["ok"]


async def test_lock_errors_are_retried(standin: StandIn, sf: Salesforce) -> None:
    """UNABLE_TO_LOCK_ROW is transient."""
    standin.state.faults.lock_next_records = 1
    outcomes = await SalesforceSink(sf, TaskMapping()).write([record("a"), record("b")])
    assert isinstance(outcomes["a"], Retry) and outcomes["b"] == Done()


@pytest.mark.parametrize("fault", ["unavailable", "expired", "limit"])
async def test_whole_request_failures_are_retried(
    standin: StandIn, sf: Salesforce, fault: str
) -> None:
    """503s, expired sessions and the daily limit fail the batch for a later retry."""
    state = standin.state
    if fault == "unavailable":
        state.faults.unavailable()
    elif fault == "expired":
        state.expire_sessions()
    else:
        state.api_max = state.api_usage
    outcomes = await SalesforceSink(sf, TaskMapping()).write([record("a"), record("b")])
    assert all(isinstance(o, Retry) for o in outcomes.values()), outcomes
    assert tasks(standin) == []


async def test_objects_with_an_external_id_are_upserted(standin: StandIn, sf: Salesforce) -> None:
    """A mapping onto an External ID field writes with one upsert request, idempotently."""
    mapping = TaskMapping(
        object="Call_Log__c",
        match_field="Conversation_Id__c",
        external_id=True,
        fields={"notes": "Notes__c"},
    )
    sink = SalesforceSink(sf, mapping)
    assert await sink.write([record("c1")]) == {"c1": Done()}
    assert await sink.write([record("c1", notes="later")]) == {"c1": Done()}
    logs = [
        r for r in standin.state.org.records.values() if r["attributes"]["type"] == "Call_Log__c"
    ]
    assert [(r["Conversation_Id__c"], r["Notes__c"]) for r in logs] == [("c1", "later")]
    assert sink.requests == 2


async def test_api_usage_is_tracked(standin: StandIn, sf: Salesforce) -> None:
    """The sink reads Sforce-Limit-Info from Salesforce's answers."""
    sink = SalesforceSink(sf, TaskMapping())
    await sink.write([record("a")])
    assert sink.api_usage == (standin.state.api_usage, standin.state.api_max)


def test_soql_strings_are_escaped() -> None:
    """Quotes and backslashes in ids cannot break out of the query."""
    assert soql_string("it's\\x") == "'it\\'s\\\\x'"
