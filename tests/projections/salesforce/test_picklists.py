"""Disposition codes managed in Salesforce: read through describe, handed out in welcomes."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis

from projections.salesforce.picklists import (
    DispositionRefresher,
    FieldNotAPicklist,
    picklist_values,
)
from projections.salesforce.standin.org import Org
from projections.salesforce.standin.schema import CONTACT, LEAD, TASK, FieldSpec, ObjectSpec
from projections.salesforce.standin.server import StandInState
from relay.log import keys
from relay.settings import Partner
from tests.helpers import PARTNER, PARTNERS, AgentFactory, ConnectionFactory, RelayFactory

CODES = ("Sold", "Call back", "No answer")
TASK_WITH_DISPOSITION = ObjectSpec(
    "Task",
    TASK.key_prefix,
    {
        **TASK.fields,
        "Disposition__c": FieldSpec(
            name="Disposition__c", label="Disposition", type="picklist", picklist=CODES
        ),
    },
)
MANAGED = {
    PARTNER: msgspec.structs.replace(PARTNERS[PARTNER], dispositionField="Task.Disposition__c")
}


@pytest.fixture
def standin_state() -> StandInState:
    """An org whose Task has a custom Disposition__c picklist."""
    return StandInState(org=Org([TASK_WITH_DISPOSITION, CONTACT, LEAD]))


def describe(*fields: dict[str, Any]) -> dict[str, Any]:
    return {"name": "Task", "fields": list(fields)}


def test_only_active_values_count_in_salesforce_order() -> None:
    """Deactivated values are history, not choices."""
    field = {
        "name": "Disposition__c",
        "type": "picklist",
        "picklistValues": [
            {"value": "Sold", "active": True},
            {"value": "Old code", "active": False},
            {"value": "No answer", "active": True},
        ],
    }
    assert picklist_values(describe(field), "Disposition__c") == ["Sold", "No answer"]


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ((), "Task has no field Disposition__c"),
        (({"name": "Disposition__c", "type": "string"},), "Task.Disposition__c is a string"),
    ],
)
def test_a_field_that_is_no_picklist_is_refused(
    fields: tuple[dict[str, Any], ...], problem: str
) -> None:
    """A typo or a text field is named, not read as an empty list."""
    with pytest.raises(FieldNotAPicklist, match=problem):
        picklist_values(describe(*fields), "Disposition__c")


async def test_codes_from_salesforce_reach_the_welcome(
    connection: ConnectionFactory,
    redis_client: aioredis.Redis,
    start_relay: RelayFactory,
    open_agent: AgentFactory,
) -> None:
    """The worker reads the picklist; a relay's next welcome hands those codes out."""
    refresher = DispositionRefresher(connection(), redis_client, MANAGED)
    assert await refresher.refresh() == {PARTNER: list(CODES)}
    relay = await start_relay(partners=MANAGED)
    agent = await open_agent(relay)
    assert agent.welcome["config"]["disposition"] == list(CODES)


async def test_a_wrong_field_keeps_the_partners_file_codes(
    connection: ConnectionFactory,
    redis_client: aioredis.Redis,
    start_relay: RelayFactory,
    open_agent: AgentFactory,
) -> None:
    """Task.Nope__c does not exist: nothing stored, the file's list stays in use."""
    wrong = {PARTNER: msgspec.structs.replace(MANAGED[PARTNER], dispositionField="Task.Nope__c")}
    assert await DispositionRefresher(connection(), redis_client, wrong).refresh() == {}
    assert not await redis_client.exists(keys.disposition_codes(PARTNER))
    relay = await start_relay(partners=wrong)
    agent = await open_agent(relay)
    assert agent.welcome["config"]["disposition"] == ["code1", "code2"]


def test_partners_file_names_the_field() -> None:
    """dispositionField is Object.Field."""
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(
            {"businessSegmentId": "s", "channelOriginId": "c", "dispositionField": "Disposition"},
            Partner,
        )
