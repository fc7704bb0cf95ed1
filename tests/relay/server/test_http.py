"""The relay serves the wrapper library to softphones on other origins: caching, CORS, 304."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from importlib import resources

import pytest

from relay.server.server import Relay
from tests.helpers import RelayFactory, http_exchange, token

CLIENTJS = resources.files("clientjs")


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/softphone.js", "text/javascript; charset=utf-8"),
        ("/softphone.mjs", "text/javascript; charset=utf-8"),
        ("/softphone.d.ts", "text/plain; charset=utf-8"),
        ("/contract.schema.json", "application/json"),
    ],
)
async def test_library_files_are_served_for_cross_origin_loading(
    relay: Relay, path: str, content_type: str
) -> None:
    """The file as it is in clientjs/, cacheable, loadable from any origin."""
    status, headers, body = await asyncio.to_thread(fetch, f"http://127.0.0.1:{relay.port}{path}")
    assert status == 200
    assert body == CLIENTJS.joinpath(path.lstrip("/")).read_bytes()
    assert headers["Content-Type"] == content_type
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Cache-Control"] == "public, max-age=300"
    assert headers["X-Content-Type-Options"] == "nosniff"


async def test_an_unchanged_library_is_not_sent_again(relay: Relay) -> None:
    """If-None-Match with the ETag answers 304 with no body."""
    url = f"http://127.0.0.1:{relay.port}/softphone.js"
    _, headers, _ = await asyncio.to_thread(fetch, url)
    status, _, body = await asyncio.to_thread(fetch, url, {"If-None-Match": headers["ETag"]})
    assert (status, body) == (304, b"")


async def test_the_demo_is_only_served_by_up(relay: Relay, start_relay: RelayFactory) -> None:
    """A plain relay has no /demo and mints no demo tokens; one started like up does."""
    plain = f"http://127.0.0.1:{relay.port}"
    assert (await asyncio.to_thread(fetch, plain + "/demo"))[0] == 404
    assert (await asyncio.to_thread(fetch, plain + "/demo/token"))[0] == 404
    demo = await start_relay(demo_token=lambda: token("demo-agent"))
    base = f"http://127.0.0.1:{demo.port}"
    status, headers, body = await asyncio.to_thread(fetch, base + "/demo")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"/softphone.js" in body
    status, headers, minted = await asyncio.to_thread(fetch, base + "/demo/token")
    assert status == 200 and headers["Cache-Control"] == "no-store" and minted.count(b".") == 2


HANDSHAKE = (
    b"GET /v1/socket HTTP/1.1\r\nHost: relay.test\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: softphone.v1\r\n"
)


@pytest.mark.parametrize(
    ("raw", "header"),
    [
        (b"GET /healthz HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n", b"Host"),
        (
            HANDSHAKE
            + b"Origin: https://softphone.example.test\r\nOrigin: https://evil.test\r\n\r\n",
            b"Origin",
        ),
    ],
    ids=["host", "origin"],
)
async def test_a_header_sent_twice_gets_a_400_naming_it(
    relay: Relay, raw: bytes, header: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """Which of two Origins (or Hosts) would count? Neither: 400, and no traceback."""
    answer = await http_exchange(relay.port, raw)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert answer.endswith(b"more than one " + header + b" header\n")
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


async def test_two_requests_pipelined_in_one_packet_get_one_answer_and_a_close(
    relay: Relay, caplog: pytest.LogCaptureFixture
) -> None:
    """The first is answered (``Connection: close``), the second not read; nothing is logged
    as an error."""
    one = b"GET /healthz HTTP/1.1\r\nHost: relay.test\r\n\r\n"
    answer = await http_exchange(relay.port, one + one)
    assert answer.count(b"HTTP/1.1 ") == 1
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\nok\n")
    assert b"Connection: close" in answer
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


async def test_a_request_head_split_over_packets_is_still_answered(relay: Relay) -> None:
    """The end of the head (an empty line) arriving in pieces is found all the same."""
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    for piece in (b"GET /healthz HTTP/1.1\r\nHost: relay.test\r", b"\n\r", b"\n"):
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.05)
    async with asyncio.timeout(5):
        answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200 ")
