"""The relay serves the wrapper library to softphones on other origins: caching, CORS, 304."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from importlib import resources

import pytest

from relay.server.server import Relay
from tests.helpers import RelayFactory, token

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
