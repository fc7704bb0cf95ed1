"""The relay's exceptions, and the one place where they map to wire codes.

Tree::

    RelayError
    ├── ConfigError                 invalid configuration (names the setting); fails at start
    ├── FrameRefused                one frame is refused; the connection stays open (``nack``)
    │   ├── BadFrame                    not JSON, not an object, unknown ``type``, wrong shape
    │   ├── UnknownEvent                ``event`` frame whose ``name`` is no contract hook/request
    │   ├── InvalidEvent                an event's ``data`` fails the contract (names the field)
    │   ├── Forbidden                   the event speaks for another partner
    │   ├── RateLimited                 over the connection's rate limit
    │   ├── RefreshRefused              a ``refresh`` frame's token is not valid (the old one holds)
    │   └── Unavailable                 the log store is down or slow: retry later
    ├── ApiError                    a control API request is refused (HTTP status, JSON body)
    │   ├── MalformedBody               400  the body is not a JSON object
    │   ├── Unauthorized                401  no API key, or not one we know
    │   ├── NotFound                    404  no such agent, request or endpoint
    │   ├── MethodNotAllowed            405  the endpoint does not take this method
    │   ├── AgentOffline                409  the agent has no live softphone session
    │   ├── InvalidRequest              422  a field is missing or wrong (names the field)
    │   └── ServiceUnavailable          503  the log store is down: retry later
    └── SessionClosed               the session ends (``error`` frame, then close)
        ├── BadHello                    4400  the hello frame is malformed
        ├── AuthenticationFailed        4401  no hello first, bad or expired token (also when
        │                                     an open session's token expires unrefreshed)
        ├── PartnerForbidden            4403  the token's partner is not served here
        ├── HelloTimeout                4408  no hello in time
        ├── SessionReplaced             4409  a newer session of the same agent took over
        ├── RateLimitExceeded           4429  kept sending while rate limited, or too many
        │                                     sessions of one agent in a minute
        └── TryAgainLater               1013  the log store is down at hello: reconnect later

Each class carries its wire ``code`` (a nack code string), its ``close_code`` or its HTTP
``status`` (an int); nothing else in the code base spells these numbers.
"""

from __future__ import annotations

import os
from typing import ClassVar


class RelayError(Exception):
    """Root of every error the relay raises on purpose."""


def reason(error: OSError) -> str:
    """Why a system call failed, in the system's words (``Address already in use``)."""
    return os.strerror(error.errno) if error.errno else str(error)


class ConfigError(RelayError):
    """A setting is missing or invalid; the message names the setting."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
        self.problem = problem


class FrameRefused(RelayError):
    """One client frame is refused with a ``nack``; the connection stays open."""

    code: ClassVar[str]


class BadFrame(FrameRefused):
    """The frame is not a well-formed protocol frame."""

    code = "bad_frame"


class UnknownEvent(FrameRefused):
    """The event's name is not a contract hook or CRM-side request."""

    code = "unknown_event"


class RefreshRefused(FrameRefused):
    """A ``refresh`` frame's token does not verify; the session keeps its current token."""

    code = "refresh_refused"


class InvalidEvent(FrameRefused):
    """The event's data does not satisfy the contract."""

    code = "invalid_event"


class Forbidden(FrameRefused):
    """The event claims a partner other than the session's."""

    code = "forbidden"


class RateLimited(FrameRefused):
    """The connection is over its rate limit."""

    code = "rate_limited"


class Unavailable(FrameRefused):
    """The event log cannot be written right now; nothing was stored."""

    code = "unavailable"


class BatchRefused(Unavailable):
    """The event log answered one batch with an error (a script error, a wrong key type):
    that batch was not stored, and the log is not down. Its message is stable: what Redis
    said is logged, never sent to a client."""


class ApiError(RelayError):
    """A control API request is refused: answered with ``status`` and ``{"error", "message"}``."""

    status: ClassVar[int]
    code: ClassVar[str]


class MalformedBody(ApiError):
    """The body is not a JSON object."""

    status = 400
    code = "bad_request"


class Unauthorized(ApiError):
    """No ``Authorization: Bearer KEY``, or a key we do not know."""

    status = 401
    code = "unauthorized"


class NotFound(ApiError):
    """No such agent, request or endpoint."""

    status = 404
    code = "not_found"


class MethodNotAllowed(ApiError):
    """The endpoint exists but not for this method."""

    status = 405
    code = "method_not_allowed"


class AgentOffline(ApiError):
    """The agent has no live softphone session: a call now would ring nowhere (or later)."""

    status = 409
    code = "agent_offline"


class InvalidRequest(ApiError):
    """A field is missing or wrong; the message names it."""

    status = 422
    code = "invalid_request"


class ServiceUnavailable(ApiError):
    """The log store cannot be reached; nothing was accepted."""

    status = 503
    code = "unavailable"


class SessionClosed(RelayError):
    """The session must end: an ``error`` frame, then a close with ``close_code``."""

    close_code: ClassVar[int]
    code: ClassVar[str]


class BadHello(SessionClosed):
    """The hello frame is malformed."""

    close_code = 4400
    code = "bad_hello"


class AuthenticationFailed(SessionClosed):
    """No hello first, or the token is missing, malformed, expired or not ours."""

    close_code = 4401
    code = "unauthorized"


class PartnerForbidden(SessionClosed):
    """The token is valid but its partner is not served by this relay."""

    close_code = 4403
    code = "forbidden"


class HelloTimeout(SessionClosed):
    """The client did not say hello in time."""

    close_code = 4408
    code = "hello_timeout"


class SessionReplaced(SessionClosed):
    """A newer session of the same agent took over."""

    close_code = 4409
    code = "replaced"


class RateLimitExceeded(SessionClosed):
    """The client went on sending while rate limited, or opened too many sessions of one
    agent in a minute."""

    close_code = 4429
    code = "rate_limited"


class TryAgainLater(SessionClosed):
    """The log store is unreachable while opening the session; the client should retry."""

    close_code = 1013
    code = "unavailable"


class GoingAway(SessionClosed):
    """The relay is stopping; the client reconnects (to another relay). Nothing is wrong with
    the session, so no ``error`` frame precedes the close."""

    close_code = 1001
    code = "going_away"
