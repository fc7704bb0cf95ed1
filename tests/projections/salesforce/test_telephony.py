"""Salesforce Voice's Telephony Integration API: our client against the stand-in, which checks
tokens and bodies as the API's pages say and fails as told. Real HTTPS, real RS256 keys and
certificates, simple-salesforce's SOQL for the lookups."""

from __future__ import annotations

import asyncio
import ssl
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jwt
import msgspec
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from simple_salesforce import Salesforce

from projections.salesforce.standin.org import Org
from projections.salesforce.standin.schema import WITH_VOICE
from projections.salesforce.standin.server import StandIn, StandInState
from projections.salesforce.telephony import (
    CreateInDoubt,
    Participant,
    TelephonyClient,
    TelephonyError,
    VoiceCallCreate,
)
from tests.certificates import org_certificate

ORG_ID = "00D5g0000000001EAA"
CALL_CENTER = "ACME_Voice"
CALLER = "+18883973342"


def pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


KEY, CERTIFICATE = org_certificate()
"""The contact center's key, and the self-signed certificate the admin uploads."""


@pytest.fixture
def standin_state() -> StandInState:
    state = StandInState(org=Org(WITH_VOICE))
    state.telephony.org_id = ORG_ID
    state.telephony.certificates[CALL_CENTER] = CERTIFICATE.encode()
    return state


def trusting(standin: StandIn) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(standin.ca_file))


OPENED: list[TelephonyClient] = []


@pytest.fixture(autouse=True)
async def closed_clients() -> AsyncIterator[None]:
    """Every client a test opened is closed after it (their connections are kept open)."""
    yield
    while OPENED:
        await OPENED.pop().close()


def a_client(standin: StandIn, key: rsa.RSAPrivateKey = KEY) -> TelephonyClient:
    OPENED.append(
        client := TelephonyClient(
            standin.instance_url + "/telephony/v1",
            org_id=ORG_ID,
            call_center=CALL_CENTER,
            private_key=pem(key),
            ssl_context=trusting(standin),
            retry_delay=0.01,
        )
    )
    return client


def an_inbound_call(key: str | None = None, **extra: Any) -> VoiceCallCreate:
    return VoiceCallCreate(
        callCenterApiName=CALL_CENTER,
        vendorCallKey=key or str(uuid.uuid4()),
        to="+442079460000",
        from_=CALLER,
        startTime="2026-12-03T15:00:00Z",
        participants=[Participant(CALLER)],
        **extra,
    )


async def voice_calls(sf: Salesforce, key: str) -> list[dict[str, Any]]:
    """The VoiceCalls with this key, through simple-salesforce's SOQL (in a thread: the
    stand-in answers on this loop)."""
    soql = f"SELECT Id, CallDisposition, Notes__c FROM VoiceCall WHERE VendorCallKey = '{key}'"
    return list((await asyncio.to_thread(sf.query, soql))["records"])


async def test_an_inbound_call_makes_one_voice_call_found_by_its_key(
    standin: StandIn, sf: Salesforce
) -> None:
    call = an_inbound_call()
    created = await a_client(standin).create(call)
    record = standin.state.org.records[created.voiceCallId]
    assert (record["CallType"], record["FromPhoneNumber"], record["CallDisposition"]) == (
        "Inbound",
        CALLER,
        "new",
    )
    assert [r["Id"] for r in await voice_calls(sf, call.vendorCallKey)] == [created.voiceCallId]


async def test_the_end_of_a_call_writes_its_disposition_and_notes(
    standin: StandIn, sf: Salesforce
) -> None:
    """One PATCH by vendorCallKey after the call: ended, with the kit's fields."""
    call = an_inbound_call()
    client = a_client(standin)
    await client.create(call)
    attributes = msgspec.json.encode({"Disposition__c": "code1", "Notes__c": "Refund issued"})
    await client.update(
        call.vendorCallKey,
        {"endTime": "2026-12-03T15:03:04Z", "callAttributes": attributes.decode()},
    )
    [record] = await voice_calls(sf, call.vendorCallKey)
    assert (record["CallDisposition"], record["Notes__c"]) == ("completed", "Refund issued")


async def test_call_attributes_the_org_lacks_still_make_the_record_with_an_error(
    standin: StandIn,
) -> None:
    attributes = msgspec.json.encode({"Notes__c": "n", "Mood__c": "calm"}).decode()
    created = await a_client(standin).create(an_inbound_call(callAttributes=attributes))
    assert created.errors == ["No such column 'Mood__c' on entity 'VoiceCall'"]
    assert standin.state.org.records[created.voiceCallId]["Notes__c"] == "n"


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": ORG_ID, "sub": CALL_CENTER, "iat": now, "exp": now + 300}
    return {k: v for k, v in (base | changes).items() if v is not None}


BAD_TOKENS = {
    "signed by another key": (
        lambda: jwt.encode(claims(), pem(org_certificate()[0]), "RS256"),
        "Signature",
    ),
    "HS256": (
        lambda: jwt.encode(claims(), "a shared secret of 32 bytes or more", "HS256"),
        "not RS256",
    ),
    "expired": (
        lambda: jwt.encode(
            claims(iat=int(time.time()) - 900, exp=int(time.time()) - 60), pem(KEY), "RS256"
        ),
        "Expired",
    ),
    "a day and more": (
        lambda: jwt.encode(claims(exp=int(time.time()) + 25 * 3600), pem(KEY), "RS256"),
        "more than 24 hours",
    ),
    "another org": (lambda: jwt.encode(claims(iss="00D000000000002"), pem(KEY), "RS256"), "Issuer"),
    "no iat": (lambda: jwt.encode(claims(iat=None), pem(KEY), "RS256"), "iat"),
    "another audience": (
        lambda: jwt.encode(claims(aud="https://example.com"), pem(KEY), "RS256"),
        "audience",
    ),
    "an unknown contact center": (
        lambda: jwt.encode(claims(sub="Other_CC"), pem(KEY), "RS256"),
        "no certificate",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
async def test_a_bad_token_is_refused_and_nothing_is_made(standin: StandIn, case: str) -> None:
    make, reason = BAD_TOKENS[case]
    status, body = await post(standin, make(), msgspec.json.encode(an_inbound_call()))
    assert status == 401 and body["errorCode"] == "INVALID_AUTH" and reason in body["message"]
    assert standin.state.telephony.creates == 0


async def test_a_token_used_twice_is_refused_the_second_time(standin: StandIn) -> None:
    token = jwt.encode(claims(jti=str(uuid.uuid4())), pem(KEY), "RS256")
    first, _ = await post(standin, token, msgspec.json.encode(an_inbound_call()))
    second, body = await post(standin, token, msgspec.json.encode(an_inbound_call()))
    assert (first, second) == (200, 401) and "used before" in body["message"]


async def test_a_token_for_another_contact_center_than_the_body_names_is_refused(
    standin: StandIn,
) -> None:
    standin.state.telephony.certificates["Other_CC"] = CERTIFICATE.encode()
    token = jwt.encode(claims(sub="Other_CC"), pem(KEY), "RS256")
    status, body = await post(standin, token, msgspec.json.encode(an_inbound_call()))
    assert status == 401 and "is not callCenterApiName" in body["message"]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"vendorCallKey": ""}, "required: vendorCallKey"),
        ({"participants": []}, "required: participants"),
        ({"initiationMethod": "Outbound"}, "Outbound calls aren't supported"),
        ({"initiationMethod": "Transfer"}, "needs parentVoiceCallId"),
        ({"callAttributes": {"Notes__c": "x"}}, "callAttributes must be a JSON string"),
    ],
)
async def test_a_body_the_api_does_not_take_is_refused(
    standin: StandIn, change: dict[str, Any], problem: str
) -> None:
    body = msgspec.to_builtins(an_inbound_call()) | change
    token = a_client(standin).token()
    status, answer = await post(standin, token, msgspec.json.encode(body))
    assert status == 400 and problem in answer["message"]
    assert standin.state.telephony.creates == 0


async def test_a_429_and_a_503_are_tried_again_and_one_voice_call_is_made(
    standin: StandIn,
) -> None:
    standin.state.telephony.fail_next = [429, 503]
    await a_client(standin).create(an_inbound_call())
    assert standin.state.telephony.creates == 1


async def test_a_create_refused_three_times_gives_up(standin: StandIn) -> None:
    standin.state.telephony.fail_next = [503, 503, 503]
    with pytest.raises(TelephonyError, match="answered 503"):
        await a_client(standin).create(an_inbound_call())
    assert standin.state.telephony.creates == 0


async def test_a_create_whose_answer_is_lost_is_in_doubt_and_not_made_again(
    standin: StandIn, sf: Salesforce
) -> None:
    """The VoiceCall was made but its answer lost: the client does not create it again (a key
    may name several); the caller finds it by its key."""
    standin.state.telephony.drop_next_creates = 1
    call = an_inbound_call()
    with pytest.raises(CreateInDoubt):
        await a_client(standin).create(call)
    assert len(await voice_calls(sf, call.vendorCallKey)) == 1


async def post(standin: StandIn, token: str, body: bytes) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            standin.instance_url + "/telephony/v1/voiceCalls",
            data=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            ssl=trusting(standin),
        ) as response,
    ):
        return response.status, await response.json()
