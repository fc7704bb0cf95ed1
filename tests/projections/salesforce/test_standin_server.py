"""The stand-in over real HTTPS, driven by simple-salesforce's own HTTP code (no mocks)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
import requests
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from projections.salesforce.standin.schema import make_id
from projections.salesforce.standin.server import StandIn
from tests.helpers import ClientFactory

T = TypeVar("T")
CALL = {
    "TaskSubtype": "Call",
    "CallType": "Inbound",
    "CallObject": "conv-1",
    "Subject": "Inbound call from +18883973342",
    "ActivityDate": "2026-11-24",
}


async def call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """simple-salesforce is synchronous: run it off the event loop, as the sink will."""
    return await asyncio.to_thread(function, *args, **kwargs)


async def test_create_then_read_a_call_task(standin: StandIn, client: ClientFactory) -> None:
    """A Task created through simple-salesforce is stored with the org's defaults."""
    sf = client()
    created = await call(sf.Task.create, CALL)
    assert created["success"] is True and created["id"].startswith("00T")
    record = await call(sf.Task.get, created["id"])
    assert (record["CallObject"], record["Status"]) == ("conv-1", "Not Started")


async def test_update_answers_204(standin: StandIn, client: ClientFactory) -> None:
    """PATCH on a record updates it."""
    sf = client()
    task_id = (await call(sf.Task.create, CALL))["id"]
    assert await call(sf.Task.update, task_id, {"Status": "Completed"}) == 204
    assert (await call(sf.Task.get, task_id))["Status"] == "Completed"


async def test_query_finds_tasks_by_call_object(standin: StandIn, client: ClientFactory) -> None:
    """The sink's matching query works through sf.query."""
    sf = client()
    task_id = (await call(sf.Task.create, CALL))["id"]
    result = await call(sf.query, "SELECT Id, CallObject FROM Task WHERE CallObject IN ('conv-1')")
    assert result["totalSize"] == 1 and result["records"][0]["Id"] == task_id


async def test_collection_create_lands_the_valid_and_reports_the_refused(
    standin: StandIn, client: ClientFactory
) -> None:
    """allOrNone=false: one result per record, in order; the bad one carries its error."""
    sf = client()
    records = [{"attributes": {"type": "Task"}, **CALL, "CallObject": f"c{i}"} for i in range(3)]
    records[1]["CallType"] = "Sideways"
    results = await call(
        sf.restful,
        "composite/sobjects",
        method="POST",
        json={"allOrNone": False, "records": records},
    )
    assert [r["success"] for r in results] == [True, False, True]
    assert results[1]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert len(standin.state.org.records) == 2


async def test_collection_all_or_none_rolls_back(standin: StandIn, client: ClientFactory) -> None:
    """allOrNone=true: one failure and nothing lands."""
    sf = client()
    records = [
        {"attributes": {"type": "Task"}, **CALL},
        {"attributes": {"type": "Task"}, **CALL, "Bogus": 1},
    ]
    results = await call(
        sf.restful,
        "composite/sobjects",
        method="POST",
        json={"allOrNone": True, "records": records},
    )
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[1]["errors"][0]["statusCode"] == "INVALID_FIELD"
    assert standin.state.org.records == {}


async def test_collection_update(standin: StandIn, client: ClientFactory) -> None:
    """PATCH composite/sobjects updates records by Id."""
    sf = client()
    task_id = (await call(sf.Task.create, CALL))["id"]
    results = await call(
        sf.restful,
        "composite/sobjects",
        method="PATCH",
        json={"records": [{"attributes": {"type": "Task"}, "Id": task_id, "Status": "Completed"}]},
    )
    assert results == [{"id": task_id, "success": True, "errors": []}]


async def test_more_than_200_records_are_refused(standin: StandIn, client: ClientFactory) -> None:
    """sObject Collections take at most 200 records."""
    sf = client()
    records = [{"attributes": {"type": "Task"}, **CALL}] * 201
    with pytest.raises(SalesforceMalformedRequest) as info:
        await call(sf.restful, "composite/sobjects", method="POST", json={"records": records})
    assert info.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


async def test_invalid_field_is_a_400_with_salesforce_error_body(
    standin: StandIn, client: ClientFactory
) -> None:
    """Errors are Salesforce's JSON list with errorCode and message."""
    sf = client()
    with pytest.raises(SalesforceMalformedRequest) as info:
        await call(sf.Task.create, {**CALL, "Language__c": "en_US"})
    assert info.value.content == [
        {
            "message": "No such column 'Language__c' on sobject of type Task",
            "errorCode": "INVALID_FIELD",
            "fields": ["Language__c"],
        }
    ]


async def test_missing_record_is_404(standin: StandIn, client: ClientFactory) -> None:
    """An unknown id is NOT_FOUND."""
    with pytest.raises(SalesforceResourceNotFound):
        await call(client().Task.get, make_id("00T", 999))


async def test_expired_session_is_401_invalid_session_id(
    standin: StandIn, client: ClientFactory
) -> None:
    """After the sessions expire, simple-salesforce raises SalesforceExpiredSession."""
    sf = client()
    standin.state.expire_sessions()
    with pytest.raises(SalesforceExpiredSession) as info:
        await call(sf.Task.create, CALL)
    assert info.value.content[0]["errorCode"] == "INVALID_SESSION_ID"


async def test_injected_503_then_recovery(standin: StandIn, client: ClientFactory) -> None:
    """A 503 SERVER_UNAVAILABLE is served once, then requests succeed again."""
    sf = client()
    standin.state.faults.unavailable()
    with pytest.raises(SalesforceGeneralError) as info:
        await call(sf.Task.create, CALL)
    assert info.value.status == 503
    assert (await call(sf.Task.create, CALL))["success"] is True


async def test_lock_errors_are_per_record(standin: StandIn, client: ClientFactory) -> None:
    """UNABLE_TO_LOCK_ROW fails the next record; the others land."""
    sf = client()
    standin.state.faults.lock_next_records = 1
    results = await call(
        sf.restful,
        "composite/sobjects",
        method="POST",
        json={"records": [{"attributes": {"type": "Task"}, **CALL}] * 2},
    )
    assert [r["success"] for r in results] == [False, True]
    assert results[0]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"


async def test_daily_limit_is_403_request_limit_exceeded(
    standin: StandIn, client: ClientFactory
) -> None:
    """Past the org's daily limit every request is refused."""
    sf = client()
    standin.state.api_max = standin.state.api_usage + 1
    await call(sf.Task.create, CALL)
    with pytest.raises(SalesforceRefusedRequest) as info:
        await call(sf.Task.create, CALL)
    assert info.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"


async def test_every_response_reports_api_usage(standin: StandIn, client: ClientFactory) -> None:
    """Sforce-Limit-Info is on every response; simple-salesforce parses it."""
    task = client().Task  # simple-salesforce keeps the usage on the SFType it used
    await call(task.create, CALL)
    await call(task.create, CALL)
    usage = task.api_usage["api-usage"]
    assert (usage.used, usage.total) == (2, standin.state.api_max)


async def test_describe_reports_picklists_and_restrictions(
    standin: StandIn, client: ClientFactory
) -> None:
    """describe tells restricted picklist values and what may be updated."""
    described = await call(client().Task.describe)
    fields = {f["name"]: f for f in described["fields"]}
    assert fields["CallType"]["restrictedPicklist"] is True
    assert [v["value"] for v in fields["CallType"]["picklistValues"]] == [
        "Internal",
        "Inbound",
        "Outbound",
    ]
    assert fields["TaskSubtype"]["updateable"] is False


async def test_phone_search_ignores_formatting(standin: StandIn, client: ClientFactory) -> None:
    """SOSL IN PHONE FIELDS finds numbers however they were typed, with the fields asked for."""
    org = standin.state.org
    smith = org.create("Contact", {"LastName": "Smith", "MobilePhone": "(888) 397-3342"})
    org.create("Contact", {"LastName": "Other", "Phone": "+1 800 555 0100"})
    lead = org.create("Lead", {"LastName": "Jones", "Company": "Acme", "Phone": "888.397.3342"})
    found = await call(
        client().search,
        "FIND {18883973342} IN PHONE FIELDS RETURNING Contact(Id, MobilePhone), Lead(Id)",
    )
    assert [(r["attributes"]["type"], r["Id"]) for r in found["searchRecords"]] == [
        ("Contact", smith),
        ("Lead", lead),
    ]
    assert found["searchRecords"][0]["MobilePhone"] == "(888) 397-3342"


async def test_unsupported_search_is_malformed_search(client: ClientFactory) -> None:
    """Anything but a phone search is refused with MALFORMED_SEARCH, not silently empty."""
    with pytest.raises(SalesforceMalformedRequest) as info:
        await call(client().search, "FIND {Smith} IN NAME FIELDS")
    assert info.value.content[0]["errorCode"] == "MALFORMED_SEARCH"


async def test_logins_cost_no_api_request(standin: StandIn, client: ClientFactory) -> None:
    """A failed OAuth login answers 400 with error/error_description, and uses no budget."""
    before = standin.state.api_usage
    answer = await call(
        requests.post,
        f"{standin.instance_url}/services/oauth2/token",
        data={"grant_type": "password", "client_id": "nobody"},
        verify=str(standin.ca_file),
    )
    assert (answer.status_code, answer.json()) == (
        400,
        {"error": "invalid_client_id", "error_description": "client identifier invalid"},
    )
    assert standin.state.api_usage == before


async def test_a_request_line_over_16384_bytes_is_414(
    standin: StandIn, client: ClientFactory
) -> None:
    """URI plus headers over Salesforce's 16,384 bytes: 414, not aiohttp's own 400."""
    sf = client()
    keys = ", ".join(f"'{'x' * 120}-{i}'" for i in range(200))
    with pytest.raises(SalesforceGeneralError) as info:
        await call(sf.query, f"SELECT Id FROM Task WHERE CallObject IN ({keys})")
    assert info.value.status == 414


async def test_a_request_line_just_under_the_limit_is_answered(
    standin: StandIn, client: ClientFactory
) -> None:
    """A 12 KB query URL (what the sink sends at most) is served."""
    sf = client()
    keys = ", ".join(f"'{'x' * 120}-{i}'" for i in range(80))
    assert (await call(sf.query, f"SELECT Id FROM Task WHERE CallObject IN ({keys})"))["done"]


async def test_a_wrong_json_type_fails_the_whole_collection_request(
    standin: StandIn, client: ClientFactory
) -> None:
    """As on a real org: 400 JSON_PARSER_ERROR for the request, and nothing is written."""
    sf = client()
    records = [{"attributes": {"type": "Task"}, **CALL, "CallObject": f"c{i}"} for i in range(3)]
    records[2]["CallDurationInSeconds"] = "three minutes"
    with pytest.raises(SalesforceMalformedRequest) as info:
        await call(
            sf.restful,
            "composite/sobjects",
            method="POST",
            json={"allOrNone": False, "records": records},
        )
    assert info.value.content[0]["errorCode"] == "JSON_PARSER_ERROR"
    assert "at [line:1, column:" in info.value.content[0]["message"]
    assert standin.state.org.records == {}


async def test_a_dropped_write_commits_and_the_client_sees_a_connection_error(
    standin: StandIn, client: ClientFactory
) -> None:
    """``drop_next_creates``: the Tasks exist, the answer never arrives."""
    sf = client()
    standin.state.faults.drop_next_creates = 1
    records = [{"attributes": {"type": "Task"}, **CALL, "CallObject": f"c{i}"} for i in range(2)]
    with pytest.raises(requests.ConnectionError):
        await call(
            sf.restful,
            "composite/sobjects",
            method="POST",
            json={"allOrNone": False, "records": records},
        )
    assert len(standin.state.org.records) == 2


async def test_query_all_returns_archived_tasks_that_query_hides(
    standin: StandIn, client: ClientFactory
) -> None:
    """``sf.query`` misses a Task archived after a year; ``include_deleted`` finds it."""
    sf = client()
    task_id = (await call(sf.Task.create, CALL))["id"]
    standin.state.org.archive(task_id)
    soql = "SELECT Id, IsDeleted FROM Task WHERE CallObject IN ('conv-1')"
    assert (await call(sf.query, soql))["totalSize"] == 0
    assert (await call(sf.query_all, soql, include_deleted=True))["records"][0]["Id"] == task_id


async def test_too_many_requests_in_flight_is_the_concurrent_limit(
    standin: StandIn, client: ClientFactory
) -> None:
    """Beyond ``concurrent_max`` requests at once: 403 REQUEST_LIMIT_EXCEEDED naming
    ConcurrentRequests (the daily quota's message is different)."""
    sf = client()
    standin.state.faults.concurrent_max = 1
    standin.state.faults.delay_seconds = 0.3
    answers = await asyncio.gather(
        call(sf.query, "SELECT Id FROM Task"),
        call(sf.query, "SELECT Id FROM Task"),
        return_exceptions=True,
    )
    refused = [a for a in answers if isinstance(a, SalesforceRefusedRequest)]
    assert len(refused) == 1
    assert "ConcurrentRequests" in refused[0].content[0]["message"]


async def test_a_lock_raised_in_a_trigger_arrives_wrapped(
    standin: StandIn, client: ClientFactory
) -> None:
    """CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY with UNABLE_TO_LOCK_ROW in the message."""
    sf = client()
    standin.state.faults.trigger_lock_next_records = 1
    records = [{"attributes": {"type": "Task"}, **CALL}]
    (result,) = await call(
        sf.restful, "composite/sobjects", method="POST", json={"records": records}
    )
    error = result["errors"][0]
    assert error["statusCode"] == "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY"
    assert "UNABLE_TO_LOCK_ROW" in error["message"]
