"""Salesforce Voice as Salesforce runs it, in headless Chromium: a harness page on a Salesforce
host plays Salesforce's side of ``@salesforce/scv-connector-base``'s message protocol with our
connector (built from the pinned SDK, served by the relay, framed from a Visualforce host), while
the contract's softphone runs in another page as the same agent. Real relay, Redis, workers
(``voicecalls`` and ``dispatch``) and the stand-in's Telephony Integration API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis

from projections.dispatch.projection import DispatchProjection
from projections.salesforce.standin.server import StandIn
from projections.voice.projection import VoiceCallsProjection
from projections.worker import Worker, WorkerSettings
from relay.server.server import Relay
from relay.settings import Partner
from tests.clientjs.conftest import Browser
from tests.clientjs.test_salesforce_page import Org
from tests.clientjs.voice_harness import (
    OTHER_HOST,
    SALESFORCE_HOST,
    SOFTPHONE_HOST,
    VISUALFORCE_HOST,
    VoicePages,
    serve_pages,
)
from tests.helpers import PARTNER, PARTNERS, ConnectionFactory, RelayFactory, conversation_ids
from tests.projections.salesforce.test_telephony import a_client
from tests.projections.salesforce.test_telephony import (
    closed_clients as closed_clients,  # closes the clients each test opened
)
from tests.projections.voice.test_voice_calls import NUMBER, ends, voice_calls
from tests.projections.voice.test_voice_calls import (
    standin_state as standin_state,
)

USER = "005Hs00000AbCdEAAA"
READY = "d6afeaa7-39be-4935-981f-2670215fd887"
BUSY = "0e9a3c1f-5b7d-4f0e-8a2b-6c4d2e1f3a5b"
VOICE_PARTNER: Partner = msgspec.structs.replace(
    PARTNERS[PARTNER],
    records="voicecalls",
    voicePresence={"Available for Voice": READY, "Busy": BUSY},
)


@pytest.fixture
def org() -> Org:
    return Org(USER)


@pytest.fixture
async def pages(org: Org) -> AsyncIterator[VoicePages]:
    async for served in serve_pages(org):
        yield served


@pytest.fixture
async def relay(start_relay: RelayFactory, org: Org, pages: VoicePages) -> Relay:
    relay = await start_relay(
        secret=None,
        public_key=org.certificate,
        allowed_origins=(f"https://{VISUALFORCE_HOST}:*", f"https://{SOFTPHONE_HOST}:*"),
        partners={PARTNER: VOICE_PARTNER},
    )
    pages.addresses |= {
        "relay": f"http://127.0.0.1:{relay.port}",
        "socket": f"ws://127.0.0.1:{relay.port}/v1/socket",
    }
    return relay


@pytest.fixture
async def workers(
    redis_client: aioredis.Redis, standin: StandIn, connection: ConnectionFactory
) -> AsyncIterator[None]:
    """The ``voicecalls`` and ``dispatch`` groups, running as in production."""
    voice = VoiceCallsProjection(redis_client, a_client(standin), connection(), number=NUMBER)
    dispatch = DispatchProjection(redis_client, partners={PARTNER: VOICE_PARTNER}, ttl=30.0)
    running = [Worker(redis_client, p, WorkerSettings(block_ms=50)) for p in (voice, dispatch)]
    tasks = [asyncio.create_task(worker.run()) for worker in running]
    yield
    for worker in running:
        worker.stop()
    await asyncio.gather(*tasks)


async def open_both(browser: Browser, pages: VoicePages) -> tuple[int, int]:
    """The softphone's page, open on the relay, then Salesforce's with the connector ready."""
    softphone = int(await browser.call("open", url=pages.url(SOFTPHONE_HOST, "/agent")))
    await browser.wait(softphone, "SoftphoneWrapper.state() === 'open'")
    salesforce = int(await browser.call("open", url=pages.url(SALESFORCE_HOST, "/harness")))
    await browser.wait(salesforce, "window.received.some(m => m.type === 'CONNECTOR_READY')")
    return softphone, salesforce


def hook(name: str, conversation: str, **data: Any) -> str:
    fields = {"partnerId": PARTNER, "conversationId": conversation, **data}
    return f"SoftphoneWrapper.{name}({msgspec.json.encode(fields).decode()}), 1"


async def events_of(browser: Browser, page: int, conversation: str) -> list[str]:
    """The telephony events Salesforce got about one call, in order (HANGUP carries a list)."""
    found: list[list[Any]] = await browser.run(page, "window.events()")
    names = []
    for name, payload in found:
        calls = payload if isinstance(payload, list) else [payload]
        if any(isinstance(c, dict) and c.get("callId") == conversation for c in calls):
            names.append(name + (" (replayed)" if calls[0].get("isReplayedCall") else ""))
    return names


async def wait_for_event(browser: Browser, page: int, conversation: str, name: str) -> None:
    for _ in range(200):
        if name in await events_of(browser, page, conversation):
            return
        await asyncio.sleep(0.05)
    seen = await events_of(browser, page, conversation)
    raise AssertionError(f"{name} of {conversation} never came: {seen}")


async def test_the_connector_is_ready_as_a_desk_phone_with_every_call_control_off(
    relay: Relay, browser: Browser, pages: VoicePages
) -> None:
    """CONNECTOR_READY: the desk-phone model, and mute, record, merge and swap off."""
    _, salesforce = await open_both(browser, pages)
    [ready] = await browser.run(
        salesforce, "window.received.filter(m => m.type === 'CONNECTOR_READY')"
    )
    payload = ready["payload"]
    assert payload["agentConfig"]["PHONES"] == ["DESK_PHONE"]
    assert payload["agentConfig"]["SELECTED_PHONE"]["type"] == "DESK_PHONE"
    capabilities = payload["capabilities"]
    assert [capabilities[c] for c in ("MUTE", "RECORD", "MERGE", "SWAP")] == [False] * 4
    assert payload["callInProgress"] is None


async def test_an_inbound_call_reaches_salesforce_in_order_with_its_one_voice_call(
    relay: Relay, browser: Browser, pages: VoicePages, workers: None, standin: StandIn
) -> None:
    """The softphone's hooks → CALL_STARTED (the stand-in's VoiceCall id, controls off),
    CALL_CONNECTED, HANGUP (ended), AFTER_CALL_WORK_STARTED; one VoiceCall, ended once."""
    softphone, salesforce = await open_both(browser, pages)
    [conversation] = conversation_ids(1, longest=True)
    await browser.run(softphone, hook("incomingCall", conversation, callerANI="+18883973342"))
    await wait_for_event(browser, salesforce, conversation, "CALL_STARTED")
    [[_, started]] = await browser.run(salesforce, "window.events('CALL_STARTED')")
    [record] = voice_calls(standin)
    assert record["VendorCallKey"] == conversation
    assert started["callAttributes"]["voiceCallId"] == record["Id"]
    assert (started["callType"], started["state"], started["phoneNumber"]) == (
        "Inbound",
        "ringing",
        "+18883973342",
    )
    info = started["callInfo"]
    assert info["isSoftphoneCall"] is False and info["acceptEnabled"] is False
    assert info["showMuteButton"] is False and info["holdEnabled"] is False
    await browser.run(softphone, hook("callAccepted", conversation))
    await wait_for_event(browser, salesforce, conversation, "CALL_CONNECTED")
    await browser.run(softphone, hook("callEnded", conversation, duration=95))
    await wait_for_event(browser, salesforce, conversation, "AFTER_CALL_WORK_STARTED")
    assert await events_of(browser, salesforce, conversation) == [
        "CALL_STARTED",
        "CALL_CONNECTED",
        "HANGUP",
        "AFTER_CALL_WORK_STARTED",
    ]
    [[_, hangup]] = await browser.run(salesforce, "window.events('HANGUP')")
    assert [(c["callId"], c["reason"]) for c in hangup] == [(conversation, "ended")]
    assert len(voice_calls(standin)) == 1 and ends(standin) == 1


async def test_a_dial_from_salesforce_reaches_the_softphone_once_and_starts_its_call(
    relay: Relay, browser: Browser, pages: VoicePages, workers: None
) -> None:
    """DIAL → one start_call on the softphone; its outboundCallInitiated answers the dial:
    one CALL_STARTED with the conversation as callId, then CALL_CONNECTED."""
    softphone, salesforce = await open_both(browser, pages)
    await browser.run(
        salesforce, "window.send({type: 'DIAL', contact: {phoneNumber: '+18449401117'}}), 1"
    )
    await browser.wait(softphone, "window.received.some(r => r[0] === 'start_call')")
    [conversation] = conversation_ids(1)
    placed = hook("outboundCallInitiated", conversation, dialledTo="+18449401117")
    await browser.run(softphone, placed)
    await wait_for_event(browser, salesforce, conversation, "CALL_CONNECTED")
    assert await events_of(browser, salesforce, conversation) == ["CALL_STARTED", "CALL_CONNECTED"]
    [[_, started]] = await browser.run(salesforce, "window.events('CALL_STARTED')")
    assert (started["callType"], started["callId"]) == ("Outbound", conversation)
    await asyncio.sleep(0.5)
    starts = await browser.run(softphone, "window.received.filter(r => r[0] === 'start_call')")
    assert [s[1]["dialTo"] for s in starts] == ["+18449401117"]


async def test_status_changes_go_both_ways_without_echoes(
    relay: Relay, browser: Browser, pages: VoicePages, workers: None
) -> None:
    """Salesforce's Busy → update_presence(BUSY) on the softphone, SET_AGENT_STATUS_RESULT;
    the softphone confirming Busy is no news; its change to ready → Available for Voice."""
    softphone, salesforce = await open_both(browser, pages)
    await browser.run(
        salesforce,
        "window.send({type: 'SET_AGENT_STATUS', agentStatus: 'Online',"
        " statusInfo: {statusId: '0N5Hs0000000002AAA'}, enqueueNextState: false}), 1",
    )
    result = await browser.wait(salesforce, "window.events('SET_AGENT_STATUS_RESULT')[0]")
    assert result[1] == {"success": True}
    update = await browser.wait(softphone, "window.received.find(r => r[0] === 'update_presence')")
    assert update[1] == {"softphoneId": BUSY}
    await browser.run(softphone, f"SoftphoneWrapper.statusChanged({{softphoneId: '{BUSY}'}}), 1")
    await browser.run(softphone, f"SoftphoneWrapper.statusChanged({{softphoneId: '{READY}'}}), 1")
    status = await browser.wait(salesforce, "window.events('SET_AGENT_STATUS')[0]")
    assert status[1] == {"statusId": "0N5Hs0000000001AAA"}
    await asyncio.sleep(0.5)
    assert len(await browser.run(salesforce, "window.events('SET_AGENT_STATUS')")) == 1


@pytest.mark.parametrize("control", ["END_CALL", "MUTE", "HOLD", "ACCEPT_CALL"])
async def test_a_call_control_used_anyway_tells_the_agent_to_use_the_softphone(
    relay: Relay, browser: Browser, pages: VoicePages, control: str
) -> None:
    """The SDK's error result with the kit's custom label (Omni shows its text)."""
    _, salesforce = await open_both(browser, pages)
    call = "{callId: 'x', callType: 'Inbound'}"
    await browser.run(salesforce, f"window.send({{type: '{control}', call: {call}}}), 1")
    error = await browser.wait(salesforce, "window.events('ERROR')[0]")
    assert error[1]["customError"]["labelName"] == "SoftphoneRelayUseSoftphone"
    assert error[1]["customError"]["namespace"] == "c"


async def test_a_reloaded_connector_and_a_reconnected_softphone_lose_and_repeat_nothing(
    relay: Relay, browser: Browser, pages: VoicePages, workers: None, standin: StandIn
) -> None:
    """Mid-call, Salesforce reloads the connector (the call comes back in CONNECTOR_READY
    and, replayed, on AGENT_AVAILABLE) and the softphone's page reloads (its socket with it):
    the call still ends once, with every event said once."""
    softphone, salesforce = await open_both(browser, pages)
    [conversation] = conversation_ids(1)
    await browser.run(softphone, hook("incomingCall", conversation, callerANI="+18883973342"))
    await browser.run(softphone, hook("callAccepted", conversation))
    await wait_for_event(browser, salesforce, conversation, "CALL_CONNECTED")
    await browser.run(salesforce, "window.reloadConnector(), 1")
    ready = await browser.wait(
        salesforce,
        "window.setups === 2 && window.received.filter(m => m.type === 'CONNECTOR_READY')[1]",
    )
    in_progress = ready["payload"]["callInProgress"]
    assert (in_progress["callId"], in_progress["state"]) == (conversation, "connected")
    await browser.run(salesforce, "window.send({type: 'AGENT_AVAILABLE', isAvailable: true}), 1")
    await wait_for_event(browser, salesforce, conversation, "CALL_CONNECTED (replayed)")
    await browser.call("reload", page=softphone)
    await browser.wait(softphone, "SoftphoneWrapper.state() === 'open'")
    await browser.run(softphone, hook("callEnded", conversation, duration=40))
    await wait_for_event(browser, salesforce, conversation, "AFTER_CALL_WORK_STARTED")
    await asyncio.sleep(0.5)
    assert await events_of(browser, salesforce, conversation) == [
        "CALL_STARTED",
        "CALL_CONNECTED",
        "CALL_CONNECTED (replayed)",
        "HANGUP",
        "AFTER_CALL_WORK_STARTED",
    ]
    assert len(voice_calls(standin)) == 1 and ends(standin) == 1


async def test_a_page_outside_salesforce_gets_nothing_from_the_connector(
    relay: Relay, browser: Browser, pages: VoicePages
) -> None:
    """The SDK answers SETUP_CONNECTOR from Salesforce's hosts only: silence elsewhere."""
    page = int(await browser.call("open", url=pages.url(OTHER_HOST, "/harness")))
    await browser.wait(page, "window.setups === 1")
    await asyncio.sleep(1.0)
    assert await browser.run(page, "window.received") == []


async def test_a_connector_the_relay_refuses_tells_salesforce_so(
    start_relay: RelayFactory, org: Org, browser: Browser, pages: VoicePages
) -> None:
    """A partner the relay does not serve (4403): Omni hears an agent error at once, rather
    than waiting on a connector that will never be ready."""
    relay = await start_relay(
        secret=None,
        public_key=org.certificate,
        allowed_origins=(f"https://{VISUALFORCE_HOST}:*",),
        partners={"another-partner": VOICE_PARTNER},
    )
    pages.addresses |= {
        "relay": f"http://127.0.0.1:{relay.port}",
        "socket": f"ws://127.0.0.1:{relay.port}/v1/socket",
    }
    page = int(await browser.call("open", url=pages.url(SALESFORCE_HOST, "/harness")))
    error = await browser.wait(page, "window.events('ERROR')[0]")
    assert error[1] == {"message": "AGENT_ERROR"}
    assert (
        await browser.run(page, "window.received.some(m => m.type === 'CONNECTOR_READY')") is False
    )
