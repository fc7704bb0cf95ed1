"""The pages of the Salesforce Voice browser tests, on Salesforce-like and softphone-like hosts
(the driver maps ``*.force.com`` and ``*.example.test`` to loopback), served over HTTPS by one
server: the page's host name makes its origin.

- ``https://acme.lightning.force.com:PORT/harness``: plays Salesforce's side of the SDK's
  message protocol (``@salesforce/scv-connector-base``, SALESFORCE-VOICE.md section 3): it
  frames the connector page and, on each ``load``, posts ``SETUP_CONNECTOR`` with its config
  and a fresh ``MessageChannel`` port; every message the connector sends on the port is kept in
  ``window.received``; ``window.send(message)`` sends one.
- ``https://acme--c.vf.force.com:PORT/apex/SoftphoneRelayConnector``: what the kit's
  Visualforce connector page does: load ``connector.js`` from the relay and start it with a
  token from the kit's Apex (here an endpoint of the same origin that answers as the Apex
  class would: a token the org signs for its user).
- ``https://softphone.example.test:PORT/agent``: the contract's softphone, which loads only
  ``softphone.js`` and gets its token from its vendor's backend (``tokenUrl``: Open CTI's
  ``runApex`` is not there in a Salesforce Voice org).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import trustme
from aiohttp import web

from tests.clientjs.test_salesforce_page import Org

SALESFORCE_HOST = "acme.lightning.force.com"
VISUALFORCE_HOST = "acme--c.vf.force.com"
SOFTPHONE_HOST = "softphone.example.test"
OTHER_HOST = "elsewhere.example.test"

STATUSES = {
    "0": {"statusName": "Offline", "isOffline": True},
    "0N5Hs0000000001AAA": {"statusName": "Available for Voice", "hasChannels": True},
    "0N5Hs0000000002AAA": {"statusName": "Busy", "hasChannels": False},
}
"""The org's presence statuses as Salesforce hands them to the connector (status id → ...)."""

HARNESS = """<!doctype html>
<html><head><meta charset="utf-8"><title>Salesforce (harness)</title></head><body>
<iframe id="connector" src="{connector}" style="display:none"></iframe>
<script>
  window.received = [];
  window.setups = 0;
  var port = null;
  var frame = document.getElementById("connector");
  frame.addEventListener("load", function () {{
    var channel = new MessageChannel();
    port = channel.port1;
    port.onmessage = function (m) {{ window.received.push(m.data); }};
    frame.contentWindow.postMessage(
      {{ type: "SETUP_CONNECTOR", connectorConfig: {config} }}, "*", [channel.port2]);
    window.setups += 1;
  }});
  window.send = function (message) {{ port.postMessage(message); }};
  window.reloadConnector = function () {{ frame.src = frame.src; }};
  window.events = function (type) {{
    return window.received
      .filter(function (m) {{ return m.type === "TELEPHONY_EVENT_DISPATCHED" &&
        (!type || m.payload.telephonyEventType === type); }})
      .map(function (m) {{
        return [m.payload.telephonyEventType, m.payload.telephonyEventPayload];
      }});
  }};
</script>
</body></html>
"""

CONNECTOR_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>SoftphoneRelayConnector</title></head><body>
<script src="{relay}/connector.js"></script>
<script>
  SoftphoneRelayConnector.start({{
    url: "{socket}",
    namespace: "c",
    token: function () {{
      return fetch("/apex/SoftphoneRelayToken/connectorToken").then(function (r) {{
        return r.text();
      }});
    }},
  }});
</script>
</body></html>
"""

SOFTPHONE_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>The contract's softphone</title></head><body>
<script src="{relay}/softphone.js" data-url="{socket}" data-token-url="/token"></script>
<script>
  window.received = [];
  SoftphoneWrapper.load(function (name, payload) {{ window.received.push([name, payload]); }});
</script>
</body></html>
"""


@dataclass
class VoicePages:
    """The served pages' addresses, and what the pages need filled in."""

    port: int = 0
    org: Org | None = None
    addresses: dict[str, str] = field(default_factory=dict)

    def url(self, host: str, path: str) -> str:
        return f"https://{host}:{self.port}{path}"

    @property
    def connector(self) -> str:
        return self.url(VISUALFORCE_HOST, "/apex/SoftphoneRelayConnector")


def connector_config(org: Org) -> dict[str, object]:
    """What Salesforce hands the connector with SETUP_CONNECTOR (its keys as documented)."""
    return {
        "userName": "ana@acme.example",
        "userFullName": "Ana Diaz",
        "userId": org.user_id,
        "organizationId": "00D5g0000000001EAA",
        "/reqGeneralInfo/reqInternalName": "ACME_Voice",
        "/reqGeneralInfo/reqVendorInfoApiName": "SoftphoneRelay",
        "userPresenceStatuses": STATUSES,
        "isACWAllowed": True,
    }


async def serve_pages(org: Org) -> AsyncIterator[VoicePages]:
    """Serve the three pages (and the two token endpoints) until the test ends."""
    pages = VoicePages(org=org)

    def page(template: str, **extra: str) -> web.Response:
        return web.Response(
            text=template.format(**pages.addresses, **extra), content_type="text/html"
        )

    async def by_host(request: web.Request) -> web.Response:
        host = request.host.split(":")[0]
        path = request.path
        if host == SALESFORCE_HOST and path == "/harness":
            config = json.dumps(connector_config(org))
            return page(HARNESS, connector=pages.connector, config=config)
        if host == OTHER_HOST and path == "/harness":
            return page(HARNESS, connector=pages.connector, config="{}")
        if host == VISUALFORCE_HOST and path == "/apex/SoftphoneRelayConnector":
            return page(CONNECTOR_PAGE)
        if host == VISUALFORCE_HOST and path == "/apex/SoftphoneRelayToken/connectorToken":
            return web.Response(text=org.mint(), headers={"Cache-Control": "no-store"})
        if host == SOFTPHONE_HOST and path == "/agent":
            return page(SOFTPHONE_PAGE)
        if host == SOFTPHONE_HOST and path == "/token":
            return web.Response(text=org.mint(), headers={"Cache-Control": "no-store"})
        raise web.HTTPNotFound()

    app = web.Application()
    app.router.add_get("/{tail:.*}", by_host)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    hosts = (SALESFORCE_HOST, VISUALFORCE_HOST, SOFTPHONE_HOST, OTHER_HOST)
    trustme.CA().issue_cert(*hosts).configure_cert(context)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    pages.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield pages
    await runner.cleanup()
