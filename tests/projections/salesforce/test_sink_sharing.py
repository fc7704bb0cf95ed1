"""Tasks under activity sharing: a call's Task is owned by its agent and related to no record,
so the integration user sees it only from a role above the agent's (or with Modify All Data).
The stand-in applies that rule to the session's user; these tests show what each setup does
to a call written twice (its end, then its notes)."""

from __future__ import annotations

import pytest

from projections.outcomes import Done, Reject
from projections.salesforce.connect import SessionAuth
from projections.salesforce.sink import SalesforceSink
from projections.salesforce.standin.access import ActivitySharing
from projections.salesforce.standin.org import Org
from projections.salesforce.standin.schema import CALL_ID_FIELD, WITH_KIT
from projections.salesforce.standin.server import StandIn, StandInState
from projections.salesforce.task_mapping import TaskMapping
from tests.helpers import ConnectionFactory, call_record, conversation_ids, standin_user

(CALL,) = conversation_ids(1)


@pytest.fixture
def standin_state() -> StandInState:
    """An org with the kit, an agent under the support lead, and sharing on."""
    org = Org(WITH_KIT)
    org.sharing = ActivitySharing(parents={"Agent": "Support Lead", "Support Lead": None})
    return StandInState(org=org)


def sink(
    standin: StandIn, connection: ConnectionFactory, role: str | None, mapping: TaskMapping
) -> tuple[SalesforceSink, str]:
    """A sink running as an integration user with ``role``, and an agent who owns Tasks."""
    agent = standin_user(standin, "agent", "Agent")
    integration = standin_user(standin, "integration", role)
    auth = SessionAuth(standin.instance_url, standin.state.new_session(integration))
    return SalesforceSink(connection(auth), mapping), agent


def call_tasks(standin: StandIn) -> list[dict[str, object]]:
    return [r for r in standin.state.org.records.values() if r.get("CallObject") == CALL]


def test_a_task_related_to_nothing_is_seen_by_its_owner_and_the_roles_above() -> None:
    sharing = ActivitySharing(
        roles={"005A": "Agent", "005L": "Lead", "005X": "Other"},
        parents={"Agent": "Lead", "Lead": None, "Other": None},
        modify_all={"005V"},
    )
    task = {"attributes": {"type": "Task"}, "OwnerId": "005A"}
    assert [sharing.sees(u, task) for u in ("005A", "005L", "005X", "005V")] == [
        True,
        True,
        False,
        True,
    ]
    assert sharing.sees("005X", {**task, "WhoId": "003C"})  # goes with its Contact


async def test_without_the_key_an_integration_user_below_sees_nothing_and_duplicates(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """The issue's finding: no role above the agent, no key field: the notes cannot find the
    Task the end of the call made, and create a second one."""
    writer, agent = sink(standin, connection, None, TaskMapping())
    assert await writer.write([call_record(CALL, ownerId=agent)]) == {CALL: Done()}
    assert await writer.write([call_record(CALL, ownerId=agent, notes="Refund")]) == {CALL: Done()}
    assert len(call_tasks(standin)) == 2


async def test_with_the_key_a_user_who_cannot_see_the_task_gets_a_reason_not_a_duplicate(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """The key field refuses the second Task; the update it turns into is refused by
    sharing, and the call is rejected with what to change."""
    writer, agent = sink(standin, connection, None, TaskMapping(key_field=CALL_ID_FIELD))
    assert await writer.write([call_record(CALL, ownerId=agent)]) == {CALL: Done()}
    outcome = (await writer.write([call_record(CALL, ownerId=agent, notes="Refund")]))[CALL]
    assert isinstance(outcome, Reject)
    assert "INSUFFICIENT_ACCESS_OR_READONLY" in outcome.error
    assert "role above the agents'" in outcome.error
    assert len(call_tasks(standin)) == 1


@pytest.mark.parametrize("key_field", [None, CALL_ID_FIELD], ids=["lookup", "key"])
async def test_an_integration_user_above_the_agents_updates_the_one_task(
    standin: StandIn, connection: ConnectionFactory, key_field: str | None
) -> None:
    """The documented setup (a role above the agents'): the notes update the Task, with or
    without the key field."""
    writer, agent = sink(standin, connection, "Support Lead", TaskMapping(key_field=key_field))
    assert await writer.write([call_record(CALL, ownerId=agent)]) == {CALL: Done()}
    assert await writer.write([call_record(CALL, ownerId=agent, notes="Refund")]) == {CALL: Done()}
    (task,) = call_tasks(standin)
    assert task["Description"] == "Refund" and task["OwnerId"] == agent
