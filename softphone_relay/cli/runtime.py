"""What every command of the command line shares: logging, signals, the event loop, and where
the configuration and a running ``up`` are found.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import resource
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Final

from relay.errors import ConfigError
from softphone_relay.cli.dev import DEV_PARTNERS, DevState
from softphone_relay.settings import Settings, settings_from_env, with_fields

log = logging.getLogger(__name__)

_LINE_BREAKING: Final = {
    **{code: f"\\x{code:02x}" for code in [*range(0x20), 0x7F, 0x85]},
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}
"""Control characters and Unicode line separators, as escapes."""


class OneLineFormatter(logging.Formatter):
    """``key=value`` lines, one per event: every control character and line separator in the
    message is escaped, so no value a client sent (an id, a status, a number) can start a line
    of its own, such as a forged ``level=ERROR``. A traceback still follows on lines of its
    own."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        """The line, its message escaped."""
        record.message = record.message.translate(_LINE_BREAKING)
        return super().formatMessage(record)


def configure_logging(level: str) -> None:
    """One ``key=value`` line per log event, on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        OneLineFormatter("ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")
    )
    logging.basicConfig(level=level.upper(), handlers=[handler])
    # websockets logs every connection at INFO; the relay logs its own session lines.
    logging.getLogger("websockets").setLevel(
        max(logging.WARNING, logging.getLevelName(level.upper()))
    )


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM; install it before announcing readiness."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


def raise_open_file_limit() -> tuple[int, int]:
    """Raise this process's soft limit of open files to its hard limit (a relay holds one per
    socket: 10,000 agents want more than the usual 1,024), and log both; (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as error:
            log.warning(
                "event=open_file_limit_not_raised soft=%d hard=%d error=%r", soft, hard, error
            )
    log.info("event=open_file_limit soft=%d hard=%d", soft, hard)
    return soft, hard


GC_THRESHOLDS: Final = (50_000, 20, 100)
"""Python's defaults are (700, 10, 10): a relay at 50,000 events/s collected its youngest
generation about a thousand times a second."""


def run(coroutine: Coroutine[Any, Any, int | None]) -> int:
    """Run a command's coroutine on uvloop where it is installed; its exit status.

    The garbage collector is set for a long-running server that allocates a little per event
    and keeps few cycles: what was loaded at start is frozen (never scanned again) and
    collections are rarer (:data:`GC_THRESHOLDS`); the relay's CPU per event fell about 8%
    (``bench/ingest.py``)."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine) or 0
    return uvloop.run(coroutine) or 0


def data_dir(given: str | None) -> Path:
    """Where ``up`` keeps its state: ``--data-dir``, else ``SOFTPHONE_RELAY_DATA_DIR``, else
    ``./data``."""
    return Path(given or os.environ.get("SOFTPHONE_RELAY_DATA_DIR") or "data").resolve()


def settings_and_url(given_data_dir: str | None) -> tuple[Settings, str]:
    """The configuration, and the log's URL (from the environment or a running ``up``)."""
    settings = settings_from_env(os.environ)
    if settings.relay.redis_url is not None:
        return settings, settings.relay.redis_url
    url = DevState(data_dir(given_data_dir)).redis_url()
    if url is None:
        raise ConfigError("SOFTPHONE_RELAY_REDIS_URL", "not set, and no `softphone-relay up` runs")
    if settings.relay.partners is None:
        settings = with_fields(settings, {"partners": DEV_PARTNERS})
    if settings.projections.archive_url is None:
        state = DevState(data_dir(given_data_dir))
        settings = with_fields(settings, {"archive_url": state.archive_url()})
    return settings, url
