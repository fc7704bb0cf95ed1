"""``softphone-relay``: the command line, and the composition root that wires the packages.

Nothing imports this module. ``up`` runs everything on embedded defaults for a first try;
``serve`` runs a relay from configuration; ``token`` mints an agent token; ``send`` enqueues a
command for an agent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

import requests
from prometheus_client import CollectorRegistry, start_http_server
from redis.exceptions import RedisError

from projections.call_records import CallRecordsProjection
from projections.errors import ProjectionError
from projections.metrics import SalesforceMetrics
from projections.salesforce import SalesforceSink
from projections.sf_connect import (
    SalesforceConnection,
    SalesforceSettings,
    SessionAuth,
    salesforce_settings_from_env,
)
from projections.sfstandin.server import StandIn
from projections.worker import Worker, WorkerSettings
from relay import log as event_log
from relay.auth import mint_token
from relay.backoff import Backoff
from relay.commands import CommandLog
from relay.embedded import EmbeddedServer, EmbeddedServerError
from relay.errors import ConfigError, RelayError
from relay.server import Relay
from relay.settings import Partner, Settings, settings_from_env

log = logging.getLogger("softphone_relay")

DEV_PARTNER_ID = "215fd887-39be-4935-981f-2670d6afeaa7"
DEV_AGENT_ID = "dev-agent"
DEV_PARTNERS = {
    DEV_PARTNER_ID: Partner(
        disposition=["code1", "code2"],
        businessSegmentId="d6afeaa7-39be-4935-981f-2670215fd887",
        channelOriginId="57053e21-0440-4689-a27a-513d7dceebde",
        dialFrom="+18449401117",
    )
}
DEV_ORIGINS = ("http://localhost:*", "http://127.0.0.1:*")


class DevState:
    """What ``up`` leaves in its data directory so that other commands find it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def secret(self) -> str:
        """The development signing secret, created on first use."""
        path = self.data_dir / "dev-secret"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip()

    def existing_secret(self) -> str | None:
        """The development secret if ``up`` made one."""
        path = self.data_dir / "dev-secret"
        return path.read_text().strip() if path.exists() else None

    def redis_url(self) -> str | None:
        """The URL of the embedded server of a running ``up``."""
        path = self.data_dir / "redis-url"
        return path.read_text().strip() if path.exists() else None

    def set_redis_url(self, url: str | None) -> None:
        """Record (or, with None, forget) the embedded server's URL."""
        path = self.data_dir / "redis-url"
        if url is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(url)


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir or os.environ.get("SOFTPHONE_RELAY_DATA_DIR") or "data").resolve()


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
        stream=sys.stderr,
    )
    # websockets logs every connection at INFO; the relay logs its own session lines.
    logging.getLogger("websockets").setLevel(
        max(logging.WARNING, logging.getLevelName(level.upper()))
    )


def _stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM; install it before announcing readiness."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def _start_relay(settings: Settings, url: str, stop: asyncio.Event) -> Relay | None:
    """Start a relay, waiting (with backoff) for Redis to become reachable; None if stopped."""
    backoff = Backoff(base=0.2, cap=5.0)
    while not stop.is_set():
        relay = Relay(settings, event_log.connect(url))
        try:
            await relay.start()
            return relay
        except (RedisError, OSError) as error:
            await relay.close()
            delay = backoff.failure()
            log.warning(
                "event=redis_unreachable url=%s retry_in=%.1fs error=%r", url, delay, str(error)
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
    return None


async def _serve(settings: Settings) -> None:
    if settings.redis_url is None:
        raise ConfigError("SOFTPHONE_RELAY_REDIS_URL", "required by serve (up starts its own)")
    stop = _stop_on_signals()
    relay = await _start_relay(settings, settings.redis_url, stop)
    if relay is None:
        return
    try:
        await stop.wait()
    finally:
        await relay.close()


async def _calls_worker(
    url: str, settings: Settings, salesforce: SalesforceSettings, registry: CollectorRegistry
) -> tuple[Worker, SalesforceConnection]:
    """A ``calls`` worker, logged in to the org (a refused login stops here, clearly)."""
    connection = SalesforceConnection(salesforce)
    try:
        await asyncio.to_thread(connection.client)
        log.info("event=salesforce_connected flow=%r", connection.flow)
    except requests.RequestException as error:
        # Unreachable is not refused: the worker starts and pauses until the org answers.
        log.warning("event=salesforce_unreachable flow=%r error=%r", connection.flow, str(error))
    redis = event_log.connect(url)
    sink = SalesforceSink(connection, salesforce.mapping, metrics=SalesforceMetrics(registry))
    claim_idle_ms = int(settings.claim_idle * 1000)
    worker_settings = WorkerSettings(
        shards=settings.shards,
        batch_wait_ms=int(settings.batch_wait * 1000),
        claim_idle_ms=claim_idle_ms,
    )
    projection = CallRecordsProjection(redis, sink, lock_ms=4 * claim_idle_ms)
    return Worker(redis, projection, worker_settings), connection


async def _project(args: argparse.Namespace) -> None:
    settings = settings_from_env(os.environ)
    if settings.redis_url is None:
        raise ConfigError("SOFTPHONE_RELAY_REDIS_URL", "required by project")
    groups = [g.strip() for g in args.group.split(",") if g.strip()]
    unknown = sorted(set(groups) - {"calls"})
    if unknown:
        raise ConfigError("--group", f"unknown group {', '.join(unknown)}; available: calls")
    salesforce = salesforce_settings_from_env(os.environ)
    if salesforce is None:
        raise ConfigError(
            "SOFTPHONE_RELAY_SF_INSTANCE_URL",
            "the calls group needs a Salesforce org: a session (SF_INSTANCE_URL + SF_SESSION_ID) "
            "or a login (SF_USERNAME, SF_CONSUMER_KEY, ...)",
        )
    stop = _stop_on_signals()
    registry = CollectorRegistry()
    if settings.worker_metrics_port:
        try:
            start_http_server(settings.worker_metrics_port, settings.host, registry=registry)
        except OSError as error:
            raise ConfigError(
                "SOFTPHONE_RELAY_WORKER_METRICS_PORT",
                f"cannot listen on {settings.host}:{settings.worker_metrics_port}: {error}",
            ) from None
    worker, connection = await _calls_worker(settings.redis_url, settings, salesforce, registry)
    running = asyncio.create_task(worker.run())
    try:
        await asyncio.wait(
            [running, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        worker.stop()
        await running
    finally:
        connection.close()


def _up_settings(args: argparse.Namespace, state: DevState) -> Settings:
    overrides: dict[str, object] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    settings = settings_from_env(os.environ, **overrides)
    if settings.secret is None and settings.public_key is None:
        overrides["secret"] = state.secret()
    if settings.partners is None:
        overrides["partners"] = DEV_PARTNERS
    if not settings.allowed_origins:
        overrides["allowed_origins"] = DEV_ORIGINS
    return settings_from_env(os.environ, **overrides)


async def _up(args: argparse.Namespace) -> None:
    state = DevState(_data_dir(args))
    settings = _up_settings(args, state)
    stop = _stop_on_signals()
    embedded: EmbeddedServer | None = None
    url = settings.redis_url
    if url is None:
        embedded = EmbeddedServer(state.data_dir / "redis")
        await asyncio.to_thread(embedded.start)
        url = embedded.url
        state.set_redis_url(url)
    try:
        relay = await _start_relay(settings, url, stop)
        if relay is None:
            return
        standin = StandIn(ca_dir=state.data_dir)
        try:
            salesforce = salesforce_settings_from_env(os.environ)
            if salesforce is None:
                await standin.start()
                salesforce = SalesforceSettings(
                    auth=SessionAuth(standin.instance_url, standin.state.new_session()),
                    ca_file=str(standin.ca_file),
                )
            worker, connection = await _calls_worker(
                url, settings, salesforce, relay.metrics.registry
            )
            projecting = asyncio.create_task(worker.run())
            _print_welcome(settings, relay, url, embedded)
            _print_salesforce(salesforce, standin if standin.port else None)
            print("\nCtrl-C stops everything this started.", flush=True)
            await stop.wait()
            worker.stop()
            await projecting
            connection.close()
        finally:
            await relay.close()
            await standin.close()
    finally:
        if embedded is not None:
            state.set_redis_url(None)
            await asyncio.to_thread(embedded.stop)
    print("softphone-relay stopped.", flush=True)


def _print_salesforce(salesforce: SalesforceSettings, standin: StandIn | None) -> None:
    if standin is None or not isinstance(salesforce.auth, SessionAuth):
        print("\nCall records go to your Salesforce org.", flush=True)
        return
    query = "SELECT+Id,Subject,CallObject,CallType,Status,Description+FROM+Task"
    print(
        f"""
Call records go to the local Salesforce stand-in at {standin.instance_url}
(no org configured: set SOFTPHONE_RELAY_SF_INSTANCE_URL and SOFTPHONE_RELAY_SF_SESSION_ID).
List the Tasks it holds:
  curl -s --cacert {standin.ca_file} -H 'Authorization: Bearer {salesforce.auth.session_id}' \\
    '{standin.instance_url}/services/data/v59.0/query?q={query}'""",
        flush=True,
    )


def _print_welcome(
    settings: Settings, relay: Relay, url: str, embedded: EmbeddedServer | None
) -> None:
    base = f"{settings.host}:{relay.port}"
    token = (
        mint_token(settings.secret, DEV_AGENT_ID, DEV_PARTNER_ID, 12 * 3600)
        if settings.secret
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
  http        http://{base}/healthz   http://{base}/readyz   http://{base}/metrics

Try it, in another terminal:
  softphone-relay token --agent alice --partner {DEV_PARTNER_ID}
  softphone-relay send {DEV_AGENT_ID} start_call '{sample}'
  redis-cli -u {url} XRANGE 'sp:events:{{0}}' - +      # the event log""",
        flush=True,
    )


async def _send(args: argparse.Namespace) -> None:
    state = DevState(_data_dir(args))
    settings = settings_from_env(os.environ)
    url = settings.redis_url or state.redis_url()
    if url is None:
        raise ConfigError("SOFTPHONE_RELAY_REDIS_URL", "not set, and no `softphone-relay up` runs")
    try:
        data = json.loads(args.json)
    except json.JSONDecodeError as error:
        raise ConfigError("JSON", f"not valid JSON: {error}") from None
    redis = event_log.connect(url)
    try:
        command_id = await CommandLog(redis).enqueue(
            args.agent, args.name, data, ttl_seconds=args.ttl or settings.command_ttl
        )
    finally:
        await redis.aclose()
    print(command_id)


def _token(args: argparse.Namespace) -> None:
    settings = settings_from_env(os.environ)
    secret = settings.secret or DevState(_data_dir(args)).existing_secret()
    if secret is None:
        raise ConfigError("SOFTPHONE_RELAY_SECRET", "needed to mint a token (or run `up` first)")
    print(mint_token(secret, args.agent, args.partner, args.ttl))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="softphone-relay", description=__doc__)
    parser.add_argument("--log-level", default="info", help="debug, info, warning, error")
    parser.add_argument("--data-dir", help="where `up` keeps its state (default ./data)")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start everything on embedded defaults")
    up.add_argument("--host", help="listen address (default 127.0.0.1)")
    up.add_argument("--port", type=int, help="listen port (default 8765)")
    sub.add_parser("serve", help="run a relay from SOFTPHONE_RELAY_* configuration")
    project = sub.add_parser("project", help="run projection workers (consumer groups)")
    project.add_argument("--group", default="calls", help="comma-separated groups (calls)")
    token = sub.add_parser("token", help="mint an HS256 agent token")
    token.add_argument("--agent", required=True)
    token.add_argument("--partner", required=True)
    token.add_argument("--ttl", type=int, default=3600, help="seconds (default 3600)")
    send = sub.add_parser("send", help="enqueue a command for an agent")
    send.add_argument("agent")
    send.add_argument(
        "name", help="start_call, update_presence, get_presence, disposition, partner_config"
    )
    send.add_argument("json", help="the payload as JSON (null for get_presence)")
    send.add_argument("--ttl", type=float, help="seconds until it expires (default 30)")
    return parser


def _run(coroutine: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(coroutine)
    else:
        uvloop.run(coroutine)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``softphone-relay`` console script."""
    args = _parser().parse_args(argv)
    _configure_logging(args.log_level)
    try:
        match args.command:
            case "up":
                _run(_up(args))
            case "serve":
                _run(_serve(settings_from_env(os.environ)))
            case "project":
                _run(_project(args))
            case "token":
                _token(args)
            case "send":
                _run(_send(args))
    except (RelayError, ProjectionError, EmbeddedServerError, ValueError) as error:
        print(f"softphone-relay: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
