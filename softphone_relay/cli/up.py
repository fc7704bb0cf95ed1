"""``softphone-relay up``: everything on embedded defaults, for a first try.

An embedded Redis-compatible server (in its own session, so that Ctrl-C in the terminal reaches
only ``up``), a relay with its control API and demo page, the Salesforce stand-in and every
projection worker. SIGINT or SIGTERM stops them in order: the relay and the workers first
(in-flight appends finish or are nacked), then the stand-in, then the server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os

import redis
from redis.exceptions import RedisError

from projections import registry
from projections.salesforce.connect import (
    SalesforceSettings,
    SessionAuth,
    salesforce_settings_from_env,
)
from projections.salesforce.standin.org import Org
from projections.salesforce.standin.schema import VANILLA, VOICE_CALL
from projections.salesforce.standin.server import StandIn, StandInState
from relay.control.api import ControlApi
from relay.errors import ConfigError
from relay.log import clients
from relay.server.server import Relay
from relay.wire.auth import mint_token
from softphone_relay.cli.dev import (
    DEMO_AGENT_ID,
    DEV_AGENT_ID,
    DEV_ORIGINS,
    DEV_PARTNER_ID,
    DEV_PARTNERS,
    DevState,
    StandInAddress,
    record_standin,
)
from softphone_relay.cli.dev_voice import dev_voice
from softphone_relay.cli.runtime import data_dir as resolve_data_dir
from softphone_relay.cli.runtime import raise_open_file_limit, stop_on_signals
from softphone_relay.cli.serve import start_api, start_relay
from softphone_relay.cli.workers import Workers, run_workers
from softphone_relay.embedded import EmbeddedServer
from softphone_relay.settings import Settings, settings_from_env, with_fields

log = logging.getLogger(__name__)


def up_settings(
    state: DevState, host: str | None, port: int | None, api_port: int | None
) -> Settings:
    """The environment's settings with the flags over them (each checked against its limits),
    completed with development defaults where nothing is configured."""
    flags = {
        name: value
        for name, value in (("host", host), ("port", port), ("api_port", api_port))
        if value is not None
    }
    settings = settings_from_env(os.environ, flags)
    if settings.relay.tls_cert_file is not None:
        raise ConfigError(
            "SOFTPHONE_RELAY_TLS_CERT_FILE",
            "up serves this machine over plain HTTP; TLS is for serve (see the README, TLS)",
        )
    defaults: dict[str, object] = {}
    if settings.relay.secret is None and settings.relay.public_key is None:
        defaults["secret"] = state.secret()
    if settings.relay.partners is None:
        defaults["partners"] = DEV_PARTNERS
    if not settings.relay.allowed_origins:
        defaults["allowed_origins"] = DEV_ORIGINS
    if not settings.relay.api_keys:
        defaults["api_keys"] = {state.api_key(): DEV_PARTNER_ID}
    if settings.projections.archive_url is None:
        defaults["archive_url"] = state.archive_url()
    return with_fields(settings, defaults)


def stop_leftover_server(state: DevState) -> None:
    """Shut down the embedded server of an ``up`` that was killed before it could stop it
    (two servers must never share one data directory)."""
    url = state.redis_url()
    if url is None:
        return
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=1)
    try:
        directory = client.config_get("dir").get("dir")
        if directory == str(state.data_dir / "redis"):
            log.warning("event=leftover_server_stopped url=%s", url)
            client.shutdown()
    except RedisError:
        pass  # nothing answers there any more: nothing to stop
    finally:
        client.close()
    state.set_redis_url(None)


async def up(
    *,
    host: str | None = None,
    port: int | None = None,
    api_port: int | None = None,
    data_dir: str | None = None,
) -> int:
    """Start everything and run until SIGINT or SIGTERM."""
    state = DevState(resolve_data_dir(data_dir))
    state.keep_private()
    settings = up_settings(state, host, port, api_port)
    stop = stop_on_signals()
    embedded: EmbeddedServer | None = None
    url = settings.relay.redis_url
    if url is None:
        await asyncio.to_thread(stop_leftover_server, state)
        embedded = EmbeddedServer(state.data_dir / "redis", password=state.redis_password())
        await asyncio.to_thread(embedded.start)
        url = embedded.url
        state.set_redis_url(url)
    try:
        await _run(settings, url, state, embedded, stop)
    finally:
        record_standin(state, None)
        if embedded is not None:
            state.set_redis_url(None)
            await asyncio.to_thread(embedded.stop)
    print("softphone-relay stopped.", flush=True)
    return 0


async def _run(
    settings: Settings,
    url: str,
    state: DevState,
    embedded: EmbeddedServer | None,
    stop: asyncio.Event,
) -> None:
    """The relay, the control API, the stand-in and the workers, until ``stop``."""
    secret = settings.relay.secret
    # The demo page's tokens are handed out without a login: only with the secret `up` made
    # for development, never with a secret of a real deployment.
    generated = secret is not None and secret == state.existing_secret()

    def demo_token() -> str:
        assert secret is not None
        return mint_token(secret, DEMO_AGENT_ID, DEV_PARTNER_ID, 12 * 3600)

    relay = await start_relay(settings, url, stop, demo_token if generated else None)
    if relay is None:
        return
    raise_open_file_limit()
    standin = StandIn(StandInState(org=Org((*VANILLA, VOICE_CALL))), ca_dir=state.data_dir)
    client = clients.connect(url)
    api = ControlApi(settings.relay, client)
    workers: Workers | None = None
    try:
        await start_api(api, settings)
        salesforce = salesforce_settings_from_env(os.environ)
        if salesforce is None:
            await standin.start()
            session = standin.state.new_session()
            salesforce = SalesforceSettings(
                auth=SessionAuth(standin.instance_url, session), ca_file=str(standin.ca_file)
            )
            record_standin(
                state, StandInAddress(standin.instance_url, session, str(standin.ca_file))
            )
            if settings.projections.telephony_url is None:  # Salesforce Voice: the stand-in's
                voice = await asyncio.to_thread(dev_voice, state.data_dir, standin)
                settings = with_fields(settings, voice)
        workers = Workers(client, settings, relay.metrics.registry, salesforce)
        running = await workers.build(registry.default_groups(settings.projections))
        print_welcome(settings, relay, api, url, embedded)
        print_salesforce(standin if standin.port else None, salesforce, settings)
        print("\nCtrl-C stops everything this started.", flush=True)
        await run_workers(running, stop, workers.chores(stop))
    finally:
        await api.close()
        await relay.close()
        if workers is not None:
            workers.close()
        await standin.close()
        await client.aclose()


def print_salesforce(
    standin: StandIn | None, salesforce: SalesforceSettings, settings: Settings
) -> None:
    """Where call records go, and how to see them in the stand-in."""
    if standin is None or not isinstance(salesforce.auth, SessionAuth):
        print("\nCall records go to your Salesforce org.", flush=True)
        return
    query = "SELECT+Id,Subject,CallObject,CallType,Status,Description+FROM+Task"
    session = salesforce.auth.session_id
    print(
        f"""
Call records go to the local Salesforce stand-in at {standin.instance_url}
(no org configured). To write them to your org, log in with the JWT bearer flow, which renews
itself: set SOFTPHONE_RELAY_SF_USERNAME, SOFTPHONE_RELAY_SF_CONSUMER_KEY and
SOFTPHONE_RELAY_SF_PRIVATE_KEY_FILE (README: Connecting the workers to an org).
List the Tasks it holds:
  curl -s --cacert {standin.ca_file} -H 'Authorization: Bearer {session}' \\
    '{standin.instance_url}/services/data/v59.0/query?q={query}'""",
        flush=True,
    )
    voice = settings.projections.telephony_url
    if voice is not None and voice.startswith(standin.instance_url):
        calls = "SELECT+Id,VendorCallKey,CallDisposition,Notes__c+FROM+VoiceCall"
        print(
            f"""Inbound calls also become VoiceCalls (Salesforce Voice) through the stand-in's
Telephony Integration API at {voice} (README: Salesforce Voice). List them:
  curl -s --cacert {standin.ca_file} -H 'Authorization: Bearer {session}' \\
    '{standin.instance_url}/services/data/v59.0/query?q={calls}'""",
            flush=True,
        )


def print_welcome(
    settings: Settings, relay: Relay, api: ControlApi, url: str, embedded: EmbeddedServer | None
) -> None:
    """How to use what ``up`` started: addresses, a token, the API key, commands to try."""
    base = f"{settings.relay.host}:{relay.port}"
    api_base = f"http://{settings.relay.host}:{api.port}"
    key = next(iter(k for k, p in settings.relay.api_keys.items() if p == DEV_PARTNER_ID), "KEY")
    token = (
        mint_token(settings.relay.secret, DEV_AGENT_ID, DEV_PARTNER_ID, 12 * 3600)
        if settings.relay.secret
        else "(RS256/ES256 configured: mint tokens with your own issuer)"
    )
    where = (
        f"embedded {embedded.binary.name}, data in {embedded.data_dir}"
        if embedded
        else "from SOFTPHONE_RELAY_REDIS_URL"
    )
    sample = json.dumps(
        {
            "partnerId": DEV_PARTNER_ID,
            "businessSegmentId": DEV_PARTNERS[DEV_PARTNER_ID].businessSegmentId,
            "channelOriginId": DEV_PARTNERS[DEV_PARTNER_ID].channelOriginId,
            "dialTo": "+18883973342",
            "participantType": "Traveler",
        }
    )
    print(
        f"""softphone-relay is up.

  websocket   ws://{base}/v1/socket   (subprotocol softphone.v1)
  agent token {token}
              (agent {DEV_AGENT_ID}, partner {DEV_PARTNER_ID}, valid 12 h)
  redis       {url}   ({where})
  archive     {settings.projections.archive_url}   (each hour of the log, once it is over)
  http        http://{base}/healthz   http://{base}/readyz   http://{base}/metrics
  control API {api_base}/v1/openapi.json   (API key {key})
  demo        http://{base}/demo   (a fake softphone, agent {DEMO_AGENT_ID}: open it in a browser)

Try it, in another terminal, with a softphone (or a test client) connected as {DEV_AGENT_ID}:
  softphone-relay call {DEV_AGENT_ID} '+1 888 397 3342'       # click-to-dial, through the log
  softphone-relay presence {DEV_AGENT_ID} available           # ask the softphone to change
  softphone-relay presence {DEV_AGENT_ID}                     # what it last reported
  curl -s -X POST -H 'Authorization: Bearer {key}' -d '{{"dialTo": "+18883973342"}}' \\
    {api_base}/v1/agents/{DEV_AGENT_ID}/calls
  softphone-relay token --agent alice --partner {DEV_PARTNER_ID}
  softphone-relay send {DEV_AGENT_ID} start_call '{sample}'   # a raw command, no request
  redis-cli -u {url} XRANGE 'sp:events:{{0}}' - +      # the event log""",
        flush=True,
    )
