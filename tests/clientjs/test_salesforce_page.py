"""The softphone as a Salesforce call center loads it, in headless Chromium against a real relay,
Redis and the Salesforce stand-in: a page on the softphone's own origin that loads nothing but
``softphone.js``, opened with the parameters Salesforce appends to the adapter URL; Open CTI
(a stand-in that follows the documented signatures) loaded by the wrapper from the Salesforce
origin; the agent signed in by ``runApex`` with an RS256 token built as ``Auth.JWS`` builds it.
"""

from __future__ import annotations

import datetime
import ssl
import time
from collections.abc import AsyncIterator
from urllib.parse import quote

import jwt
import pytest
import redis.asyncio as aioredis
import trustme
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from projections.calls.projection import CallRecordsProjection
from projections.dispatch.projection import DispatchProjection
from projections.salesforce.sink import SalesforceSink
from projections.salesforce.standin.server import StandIn
from projections.salesforce.task_mapping import TaskMapping
from projections.worker import Worker, WorkerSettings
from relay.log import keys
from relay.server.server import Relay
from relay.wire.auth import AUDIENCE
from tests.clientjs.conftest import Browser
from tests.helpers import (
    PARTNER,
    PARTNERS,
    ConnectionFactory,
    RelayFactory,
    conversation_ids,
    logged,
    tasks,
)

SOFTPHONE_HOST = "softphone.example.test"
SALESFORCE_HOST = "acme.lightning.force.com"

OPEN_CTI = """
// A stand-in for Salesforce's opencti_min.js: the documented signatures, and the real one's
// refusal to start outside a call center's adapter frame (mode and sfdcIframeOrigin).
(function () {
  if (!/[?&]mode=/.test(location.search) || !/[?&]sfdcIframeOrigin=/.test(location.search)) {
    throw new Error("Failed to initialize Open CTI. Ensure that it is loaded from the right " +
      "frame with correct URL parameters");
  }
  var origin = new URL(document.currentScript.src).origin;
  var seen = window.__openCti = { apex: [], searches: [], pops: [], listeners: [] };
  function ok(value) { return { success: true, returnValue: value, errors: null }; }
  window.sforce = window.sforce || {};
  window.sforce.opencti = {
    CALL_TYPE: { INBOUND: "inbound", OUTBOUND: "outbound", INTERNAL: "internal" },
    runApex: function (args) {
      seen.apex.push(args.apexClass + "." + args.methodName + "?" + args.methodParams);
      fetch(origin + "/apex/" + args.apexClass + "/" + args.methodName)
        .then(function (r) { return r.text(); })
        .then(function (token) { args.callback(ok({ runApex: token })); },
              function (e) {
                args.callback({ success: false, returnValue: null, errors: [String(e)] });
              });
    },
    onClickToDial: function (args) { seen.listeners.push(args.listener); },
    enableClickToDial: function (args) { if (args && args.callback) args.callback(ok(true)); },
    searchAndScreenPop: function (args) {
      // The org holds the caller's Contact as "(888) 397-3342": its national digits find it.
      seen.searches.push(args.searchParams);
      var found = args.searchParams === "8883973342"
        ? { "003Hs00000ABCDeIAX": { Id: "003Hs00000ABCDeIAX", RecordType: "Contact" } } : {};
      var target = found["003Hs00000ABCDeIAX"]
        ? { type: "sobject", params: { recordId: "003Hs00000ABCDeIAX" } }
        : { type: "search", params: { searchString: args.searchParams } };
      found.SCREEN_POP_DATA = target;
      args.callback(ok(found));
    },
    screenPop: function (args) { seen.pops.push(args.params); },
  };
  window.__clickToDial = function (number, recordId) {
    seen.listeners.forEach(function (listener) {
      listener({ number: number, recordId: recordId, recordName: "Ana Diaz",
                 objectType: "Contact" });
    });
  };
})();
"""

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>The contract's softphone</title></head><body>
<script src="{relay}/softphone.js" data-url="{socket}" data-screen-pop="true"
        data-salesforce-apex-class="SoftphoneRelayToken"
        data-salesforce-apex-method="mint"></script>
<script>
  window.received = [];
  window.errors = [];
  SoftphoneWrapper.configure({{ onError: function (e) {{ window.errors.push(e.code); }} }});
  SoftphoneWrapper.load(function (name, payload) {{ window.received.push([name, payload]); }});
</script>
</body></html>
"""


class Org:
    """The org's certificate (Certificate and Key Management) and the agent's User."""

    def __init__(self, user_id: str) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "softphone_relay")])
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(self.key, hashes.SHA256())
            .public_bytes(serialization.Encoding.PEM)
            .decode()
        )
        self.user_id = user_id

    def mint(self) -> str:
        """What ``SoftphoneRelayToken.mint`` returns: Auth.JWS sets ``alg`` and nothing else."""
        now = int(time.time())
        claims = {
            "sub": self.user_id,
            "aud": AUDIENCE,
            "nbf": now - 30,
            "iat": now,
            "exp": now + 900,
            "partnerId": PARTNER,
            "sfUserId": self.user_id,
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"typ": None})


async def https_site(app: web.Application, host: str, ca: trustme.CA) -> tuple[web.AppRunner, int]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(host).configure_cert(context)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


@pytest.fixture
async def salesforce_origin(standin: StandIn) -> AsyncIterator[tuple[str, Org]]:
    """``https://acme.lightning.force.com:PORT``: serves Open CTI and answers runApex with a
    token the org signs for its agent (a User of the stand-in org)."""
    user = standin.state.org.create(
        "User", {"Username": "ana@acme.example", "LastName": "Diaz", "IsActive": True}
    )
    org = Org(user)
    app = web.Application()

    async def open_cti(request: web.Request) -> web.Response:
        return web.Response(text=OPEN_CTI, content_type="application/javascript")

    async def run_apex(request: web.Request) -> web.Response:
        assert request.match_info["cls"] == "SoftphoneRelayToken"
        return web.Response(text=org.mint(), headers={"Access-Control-Allow-Origin": "*"})

    app.router.add_get("/support/api/{version}/lightning/opencti_min.js", open_cti)
    app.router.add_get("/apex/{cls}/{method}", run_apex)
    runner, port = await https_site(app, SALESFORCE_HOST, trustme.CA())
    yield f"https://{SALESFORCE_HOST}:{port}", org
    await runner.cleanup()


@pytest.fixture
async def softphone_origin() -> AsyncIterator[tuple[str, dict[str, str]]]:
    """``https://softphone.example.test:PORT/agent``: the contract's softphone page, which
    loads only ``softphone.js`` (the relay's address is filled in by the test)."""
    addresses: dict[str, str] = {}

    async def agent_page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE.format(**addresses), content_type="text/html")

    app = web.Application()
    app.router.add_get("/agent", agent_page)
    runner, port = await https_site(app, SOFTPHONE_HOST, trustme.CA())
    yield f"https://{SOFTPHONE_HOST}:{port}", addresses
    await runner.cleanup()


async def log_events(client: aioredis.Redis) -> list[dict[str, object]]:
    entries = await client.xrange(keys.event_stream(0))
    return [logged(entry_id, fields) for entry_id, fields in entries]


async def test_a_call_center_softphone_signs_in_dials_pops_and_owns_its_task(
    start_relay: RelayFactory,
    browser: Browser,
    salesforce_origin: tuple[str, Org],
    softphone_origin: tuple[str, dict[str, str]],
    redis_client: aioredis.Redis,
    standin: StandIn,
    connection: ConnectionFactory,
) -> None:
    """From the adapter URL to the Task: runApex token, session, click-to-dial once, a screen
    pop that finds the Contact by the national form the relay's ack names, and a Task owned by
    the agent's User."""
    salesforce, org = salesforce_origin
    softphone, addresses = softphone_origin
    relay: Relay = await start_relay(
        secret=None,
        public_key=org.certificate,
        allowed_origins=(f"https://{SOFTPHONE_HOST}:*",),
    )
    addresses |= {
        "relay": f"http://127.0.0.1:{relay.port}",
        "socket": f"ws://127.0.0.1:{relay.port}/v1/socket",
    }
    adapter = f"{softphone}/agent?mode=Lightning&sfdcIframeOrigin={quote(salesforce, safe='')}"
    page = int(await browser.call("open", url=adapter))
    await browser.wait(page, "SoftphoneWrapper.state() === 'open'")
    assert await browser.run(page, "window.__openCti.apex") == ["SoftphoneRelayToken.mint?none"]

    await browser.run(page, "window.__clickToDial('+18449401117', '003Hs00000ABCDeIAX'), 1")
    await browser.wait(page, "SoftphoneWrapper.outboxSize() === 0")
    requests = [e for e in await log_events(redis_client) if e["name"] == "startCallRequested"]
    assert len(requests) == 1 and requests[0]["agentId"] == org.user_id
    dispatch = DispatchProjection(redis_client, partners=PARTNERS, ttl=30.0)
    await Worker(redis_client, dispatch, WorkerSettings(block_ms=50)).run(burst=True)
    received = await browser.wait(
        page, "window.received.some(r => r[0] === 'start_call') && window.received"
    )
    start_calls = [payload for name, payload in received if name == "start_call"]
    assert len(start_calls) == 1 and start_calls[0]["dialTo"] == "+18449401117"

    (conversation,) = conversation_ids(1)
    call = f"{{partnerId: '{PARTNER}', conversationId: '{conversation}'"
    await browser.run(
        page, f"SoftphoneWrapper.incomingCall({{{call[1:]}, callerANI: '+18883973342'}}), 1"
    )
    assert await browser.wait(page, "window.__openCti.pops.length && window.__openCti.pops") == [
        {"recordId": "003Hs00000ABCDeIAX"}
    ]
    assert await browser.run(page, "window.__openCti.searches") == ["+18883973342", "8883973342"]
    await browser.run(page, f"SoftphoneWrapper.callAccepted({{{call[1:]}}}), 1")
    await browser.run(page, f"SoftphoneWrapper.callEnded({{{call[1:]}, duration: 95}}), 1")
    await browser.wait(page, "SoftphoneWrapper.outboxSize() === 0")
    sink = SalesforceSink(connection(), TaskMapping())
    calls = CallRecordsProjection(redis_client, sink)
    await Worker(redis_client, calls, WorkerSettings(block_ms=50)).run(burst=True)
    assert tasks(standin)[conversation]["OwnerId"] == org.user_id
    assert await browser.run(page, "window.errors") == []
