"""One Salesforce request at a time, made the way the org expects (simple-salesforce, blocking).

:meth:`OrgClient.call` makes one request: it waits as the org nears its daily API limit
(``limits.py``), logs in again once when the session expired, stops every request for
``pause_seconds`` once the daily quota is used up, and tries again after a short backoff
when the org turned the request away without running it (the concurrent-request limit).

A request that may have run although no answer came (a timeout, a dropped connection, a 5xx)
is tried again in place only when it is ``idempotent`` (a query, an update by Id, an upsert by
External ID). A create is not: its caller first asks the org what it committed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
)

from projections.salesforce.connect import SalesforceConnection
from projections.salesforce.failures import (
    SIZING_STATUSES,
    OrgError,
    is_concurrency_limit,
    is_daily_limit,
    is_transient,
    org_errors,
)
from projections.salesforce.limits import request_delay
from projections.salesforce.metrics import SalesforceMetrics
from relay.backoff import Backoff

log = logging.getLogger(__name__)

REQUEST_TIMEOUT: Final = 30.0
T = TypeVar("T")


class OrgPaused(Exception):
    """The org's daily API quota is used up: no request is made until the pause ends."""

    def __init__(self, seconds: float) -> None:
        super().__init__("REQUEST_LIMIT_EXCEEDED: the org's daily API limit is used up")
        self.seconds = seconds


def errors_of(error: SalesforceError) -> list[OrgError]:
    """The errors a failed request's answer lists."""
    return org_errors(error.content) if isinstance(error.content, list) else []


def error_code(error: Exception) -> str:
    """A short label of a failed request, for metrics and logs."""
    if isinstance(error, SalesforceError):
        codes = sorted({e.code for e in errors_of(error)})
        return codes[0] if codes else f"HTTP_{error.status}"
    return type(error).__name__


def outcome_unknown(error: Exception) -> bool:
    """The request may have run although no answer said so: no answer at all, or a 5xx."""
    if isinstance(error, requests.RequestException):
        return True
    return isinstance(error, SalesforceGeneralError) and error.status >= 500


def transient(error: Exception) -> bool:
    """A failure that may pass if the same request is made again shortly."""
    if outcome_unknown(error):
        return True
    return isinstance(error, SalesforceError) and is_transient(errors_of(error))


def too_long(error: Exception) -> bool:
    """Salesforce refused the request line and headers as too long (414 or 431)."""
    return isinstance(error, SalesforceError) and error.status in SIZING_STATUSES


def refused_as_concurrent(error: Exception) -> bool:
    """Turned away by the concurrent long-running request limit (the request did not run)."""
    return isinstance(error, SalesforceError) and is_concurrency_limit(errors_of(error))


class OrgClient:
    """Requests to one org, paced by its API budget; counts and measures them."""

    def __init__(
        self,
        connection: SalesforceConnection,
        metrics: SalesforceMetrics,
        *,
        attempts: int = 3,
        retry_base: float = 0.5,
    ) -> None:
        self._connection = connection
        self._policy = connection.settings.limits
        self.metrics = metrics
        self._attempts = attempts
        self._retry_base = retry_base
        self._state = threading.Lock()
        self._paused_until = 0.0
        self.api_usage: tuple[int, int] | None = None
        """(used, max) of the org's daily API requests, as last reported."""
        self.requests = 0
        """Salesforce requests made (for the benchmark's requests per 1,000 calls)."""

    def call(
        self, operation: str, action: Callable[[Salesforce], T], *, idempotent: bool = True
    ) -> T:
        """Make one request (see the module's docstring for what is tried again)."""
        backoff = Backoff(base=self._retry_base, cap=8.0)
        attempt, relogged = 1, False
        while True:
            self._wait_for_budget()
            client = self._connection.client()
            self.requests += 1
            self.metrics.requests.labels(operation).inc()
            try:
                result = action(client)
            except (SalesforceError, requests.RequestException) as error:
                code = error_code(error)
                self.metrics.errors.labels(code).inc()
                if isinstance(error, SalesforceExpiredSession) and not relogged:
                    log.info("event=salesforce_relogin flow=%r", self._connection.flow)
                    self._connection.relogin(client)
                    self.metrics.logins.inc()
                    relogged = True
                    continue
                if isinstance(error, SalesforceError) and is_daily_limit(errors_of(error)):
                    with self._state:
                        self._paused_until = time.monotonic() + self._policy.pause_seconds
                    raise OrgPaused(self._policy.pause_seconds) from error
                again = refused_as_concurrent(error) or (idempotent and transient(error))
                if not again or attempt >= self._attempts:
                    raise
                delay = backoff.failure()
                log.info(
                    "event=salesforce_retry operation=%s attempt=%d code=%s retry_in=%.2fs",
                    operation,
                    attempt,
                    code,
                    delay,
                )
                attempt += 1
                time.sleep(delay)
                continue
            self._observe_usage(client)
            return result

    def restful(
        self, operation: str, path: str, method: str, body: Any = None, *, idempotent: bool
    ) -> Any:
        """A REST request under ``/services/data/vXX.X/``."""
        return self.call(
            operation,
            lambda sf: sf.restful(path, method=method, json=body, timeout=REQUEST_TIMEOUT),
            idempotent=idempotent,
        )

    def query_all_rows(self, soql: str) -> list[dict[str, Any]]:
        """Every row of ``soql`` through ``queryAll``, which also sees archived and deleted
        rows (``query`` hides Tasks archived after a year)."""
        result = self.call(
            "query",
            lambda sf: sf.query_all(soql, include_deleted=True, timeout=REQUEST_TIMEOUT),
        )
        return list(result["records"])

    def query_url_prefix_bytes(self) -> int:
        """The bytes of a ``queryAll`` URL before its form-encoded SOQL."""
        return len(self._connection.client().base_url) + len("queryAll/?q=")

    def _wait_for_budget(self) -> None:
        with self._state:
            paused = self._paused_until - time.monotonic()
            usage = self.api_usage
        if paused > 0:
            raise OrgPaused(paused)
        delay = request_delay(self._policy, *usage) if usage else 0.0
        self.metrics.request_delay.set(delay)
        if delay > 0:
            time.sleep(delay)

    def _observe_usage(self, client: Salesforce) -> None:
        usage = client.api_usage.get("api-usage")
        if usage is None:
            return
        with self._state:
            self.api_usage = (int(usage.used), int(usage.total))
        self.metrics.api_used.set(usage.used)
        self.metrics.api_max.set(usage.total)
