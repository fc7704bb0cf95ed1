"""``softphone-relay serve``: one relay and its control API, from configuration; and how ``up``
starts the same two.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from collections.abc import Callable

from relay.backoff import Backoff
from relay.control.api import ControlApi
from relay.errors import ConfigError, reason
from relay.log import clients
from relay.log.clients import LOG_ERRORS
from relay.server.server import Relay
from relay.tls import server_certificate
from softphone_relay.cli.runtime import raise_open_file_limit, stop_on_signals
from softphone_relay.settings import Settings, settings_from_env

log = logging.getLogger(__name__)


async def start_relay(
    settings: Settings,
    url: str,
    stop: asyncio.Event,
    demo_token: Callable[[], str] | None = None,
    tls: ssl.SSLContext | None = None,
) -> Relay | None:
    """Start a relay, waiting (with backoff) for Redis to become reachable; None if stopped.

    A port that cannot be bound is no reason to wait: it raises :class:`ConfigError`.
    """
    backoff = Backoff(base=0.2, cap=5.0)
    while not stop.is_set():
        relay = Relay(settings.relay, clients.connect(url), demo_token=demo_token, tls=tls)
        try:
            await relay.start()
            return relay
        except LOG_ERRORS as error:
            await relay.close()
            delay = backoff.failure()
            log.warning(
                "event=redis_unreachable url=%s retry_in=%.1fs error=%r", url, delay, str(error)
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
        except BaseException:
            await relay.close()
            raise
    return None


async def start_api(api: ControlApi, settings: Settings, tls: ssl.SSLContext | None = None) -> None:
    """Start the control API on ``SOFTPHONE_RELAY_API_PORT``; a taken port stops the process."""
    try:
        await api.start(settings.relay.host, settings.relay.api_port, tls)
    except OSError as error:
        raise ConfigError(
            "SOFTPHONE_RELAY_API_PORT (--api-port)",
            f"cannot listen on {settings.relay.host}:{settings.relay.api_port}: {reason(error)}",
        ) from None


async def serve(*, data_dir: str | None = None) -> int:
    """Run a relay and its control API until SIGINT or SIGTERM."""
    del data_dir  # serve is configured by the environment only
    settings = settings_from_env(os.environ)
    if settings.relay.redis_url is None:
        raise ConfigError("SOFTPHONE_RELAY_REDIS_URL", "required by serve (up starts its own)")
    certificate = server_certificate(settings.relay.tls_cert_file, settings.relay.tls_key_file)
    tls = certificate.context if certificate else None
    stop = stop_on_signals()
    relay = await start_relay(settings, settings.relay.redis_url, stop, tls=tls)
    if relay is None:
        return 0
    raise_open_file_limit()  # once the configuration held, before sockets come in numbers
    api_redis = clients.connect(settings.relay.redis_url)
    api = ControlApi(settings.relay, api_redis)
    try:
        await start_api(api, settings, tls)
        reloading = asyncio.create_task(certificate.watch()) if certificate else None
        await stop.wait()
        if reloading is not None:
            reloading.cancel()
    finally:
        await api.close()
        await relay.close()
        await api_redis.aclose()
    return 0
