"""``softphone-relay``: the command line, and the composition root that wires the packages.

Nothing imports this module. ``up`` runs everything on embedded defaults for a first try;
``serve`` runs a relay and its control API from configuration; ``project`` runs projection
workers; the operator commands (``token``, ``send``, ``call``, ``presence``) are in
``operate.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import redis.asyncio as aioredis
import requests
from prometheus_client import CollectorRegistry, start_http_server
from redis.exceptions import RedisError
from simple_salesforce.exceptions import SalesforceError

from softphone_relay.cli import history, operate
from softphone_relay.cli.dev import (
    DEMO_AGENT_ID,
    DEV_AGENT_ID,
    DEV_ORIGINS,
    DEV_PARTNER_ID,
    DEV_PARTNERS,
    DevState,
    StandInAddress,
    data_dir,
    record_standin,
)
from softphone_relay.control.api import ControlApi
from softphone_relay.ops.retention import keep_trimmed
from softphone_relay.ops.status import watch as watch_log
from softphone_relay.projections.calls.projection import CallRecordsProjection
from softphone_relay.projections.dispatch.projection import DispatchProjection
from softphone_relay.projections.errors import ProjectionError
from softphone_relay.projections.metrics import LogGauges, SalesforceMetrics, WorkerMetrics
from softphone_relay.projections.presence.projection import PresenceProjection
from softphone_relay.projections.worker import Worker, WorkerSettings
from softphone_relay.relay import event_log
from softphone_relay.relay.auth import mint_token
from softphone_relay.relay.backoff import Backoff
from softphone_relay.relay.embedded import EmbeddedServer, EmbeddedServerError
from softphone_relay.relay.errors import ConfigError, RelayError
from softphone_relay.relay.server import Relay
from softphone_relay.relay.settings import Settings, settings_from_env
from softphone_relay.salesforce.connect import (
    SalesforceConnection,
    SalesforceSettings,
    SessionAuth,
    salesforce_settings_from_env,
)
from softphone_relay.salesforce.picklists import DispositionRefresher
from softphone_relay.salesforce.sink import SalesforceSink
from softphone_relay.salesforce.standin.server import StandIn

log = logging.getLogger("softphone_relay")


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


async def _start_relay(
    settings: Settings,
    url: str,
    stop: asyncio.Event,
    demo_token: Callable[[], str] | None = None,
) -> Relay | None:
    """Start a relay, waiting (with backoff) for Redis to become reachable; None if stopped."""
    backoff = Backoff(base=0.2, cap=5.0)
    while not stop.is_set():
        relay = Relay(settings, event_log.connect(url), demo_token=demo_token)
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
    api_redis = event_log.connect(settings.redis_url)
    api = ControlApi(settings, api_redis)
    try:
        await _start_api(api, settings)
        await stop.wait()
    finally:
        await api.close()
        await relay.close()
        await api_redis.aclose()


async def _start_api(api: ControlApi, settings: Settings) -> None:
    try:
        await api.start(settings.host, settings.api_port)
    except OSError as error:
        raise ConfigError(
            "SOFTPHONE_RELAY_API_PORT",
            f"cannot listen on {settings.host}:{settings.api_port}: {error.strerror}",
        ) from None


GROUPS = ("calls", "dispatch", "presence")


def _worker_settings(settings: Settings, *, batch_wait: bool = False) -> WorkerSettings:
    """Only the calls worker waits for batches to fill; requests are latency-critical."""
    return WorkerSettings(
        shards=settings.shards,
        batch_wait_ms=int(settings.batch_wait * 1000) if batch_wait else 0,
        claim_idle_ms=int(settings.claim_idle * 1000),
    )


async def _calls_worker(
    redis: aioredis.Redis,
    settings: Settings,
    salesforce: SalesforceSettings,
    registry: CollectorRegistry,
    metrics: WorkerMetrics,
) -> tuple[Worker, SalesforceConnection]:
    """A ``calls`` worker, logged in to the org (a refused login stops here, clearly)."""
    connection = SalesforceConnection(salesforce)
    try:
        await asyncio.to_thread(connection.client)
        log.info("event=salesforce_connected flow=%r", connection.flow)
    except requests.RequestException as error:
        # Unreachable is not refused: the worker starts and pauses until the org answers.
        log.warning("event=salesforce_unreachable flow=%r error=%r", connection.flow, str(error))
    sink = SalesforceSink(connection, salesforce.mapping, metrics=SalesforceMetrics(registry))
    worker_settings = _worker_settings(settings, batch_wait=True)
    projection = CallRecordsProjection(redis, sink, lock_ms=4 * worker_settings.claim_idle_ms)
    return Worker(redis, projection, worker_settings, metrics=metrics), connection


def _request_workers(
    redis: aioredis.Redis, settings: Settings, groups: list[str], metrics: WorkerMetrics
) -> list[Worker]:
    """The ``dispatch`` and ``presence`` workers among ``groups``."""
    workers = []
    if "dispatch" in groups:
        dispatch = DispatchProjection(redis, partners=settings.partners, ttl=settings.command_ttl)
        workers.append(Worker(redis, dispatch, _worker_settings(settings), metrics=metrics))
    if "presence" in groups:
        presence = PresenceProjection(redis)
        workers.append(Worker(redis, presence, _worker_settings(settings), metrics=metrics))
    return workers


async def _run_workers(
    workers: list[Worker],
    stop: asyncio.Event,
    chores: Sequence[Coroutine[Any, Any, None]] = (),
) -> None:
    """Run the workers until ``stop`` or a worker fails; ``chores`` (the disposition
    refresher, the retention) run beside them and end on ``stop``."""
    running = [asyncio.create_task(w.run()) for w in workers]
    stopped = asyncio.create_task(stop.wait())
    background = [asyncio.create_task(chore) for chore in chores]
    await asyncio.wait([*running, stopped], return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    stop.set()
    for worker in workers:
        worker.stop()
    await asyncio.gather(*running, *background)


def _chores(
    redis: aioredis.Redis,
    settings: Settings,
    stop: asyncio.Event,
    refresher: DispositionRefresher | None,
    registry: CollectorRegistry,
) -> list[Coroutine[Any, Any, None]]:
    """What runs beside the workers: the log gauges, picklist refreshes, and the retention if
    one is set."""
    chores = [watch_log(redis, settings.shards, LogGauges(registry), stop)]
    if refresher is not None:
        chores.append(refresher.run(refresher.interval, stop))
    if settings.retention is not None:
        chores.append(keep_trimmed(redis, settings.shards, settings.retention, stop))
    return chores


async def _project(args: argparse.Namespace) -> None:
    settings = settings_from_env(os.environ)
    if settings.redis_url is None:
        raise ConfigError("SOFTPHONE_RELAY_REDIS_URL", "required by project")
    groups = [g.strip() for g in args.group.split(",") if g.strip()]
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        raise ConfigError(
            "--group", f"unknown group {', '.join(unknown)}; available: {', '.join(GROUPS)}"
        )
    salesforce = salesforce_settings_from_env(os.environ)
    if "calls" in groups and salesforce is None:
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
    redis = event_log.connect(settings.redis_url)
    connection: SalesforceConnection | None = None
    metrics = WorkerMetrics(registry)
    try:
        workers = _request_workers(redis, settings, groups, metrics)
        refresher = None
        if "calls" in groups:
            assert salesforce is not None
            calls, connection = await _calls_worker(redis, settings, salesforce, registry, metrics)
            workers.append(calls)
            refresher = DispositionRefresher(
                connection, redis, settings.partners, interval=settings.disposition_refresh
            )
        log.info("event=project_started groups=%s", ",".join(w.group for w in workers))
        await _run_workers(workers, stop, _chores(redis, settings, stop, refresher, registry))
    finally:
        if connection is not None:
            connection.close()
        await redis.aclose()


def _up_settings(args: argparse.Namespace, state: DevState) -> Settings:
    overrides: dict[str, object] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    if args.api_port is not None:
        overrides["api_port"] = args.api_port
    settings = settings_from_env(os.environ, **overrides)
    if settings.secret is None and settings.public_key is None:
        overrides["secret"] = state.secret()
    if settings.partners is None:
        overrides["partners"] = DEV_PARTNERS
    if not settings.allowed_origins:
        overrides["allowed_origins"] = DEV_ORIGINS
    if not settings.api_keys:
        overrides["api_keys"] = {state.api_key(): DEV_PARTNER_ID}
    return settings_from_env(os.environ, **overrides)


async def _up(args: argparse.Namespace) -> None:
    state = DevState(data_dir(args))
    settings = _up_settings(args, state)
    stop = _stop_on_signals()
    embedded: EmbeddedServer | None = None
    url = settings.redis_url
    if url is None:
        embedded = EmbeddedServer(state.data_dir / "redis")
        await asyncio.to_thread(embedded.start)
        url = embedded.url
        state.set_redis_url(url)
    secret = settings.secret

    def demo_token() -> str:
        assert secret is not None
        return mint_token(secret, DEMO_AGENT_ID, DEV_PARTNER_ID, 12 * 3600)

    try:
        relay = await _start_relay(settings, url, stop, demo_token if secret else None)
        if relay is None:
            return
        standin = StandIn(ca_dir=state.data_dir)
        redis = event_log.connect(url)
        api = ControlApi(settings, redis)
        connection: SalesforceConnection | None = None
        try:
            await _start_api(api, settings)
            salesforce = salesforce_settings_from_env(os.environ)
            if salesforce is None:
                await standin.start()
                salesforce = SalesforceSettings(
                    auth=SessionAuth(standin.instance_url, standin.state.new_session()),
                    ca_file=str(standin.ca_file),
                )
                address = StandInAddress(
                    standin.instance_url, standin.state.new_session(), str(standin.ca_file)
                )
                record_standin(state, address)
            registry = relay.metrics.registry
            metrics = WorkerMetrics(registry)
            calls, connection = await _calls_worker(redis, settings, salesforce, registry, metrics)
            workers = [calls, *_request_workers(redis, settings, list(GROUPS), metrics)]
            refresher = DispositionRefresher(
                connection, redis, settings.partners, interval=settings.disposition_refresh
            )
            _print_welcome(settings, relay, api, url, embedded)
            _print_salesforce(salesforce, standin if standin.port else None)
            print("\nCtrl-C stops everything this started.", flush=True)
            await _run_workers(workers, stop, _chores(redis, settings, stop, refresher, registry))
        finally:
            await api.close()
            await relay.close()
            await standin.close()
            if connection is not None:
                connection.close()
            await redis.aclose()
    finally:
        record_standin(state, None)
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
    settings: Settings, relay: Relay, api: ControlApi, url: str, embedded: EmbeddedServer | None
) -> None:
    base = f"{settings.host}:{relay.port}"
    api_base = f"http://{settings.host}:{api.port}"
    key = next(iter(k for k, p in settings.api_keys.items() if p == DEV_PARTNER_ID), "KEY")
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="softphone-relay", description=__doc__)
    parser.add_argument("--log-level", default="info", help="debug, info, warning, error")
    parser.add_argument("--data-dir", help="where `up` keeps its state (default ./data)")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start everything on embedded defaults")
    up.add_argument("--host", help="listen address (default 127.0.0.1)")
    up.add_argument("--port", type=int, help="listen port (default 8765)")
    up.add_argument("--api-port", type=int, help="control API port (default 8766)")
    sub.add_parser("serve", help="run a relay from SOFTPHONE_RELAY_* configuration")
    project = sub.add_parser("project", help="run projection workers (consumer groups)")
    project.add_argument(
        "--group",
        default=",".join(GROUPS),
        help=f"comma-separated consumer groups (default {','.join(GROUPS)})",
    )
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
    call = sub.add_parser("call", help="click-to-dial a number on an agent's softphone")
    call.add_argument("agent")
    call.add_argument("number", help="the number to dial (E.164, or national with a region)")
    call.add_argument("--from", dest="dial_from", help="caller id to present (E.164)")
    call.add_argument("--participant-type", choices=["Traveler", "Supplier", "Agent"])
    call.add_argument("--record-id", help="the CRM record the call is about")
    call.add_argument("--wait", type=float, default=5.0, help="seconds to follow it (default 5)")
    presence = sub.add_parser("presence", help="show, or ask to change, an agent's presence")
    presence.add_argument("agent")
    presence.add_argument("softphone_id", nargs="?", help="the presence to switch to")
    presence.add_argument("--wait", type=float, default=5.0, help="seconds to follow it")
    dlq = sub.add_parser("dlq", help="dead letters: list, show, requeue or drop")
    dlq.add_argument("action", choices=["list", "show", "requeue", "drop"])
    dlq.add_argument("ids", nargs="*", help="dead-letter ids (show, requeue, drop)")
    dlq.add_argument("--group", default="calls", help="the projection group (default calls)")
    dlq.add_argument("--error", help="requeue/drop the ones whose error contains this text")
    dlq.add_argument("--all", action="store_true", help="requeue/drop every one")
    dlq.add_argument("--json", action="store_true", help="list: one JSON object per line")
    dlq.add_argument("--limit", type=int, default=1000, help="list: at most this many")
    status = sub.add_parser("status", help="shards, consumer groups, dead letters, agents")
    status.add_argument("--json", action="store_true", help="one JSON object")
    tail = sub.add_parser("tail", help="follow the event log (or print it from a point)")
    tail.add_argument("--from", dest="from_", help="a stream id or ISO time (default: now)")
    tail.add_argument("--agent")
    tail.add_argument("--conversation")
    tail.add_argument("--partner")
    tail.add_argument("--name", help="comma-separated event names")
    tail.add_argument("--json", action="store_true", help="one JSON object per line")
    tail.add_argument(
        "--no-follow", dest="follow", action="store_false", help="stop at the end of the log"
    )
    _history_parsers(sub)
    return parser


def _range_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--from", dest="from_", default="-", help="stream id or ISO time (-)")
    command.add_argument("--to", default="+", help="stream id or ISO time (default +, the end)")
    command.add_argument("--partner")
    command.add_argument("--agent")
    command.add_argument("--conversation")


def _history_parsers(sub: Any) -> None:
    replay = sub.add_parser("replay", help="re-run the calls projection over a range of the log")
    _range_arguments(replay)
    replay.add_argument("--group", default="calls", help="the projection (calls)")
    replay.add_argument(
        "--target",
        default="salesforce",
        help="salesforce (the configured org), standin (up's), or jsonl:PATH",
    )
    replay.add_argument("--sf-env", help="a file of SOFTPHONE_RELAY_SF_* lines: another org")
    replay.add_argument("--dry-run", action="store_true", help="show the differences, write none")
    replay.add_argument(
        "--include-partial",
        action="store_true",
        help="also write conversations that began before --from (from their events in range)",
    )
    replay.add_argument("--json", action="store_true", help="dry run: changes as JSON lines")
    export = sub.add_parser("export", help="write a range of the log as JSONL")
    _range_arguments(export)
    export.add_argument("--out", help="file to write (default stdout)")
    trim = sub.add_parser("trim", help="apply the retention: trim old, processed entries")
    trim.add_argument("--older-than", help="a duration such as 90d (default: the retention)")
    trim.add_argument("--dry-run", action="store_true", help="count, remove nothing")
    trim.add_argument("--json", action="store_true", help="one JSON object per shard")


def _run(coroutine: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(coroutine)
    else:
        uvloop.run(coroutine)


def _run_code(coroutine: Coroutine[Any, Any, int]) -> int:
    return asyncio.run(coroutine)


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
                operate.token(args)
            case "send":
                _run(operate.send(args))
            case "call":
                return _run_code(operate.call(args))
            case "presence":
                return _run_code(operate.presence(args))
            case "dlq":
                return _run_code(operate.dlq(args))
            case "status":
                return _run_code(operate.status(args))
            case "tail":
                return _run_code(operate.tail(args))
            case "replay":
                return _run_code(history.replay(args))
            case "export":
                return _run_code(history.export(args))
            case "trim":
                return _run_code(history.trim(args))
    except (RelayError, ProjectionError, EmbeddedServerError, ValueError) as error:
        print(f"softphone-relay: error: {error}", file=sys.stderr)
        return 2
    except RedisError as error:
        print(
            f"softphone-relay: error: the event log (Redis) did not answer: {error}",
            file=sys.stderr,
        )
        return 2
    except (SalesforceError, requests.RequestException) as error:
        print(f"softphone-relay: error: Salesforce: {str(error)[:300]}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
