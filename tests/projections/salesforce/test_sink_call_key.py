"""One Task per call by construction: with the kit's unique External ID field on Activity
(``Softphone_Call_Id__c``), every Task is created carrying its conversation id, so the org
refuses a second one (``DUPLICATE_VALUE``) however late a slow first insert commits."""

from __future__ import annotations

from typing import Any

import pytest

from projections.calls.fold import CallRecord
from projections.outcomes import Done
from projections.salesforce import org_client
from projections.salesforce.sink import SalesforceSink
from projections.salesforce.standin.org import Org
from projections.salesforce.standin.schema import CALL_ID_FIELD, WITH_KIT, RecordRefused
from projections.salesforce.standin.server import StandIn, StandInState
from projections.salesforce.task_mapping import TaskMapping, task_fields
from tests.helpers import (
    ConnectionFactory,
    call_record,
    conversation_ids,
    late_inserts_committed,
    tasks,
)

KEYED = TaskMapping(key_field=CALL_ID_FIELD)


@pytest.fixture
def standin_state() -> StandInState:
    """An org with the kit deployed."""
    return StandInState(org=Org(WITH_KIT))


def records(ids: list[str], **fields: Any) -> list[CallRecord]:
    return [call_record(c, **{"notes": "Booked two nights", **fields}) for c in ids]


def test_a_task_carries_its_conversation_in_the_key_field() -> None:
    fields = task_fields(call_record("c1"), KEYED, creating=True)
    assert fields[CALL_ID_FIELD] == fields["CallObject"] == "c1"


def test_the_key_field_is_only_for_tasks_written_by_create() -> None:
    """An upsert mapping or another object has its own way to stay single."""
    with pytest.raises(ValueError, match="key_field is for Task"):
        TaskMapping(object="Call__c", key_field="Call_Id__c")


def test_the_stand_in_refuses_a_second_record_with_a_unique_value() -> None:
    """What a real org does with a unique field, whoever can see the first record."""
    org = Org(WITH_KIT)
    first = org.create("Task", {"Subject": "Call", CALL_ID_FIELD: "c1"})
    with pytest.raises(RecordRefused) as info:
        org.create("Task", {"Subject": "Call", CALL_ID_FIELD: "c1"})
    (error,) = info.value.errors
    assert (error.statusCode, error.fields) == ("DUPLICATE_VALUE", [CALL_ID_FIELD])
    assert first in error.message


async def test_a_create_whose_first_insert_commits_after_the_client_gave_up_makes_one_task(
    standin: StandIn, connection: ConnectionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow trigger: the first create commits after the client's timeout and is never
    answered; the sink sends the create again at once (no lookup to race), and the late
    insert meets the unique key: one Task per call, with the notes."""
    monkeypatch.setattr(org_client, "REQUEST_TIMEOUT", 0.3)
    standin.state.faults.late_next_creates = 1
    standin.state.faults.late_seconds = 0.8
    ids = conversation_ids(10)
    sink = SalesforceSink(connection(), KEYED, retry_base=0.01)
    assert await sink.write(records(ids)) == {c: Done() for c in ids}
    assert standin.state.late_pending == 1  # written before the first insert committed
    await late_inserts_committed(standin)
    found = tasks(standin)
    assert sorted(found) == sorted(ids)
    assert all(t["Description"] == "Booked two nights" for t in found.values())


async def test_a_late_insert_that_commits_before_the_retry_turns_the_retry_into_an_update(
    standin: StandIn, connection: ConnectionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The late insert commits first: the sink's second create is refused as a duplicate,
    and the Task is updated by its key (no TaskSubtype, which no update may carry)."""
    monkeypatch.setattr(org_client, "REQUEST_TIMEOUT", 0.2)
    standin.state.faults.late_next_creates = 1
    standin.state.faults.late_seconds = 0.3
    ids = conversation_ids(4)
    sink = SalesforceSink(connection(), KEYED, retry_base=1.0)  # retries after the commit
    assert await sink.write(records(ids, notes="Called back")) == {c: Done() for c in ids}
    assert standin.state.late_pending == 0
    found = tasks(standin)
    assert sorted(found) == sorted(ids)
    assert {t["Description"] for t in found.values()} == {"Called back"}
    upserts = [p for m, p in standin.state.requests if m == "PATCH" and CALL_ID_FIELD in p]
    assert upserts, "the duplicates were updated by key"
