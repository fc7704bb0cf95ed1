"""New Tasks are linked to their caller (WhoId) through one phone search per batch, cached."""

from __future__ import annotations

from typing import Any

from projections.outcomes import Done
from projections.salesforce.sink import SalesforceSink
from projections.salesforce.standin.server import StandIn
from projections.salesforce.task_mapping import TaskMapping
from tests.helpers import ConnectionFactory, call_record, conversation_ids

(C1, SHARED, STRANGER) = conversation_ids(3)


def task(standin: StandIn, conversation: str) -> dict[str, Any]:
    [found] = [r for r in standin.state.org.records.values() if r.get("CallObject") == conversation]
    return found


def searches(standin: StandIn) -> int:
    return sum(1 for _, path in standin.state.requests if path.endswith("/search/"))


async def test_an_inbound_call_is_linked_to_the_contact_with_that_number(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """The caller's ANI matches a Contact's phone, however it is formatted there."""
    org = standin.state.org
    alice = org.create("Contact", {"LastName": "Smith", "Phone": "(888) 397-3342"})
    sink = SalesforceSink(connection(), TaskMapping())
    assert await sink.write([call_record(C1, callerNumber="+18883973342")]) == {C1: Done()}
    assert task(standin, C1)["WhoId"] == alice


async def test_an_outbound_call_is_linked_to_the_lead_dialled(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """Outbound, the dialled number names the person; a Lead when no Contact has it."""
    lead = standin.state.org.create(
        "Lead", {"LastName": "Jones", "Company": "Acme", "Phone": "+44 20 7946 0958"}
    )
    record = call_record(C1, direction="outbound", callerNumber=None, dialledNumber="+442079460958")
    await SalesforceSink(connection(), TaskMapping()).write([record])
    assert task(standin, C1)["WhoId"] == lead


async def test_an_unknown_or_ambiguous_caller_is_linked_to_nobody(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """No match, or two Contacts with one number: the Task is written without WhoId."""
    org = standin.state.org
    for name in ("A", "B"):
        org.create("Contact", {"LastName": name, "Phone": "+1 800 555 0100"})
    sink = SalesforceSink(connection(), TaskMapping())
    outcomes = await sink.write(
        [
            call_record(SHARED, callerNumber="+18005550100"),
            call_record(STRANGER, callerNumber="+18005550199"),
        ]
    )
    assert outcomes == {SHARED: Done(), STRANGER: Done()}
    assert task(standin, SHARED).get("WhoId") is None
    assert task(standin, STRANGER).get("WhoId") is None


async def test_a_batch_costs_one_search_and_a_repeat_caller_none(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """Many callers, one search; the same callers again (cached, misses too), no search."""
    sink = SalesforceSink(connection(), TaskMapping())
    numbers = [f"+1800555{i:04d}" for i in range(60)]
    first, second = conversation_ids(60), conversation_ids(60)
    await sink.write([call_record(c, callerNumber=n) for c, n in zip(first, numbers, strict=True)])
    assert searches(standin) == 1
    await sink.write([call_record(c, callerNumber=n) for c, n in zip(second, numbers, strict=True)])
    assert searches(standin) == 1


async def test_updates_do_not_search(standin: StandIn, connection: ConnectionFactory) -> None:
    """WhoId is set when the Task is created; later writes leave it as it is."""
    contact = standin.state.org.create("Contact", {"LastName": "Smith", "Phone": "8883973342"})
    sink = SalesforceSink(connection(), TaskMapping())
    await sink.write([call_record(C1)])
    before = searches(standin)
    await sink.write([call_record(C1, notes="later")])
    assert searches(standin) == before
    assert task(standin, C1)["WhoId"] == contact


async def test_matching_can_be_turned_off(standin: StandIn, connection: ConnectionFactory) -> None:
    """match_callers = false in the mapping file: no search, no WhoId."""
    standin.state.org.create("Contact", {"LastName": "Smith", "Phone": "8883973342"})
    await SalesforceSink(connection(), TaskMapping(match_callers=False)).write([call_record(C1)])
    assert searches(standin) == 0 and task(standin, C1).get("WhoId") is None


async def test_an_answer_cut_at_the_row_limit_is_searched_again_in_halves(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """A switchboard number shared by 2,000 Contacts fills the search's 2,000 rows, so the
    other caller's Contact may be missing from it: the numbers are searched again apart, the
    other caller is linked and the switchboard (ambiguous) is not."""
    org = standin.state.org
    for index in range(2_000):
        org.create("Contact", {"LastName": f"Desk {index}", "Phone": "+1 800 555 0100"})
    alice = org.create("Contact", {"LastName": "Smith", "Phone": "(888) 397-3342"})
    sink = SalesforceSink(connection(), TaskMapping())
    outcomes = await sink.write(
        [
            call_record(SHARED, callerNumber="+18005550100"),
            call_record(C1, callerNumber="+18883973342"),
        ]
    )
    assert outcomes == {SHARED: Done(), C1: Done()}
    assert task(standin, C1)["WhoId"] == alice
    assert task(standin, SHARED).get("WhoId") is None
    assert searches(standin) == 3


async def test_a_converted_lead_is_not_linked_to_a_new_task(
    standin: StandIn, connection: ConnectionFactory
) -> None:
    """Converted Leads are left out of the search: a number only a converted Lead has links
    nobody, and one that its Contact has too links the Contact."""
    org = standin.state.org
    org.create(
        "Lead",
        {"LastName": "Jones", "Company": "Acme", "Phone": "+1 888 397 3342", "IsConverted": True},
    )
    contact = org.create("Contact", {"LastName": "Jones", "Phone": "(888) 397-3342"})
    alone = org.create(
        "Lead",
        {"LastName": "Old", "Company": "Gone", "Phone": "+1 800 555 0142", "IsConverted": True},
    )
    sink = SalesforceSink(connection(), TaskMapping())
    records = [
        call_record(C1, callerNumber="+18883973342"),
        call_record(STRANGER, callerNumber="+18005550142"),
    ]
    assert await sink.write(records) == {C1: Done(), STRANGER: Done()}
    assert task(standin, C1)["WhoId"] == contact
    assert task(standin, STRANGER).get("WhoId") is None
    assert alone not in {t.get("WhoId") for t in org.records.values()}
