"""clientjs in a real headless Chromium (Debian's, driven by playwright-core through
``tests/clientjs/driver.mjs``) against a real relay and Redis: a page on another origin loads
``/softphone.js`` from the relay, as the softphone does, and acts as the softphone.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import trustme
from aiohttp import web

from relay.log import keys
from relay.log.commands import CommandLog
from relay.server.server import Relay
from softphone_relay.embedded import free_port
from tests.clientjs.conftest import Browser
from tests.helpers import PARTNER, SECRET, RelayFactory, contract_examples, logged, token

HERE = Path(__file__).resolve().parent
ARTIFACTS = HERE.parents[1] / "test-artifacts"
ORIGINS = ("http://127.0.0.1:*",)


async def open_softphone(
    browser: Browser, page_origin: str, relay: Relay, agent: str = "agent-1"
) -> int:
    url = f"{page_origin}/softphone-page.html#relay=http://127.0.0.1:{relay.port}&token={token(agent)}"
    page = int(await browser.call("open", url=url))
    await browser.wait(page, "window.wrapperReady && SoftphoneWrapper.state() === 'open'")
    return page


async def events(client: aioredis.Redis) -> list[dict[str, Any]]:
    entries = await client.xrange(keys.event_stream(0))
    return [logged(entry_id, fields) for entry_id, fields in entries]


async def test_every_hook_with_the_contract_samples_lands_in_the_log(
    start_relay: RelayFactory, browser: Browser, page_origin: str, redis_client: aioredis.Redis
) -> None:
    """Each of the seven hooks, called as the softphone calls them (objects, a JSON string,
    no argument), becomes one event in Redis with the sample's data; the outbox empties."""
    relay = await start_relay(allowed_origins=ORIGINS)
    page = await open_softphone(browser, page_origin, relay)
    samples = contract_examples()["hooks"]
    for name, data in samples.items():
        argument = json.dumps(json.dumps(data)) if name == "callAccepted" else json.dumps(data)
        await browser.run(page, f"SoftphoneWrapper.{name}({argument})")
    await browser.run(page, "SoftphoneWrapper.incomingCall()")
    await browser.wait(page, "SoftphoneWrapper.outboxSize() === 0")
    stored = await events(redis_client)
    assert [e["name"] for e in stored] == [*samples, "incomingCall"]
    for event in stored[: len(samples)]:
        expected = samples[event["name"]]
        assert {k: event["data"].get(k) for k in expected} == expected
        assert event["agentId"] == "agent-1" and event["partnerId"] == PARTNER
    received = await browser.run(page, "window.received")
    assert received[:2] == [
        ["disposition", ["code1", "code2"]],
        ["partner_config", contract_examples()["commands"]["partner_config"]],
    ]


async def test_a_command_sent_with_the_cli_reaches_the_callback_once(
    start_relay: RelayFactory,
    browser: Browser,
    page_origin: str,
    redis_url: str,
    tmp_path: Path,
) -> None:
    """``softphone-relay send`` → the page's callback(name, data), then an ack."""
    relay = await start_relay(allowed_origins=ORIGINS)
    page = await open_softphone(browser, page_origin, relay)
    start_call = contract_examples()["commands"]["start_call"]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "softphone_relay",
        "send",
        "agent-1",
        "start_call",
        json.dumps(start_call),
        cwd=tmp_path,
        env={**os.environ, "SOFTPHONE_RELAY_REDIS_URL": redis_url},
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    command_id = out.decode().strip()
    received = await browser.wait(page, "window.received.length >= 3 && window.received")
    assert received[2] == ["start_call", start_call]
    client = aioredis.Redis.from_url(redis_url)
    for _ in range(50):
        if await client.get(keys.command_ack("agent-1")) == command_id.encode():
            break
        await asyncio.sleep(0.05)
    assert await client.get(keys.command_ack("agent-1")) == command_id.encode()
    await client.aclose()


def serve(redis_url: str, port: int, tmp_path: Path, **settings: str) -> subprocess.Popen[bytes]:
    """``softphone-relay serve`` as its own process, on ``port``; ``settings`` are more
    ``SOFTPHONE_RELAY_*`` variables (by their name after the prefix)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOFTPHONE_RELAY_")} | {
        "SOFTPHONE_RELAY_REDIS_URL": redis_url,
        "SOFTPHONE_RELAY_SECRET": SECRET,
        "SOFTPHONE_RELAY_PORT": str(port),
        "SOFTPHONE_RELAY_API_PORT": "0",
        "SOFTPHONE_RELAY_ALLOWED_ORIGINS": ",".join(ORIGINS),
    }
    env |= {f"SOFTPHONE_RELAY_{name}": value for name, value in settings.items()}
    return subprocess.Popen(
        [sys.executable, "-m", "softphone_relay", "serve"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def listening(port: int) -> None:
    """Wait until something accepts connections on ``port``."""
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise AssertionError(f"nothing listens on {port}")


async def test_a_relay_killed_mid_call_loses_and_duplicates_nothing(
    browser: Browser,
    page_origin: str,
    redis_url: str,
    redis_client: aioredis.Redis,
    tmp_path: Path,
) -> None:
    """The relay process is SIGKILLed between callAccepted and callEnded; the page keeps the
    events and sends them when a relay is back on the same address: each lands once."""
    port = free_port()
    relay = serve(redis_url, port, tmp_path)
    try:
        await listening(port)
        url = f"{page_origin}/softphone-page.html#relay=http://127.0.0.1:{port}&token={token()}"
        page = int(await browser.call("open", url=url))
        await browser.wait(page, "SoftphoneWrapper.state() === 'open'")
        call = {"partnerId": PARTNER, "conversationId": "conv-kill"}
        await browser.run(page, f"SoftphoneWrapper.callAccepted({json.dumps(call)})")
        await browser.wait(page, "SoftphoneWrapper.outboxSize() === 0")
        relay.send_signal(signal.SIGKILL)
        relay.wait(10)
        await browser.wait(page, "SoftphoneWrapper.state() !== 'open'", within_ms=60_000)
        ended = {**call, "duration": 42, "callType": "inbound"}
        await browser.run(page, f"SoftphoneWrapper.callEnded({json.dumps(ended)})")
        await browser.run(page, f"SoftphoneWrapper.callNotesSubmitted({json.dumps(call)})")
        assert await browser.run(page, "SoftphoneWrapper.outboxSize()") == 2
        relay = serve(redis_url, port, tmp_path)
        await browser.wait(page, "SoftphoneWrapper.outboxSize() === 0", within_ms=30_000)
    finally:
        relay.kill()
        relay.wait(10)
    names = [e["name"] for e in await events(redis_client)]
    assert names == ["callAccepted", "callEnded", "callNotesSubmitted"]


async def test_a_page_reload_delivers_the_unacked_events(
    start_relay: RelayFactory, browser: Browser, page_origin: str, redis_client: aioredis.Redis
) -> None:
    """Events made while the relay was away survive a reload (localStorage) and are sent, in
    order, with their ids, by the reloaded page."""
    port = free_port()
    relay = await start_relay(allowed_origins=ORIGINS, port=port)
    page = await open_softphone(browser, page_origin, relay)
    await relay.close()
    await browser.wait(page, "SoftphoneWrapper.state() !== 'open'")
    ids = []
    for n in range(3):
        data = {"partnerId": PARTNER, "conversationId": f"conv-{n}", "reason": "passive"}
        ids.append(
            await browser.call(
                "eval", page=page, js=f"SoftphoneWrapper.callRejected({json.dumps(data)})"
            )
        )
    await browser.call("reload", page=page)
    await start_relay(allowed_origins=ORIGINS, port=port)
    await browser.wait(
        page, "window.wrapperReady && SoftphoneWrapper.state() === 'open'", within_ms=20_000
    )
    await browser.wait(page, "SoftphoneWrapper.outboxSize() === 0")
    assert [e["id"] for e in await events(redis_client)] == ids


async def test_an_expired_command_never_reaches_the_callback(
    start_relay: RelayFactory,
    browser: Browser,
    page_origin: str,
    redis_client: aioredis.Redis,
) -> None:
    """A start_call that expires while the softphone is away is never handed over."""
    port = free_port()
    relay = await start_relay(allowed_origins=ORIGINS, port=port)
    page = await open_softphone(browser, page_origin, relay)
    await relay.close()
    await CommandLog(redis_client).enqueue(
        "agent-1", "start_call", contract_examples()["commands"]["start_call"], ttl_seconds=0.2
    )
    await asyncio.sleep(0.4)
    await start_relay(allowed_origins=ORIGINS, port=port)
    await browser.wait(page, "SoftphoneWrapper.state() === 'open'", within_ms=20_000)
    await asyncio.sleep(0.5)
    received = await browser.run(page, "window.received.map(r => r[0])")
    assert "start_call" not in received


async def test_a_second_tab_takes_over_and_the_first_stops(
    start_relay: RelayFactory, browser: Browser, page_origin: str
) -> None:
    """The same agent opens another tab: the first is closed with 4409, says so, and does not
    fight back."""
    relay = await start_relay(allowed_origins=ORIGINS)
    first = await open_softphone(browser, page_origin, relay)
    second = await open_softphone(browser, page_origin, relay)
    await browser.wait(first, "SoftphoneWrapper.state() === 'stopped'")
    assert await browser.run(first, "window.errors") == ["replaced"]
    await asyncio.sleep(1.5)
    assert await browser.run(second, "SoftphoneWrapper.state()") == "open"
    assert await browser.run(first, "SoftphoneWrapper.state()") == "stopped"


async def test_two_tabs_one_replaced_then_a_reload_deliver_every_event_exactly_once(
    start_relay: RelayFactory, browser: Browser, page_origin: str, redis_client: aioredis.Redis
) -> None:
    """Both tabs of one agent keep receiving hooks after the first is replaced (4409): the
    live tab sends the replaced tab's events too (one storage key per event, so no tab erases
    another's), and after a reload of the live tab every event is in the log once."""
    relay = await start_relay(allowed_origins=ORIGINS)
    replaced = await open_softphone(browser, page_origin, relay)
    live = await open_softphone(browser, page_origin, relay)
    await browser.wait(replaced, "SoftphoneWrapper.state() === 'stopped'")
    made = []
    for n in range(6):
        tab = replaced if n % 2 == 0 else live
        data = {"partnerId": PARTNER, "conversationId": f"conv-{n}", "reason": "passive"}
        made.append(await browser.run(tab, f"SoftphoneWrapper.callRejected({json.dumps(data)})"))
    await browser.wait(live, "SoftphoneWrapper.outboxSize() === 0")
    await browser.call("reload", page=live)
    await browser.wait(live, "window.wrapperReady && SoftphoneWrapper.state() === 'open'")
    await browser.wait(live, "SoftphoneWrapper.outboxSize() === 0")
    logged = [e["id"] for e in await events(redis_client)]
    assert sorted(logged) == sorted(made), "an event was lost or logged twice"
    assert await browser.run(replaced, "SoftphoneWrapper.outboxSize()") == 0


async def test_the_demo_page_works_and_is_screenshotted(
    start_relay: RelayFactory, browser: Browser, redis_client: aioredis.Redis
) -> None:
    """/demo connects with its own token, sends a hook at a click, shows the log; the
    screenshot is kept in test-artifacts/."""
    relay = await start_relay(demo_token=lambda: token("demo-agent"))
    page = int(await browser.call("open", url=f"http://127.0.0.1:{relay.port}/demo"))
    await browser.wait(page, "SoftphoneWrapper.state() === 'open'")
    await browser.run(page, "document.getElementById('hook-incomingCall').click()")
    await browser.wait(page, "SoftphoneWrapper.outboxSize() === 0")
    assert [e["name"] for e in await events(redis_client)] == ["incomingCall"]
    ARTIFACTS.mkdir(exist_ok=True)
    shot = Path(await browser.call("screenshot", page=page, path=str(ARTIFACTS / "demo.png")))
    assert len(await asyncio.to_thread(shot.read_bytes)) > 10_000


async def test_the_library_also_imports_as_an_es_module(
    start_relay: RelayFactory, browser: Browser, page_origin: str
) -> None:
    """``import(".../softphone.mjs")`` from another origin gives the wrapper with every hook."""
    relay = await start_relay(allowed_origins=ORIGINS)
    url = f"{page_origin}/module-page.html#relay=http://127.0.0.1:{relay.port}"
    page = int(await browser.call("open", url=url))
    imported = await browser.wait(page, "window.imported")
    assert imported == {
        "hooks": list(contract_examples()["hooks"]),
        "load": "function",
        "global": True,
    }


async def https_page_origin(ca: trustme.CA) -> tuple[web.AppRunner, str]:
    """The softphone's page served over https (an https: page may only open wss://)."""
    app = web.Application()

    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(HERE / "softphone-page.html")

    app.router.add_get("/softphone-page.html", page)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"https://127.0.0.1:{port}"


async def test_an_https_page_loads_the_wrapper_and_connects_over_wss_from_serve(
    browser: Browser, redis_url: str, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    """``serve`` with a test certificate: an https page loads ``softphone.js`` from the relay
    over https, opens ``wss://`` and its events land in the log. The same page configured
    with a ``ws://`` URL gets ``insecure_url`` and opens nothing."""
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "relay.crt", tmp_path / "relay.key"
    cert_file.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key_file))
    runner, origin = await https_page_origin(ca)
    port = free_port()
    relay = serve(
        redis_url,
        port,
        tmp_path,
        ALLOWED_ORIGINS="https://127.0.0.1:*",
        TLS_CERT_FILE=str(cert_file),
        TLS_KEY_FILE=str(key_file),
    )
    try:
        await listening(port)
        url = f"{origin}/softphone-page.html#relay=https://127.0.0.1:{port}&token={token()}"
        page = int(await browser.call("open", url=url))
        await browser.wait(page, "window.wrapperReady && SoftphoneWrapper.state() === 'open'")
        call = {"partnerId": PARTNER, "conversationId": "conv-tls"}
        await browser.run(page, f"SoftphoneWrapper.callAccepted({json.dumps(call)})")
        await browser.wait(page, "SoftphoneWrapper.outboxSize() === 0")
        assert await browser.run(page, "location.protocol") == "https:"
        # Another host than this machine (the browser maps *.example.test to loopback, but
        # judges mixed content by the name): ws:// from an https page is refused.
        insecure = f"{url}&socket=ws://relay.example.test:{port}/v1/socket"
        other = int(await browser.call("open", url=insecure))
        await browser.wait(other, "window.wrapperReady && window.errors.length > 0")
        assert await browser.run(other, "window.errors") == ["insecure_url"]
        assert await browser.run(other, "SoftphoneWrapper.state()") == "idle"
    finally:
        relay.kill()
        relay.wait(10)
        await runner.cleanup()
    assert [e["name"] for e in await events(redis_client)] == ["callAccepted"]
