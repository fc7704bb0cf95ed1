"""Salesforce connection settings (``SOFTPHONE_RELAY_SF_*``) and the logged-in client.

Four ways in, chosen by which variables are set:

- an existing session: ``INSTANCE_URL`` + ``SESSION_ID`` (cannot log in again when it expires);
- username and password: ``USERNAME`` + ``PASSWORD`` (+ ``SECURITY_TOKEN`` unless the IP is
  trusted): the SOAP login, or with ``CONSUMER_KEY`` + ``CONSUMER_SECRET`` the OAuth 2.0
  username-password flow;
- OAuth 2.0 JWT bearer: ``USERNAME`` + ``CONSUMER_KEY`` + ``PRIVATE_KEY_FILE`` (``DOMAIN``
  login, test, or a My Domain the assertion is posted to, its audience still login or test);
- OAuth 2.0 client credentials: ``CONSUMER_KEY`` + ``CONSUMER_SECRET`` + ``DOMAIN`` (a My
  Domain such as ``acme.my``; Salesforce refuses this flow on login/test).

``DOMAIN`` is the login host's first part (``login``, ``test``, or a My Domain);
simple-salesforce builds ``https://{DOMAIN}.salesforce.com``. :class:`SalesforceConnection`
logs in (with simple-salesforce's own login code), and logs in again when the session expires.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import msgspec
import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed
from simple_salesforce.login import SalesforceLogin

from projections.salesforce.errors import SalesforceLoginFailed
from projections.salesforce.limits import LimitPolicy
from projections.salesforce.task_mapping import TaskMapping, decode_mapping
from relay.errors import ConfigError
from relay.settings import parse_duration

PREFIX: Final = "SOFTPHONE_RELAY_SF_"
MIN_API_VERSION: Final = 46.0
"""The oldest REST API version the sink works with: collection upsert needs 46.0."""
SOAP_LAST_VERSION: Final = 64.0
"""The last API version that offers the SOAP ``login()`` (Salesforce help article 005132110)."""
_DOMAIN: Final = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\Z")


class SessionAuth(msgspec.Struct, frozen=True, tag="session"):
    """An existing session on an instance."""

    instance_url: str
    session_id: str


class PasswordAuth(msgspec.Struct, frozen=True, tag="password", kw_only=True):
    """Username, password and security token (SOAP), or with a connected app (OAuth)."""

    username: str
    password: str
    security_token: str | None = None
    consumer_key: str | None = None
    consumer_secret: str | None = None
    domain: str = "login"


class JwtBearerAuth(msgspec.Struct, frozen=True, tag="jwt", kw_only=True):
    """A connected app's certificate signs an assertion for a pre-authorised user."""

    username: str
    consumer_key: str
    private_key_file: str
    domain: str = "login"
    """The assertion's audience: login (production) or test (sandbox)."""
    token_domain: str | None = None
    """The My Domain the assertion is posted to (orgs whose API logins must go through it);
    None: the audience's host."""


class ClientCredentialsAuth(msgspec.Struct, frozen=True, tag="client_credentials", kw_only=True):
    """A connected app acting as its configured run-as user."""

    consumer_key: str
    consumer_secret: str
    domain: str


SalesforceAuth = SessionAuth | PasswordAuth | JwtBearerAuth | ClientCredentialsAuth


class SalesforceSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Where and how to reach the org, what to write there, and how to treat its limits."""

    auth: SalesforceAuth
    api_version: str = "59.0"
    ca_file: str | None = None
    """A CA bundle to trust instead of the system's (the local stand-in's)."""
    mapping: TaskMapping = msgspec.field(default_factory=TaskMapping)
    limits: LimitPolicy = msgspec.field(default_factory=LimitPolicy)


def _auth_from_env(get: Mapping[str, str | None]) -> SalesforceAuth | None:
    given = {k for k, v in get.items() if v is not None}

    def refuse_extra(flow: str, used: set[str]) -> None:
        extra = sorted(given & set(_AUTH_KEYS) - used)
        if extra:
            raise ConfigError(PREFIX + extra[0], f"not used by the {flow}; unset it")

    def need(flow: str, *keys: str) -> None:
        for key in keys:
            if get[key] is None:
                raise ConfigError(PREFIX + key, f"required by the {flow}")

    domain = get["DOMAIN"]
    if domain is not None:
        domain = domain.removeprefix("https://").removesuffix("/").removesuffix(".salesforce.com")
        if not _DOMAIN.match(domain):
            raise ConfigError(PREFIX + "DOMAIN", f"expected login, test or acme.my, got {domain!r}")
    if get["SESSION_ID"] is not None or get["INSTANCE_URL"] is not None:
        flow = "session (SESSION_ID + INSTANCE_URL)"
        need(flow, "INSTANCE_URL", "SESSION_ID")
        refuse_extra(flow, {"INSTANCE_URL", "SESSION_ID"})
        url = str(get["INSTANCE_URL"])
        if not url.startswith("https://"):
            raise ConfigError(PREFIX + "INSTANCE_URL", f"expected https://..., got {url!r}")
        return SessionAuth(url.rstrip("/"), str(get["SESSION_ID"]))
    if get["PRIVATE_KEY_FILE"] is not None:
        flow = "JWT bearer flow"
        need(flow, "USERNAME", "CONSUMER_KEY")
        refuse_extra(flow, {"USERNAME", "CONSUMER_KEY", "PRIVATE_KEY_FILE", "DOMAIN"})
        key_file = str(get["PRIVATE_KEY_FILE"])
        if not Path(key_file).is_file():
            raise ConfigError(PREFIX + "PRIVATE_KEY_FILE", f"no such file: {key_file}")
        if domain in (None, "login", "test"):
            audience, token_domain = domain or "login", None
        else:
            # Posted to the My Domain (orgs with "API login requires My Domain" refuse login
            # and test), signed for the login host Salesforce takes as the JWT audience: test
            # for a sandbox's My Domain (acme--uat.sandbox.my), login otherwise.
            audience, token_domain = ("test" if "--" in domain else "login"), domain
        return JwtBearerAuth(
            username=str(get["USERNAME"]),
            consumer_key=str(get["CONSUMER_KEY"]),
            private_key_file=key_file,
            domain=audience,
            token_domain=token_domain,
        )
    if get["USERNAME"] is not None:
        flow = "username-password login"
        need(flow, "PASSWORD")
        if (get["CONSUMER_KEY"] is None) != (get["CONSUMER_SECRET"] is None):
            need("OAuth username-password flow", "CONSUMER_KEY", "CONSUMER_SECRET")
        return PasswordAuth(
            username=str(get["USERNAME"]),
            password=str(get["PASSWORD"]),
            security_token=get["SECURITY_TOKEN"],
            consumer_key=get["CONSUMER_KEY"],
            consumer_secret=get["CONSUMER_SECRET"],
            domain=domain or "login",
        )
    if get["CONSUMER_KEY"] is not None or get["CONSUMER_SECRET"] is not None:
        flow = "client credentials flow"
        need(flow, "CONSUMER_KEY", "CONSUMER_SECRET", "DOMAIN")
        refuse_extra(flow, {"CONSUMER_KEY", "CONSUMER_SECRET", "DOMAIN"})
        if domain in ("login", "test"):
            raise ConfigError(
                PREFIX + "DOMAIN", "the client credentials flow needs a My Domain, not login/test"
            )
        return ClientCredentialsAuth(
            consumer_key=str(get["CONSUMER_KEY"]),
            consumer_secret=str(get["CONSUMER_SECRET"]),
            domain=str(domain),
        )
    for key in ("PASSWORD", "SECURITY_TOKEN", "DOMAIN"):
        if get[key] is not None:
            raise ConfigError(PREFIX + key, "set USERNAME (or another login flow) with it")
    return None


_AUTH_KEYS: Final = (
    "INSTANCE_URL",
    "SESSION_ID",
    "USERNAME",
    "PASSWORD",
    "SECURITY_TOKEN",
    "DOMAIN",
    "CONSUMER_KEY",
    "CONSUMER_SECRET",
    "PRIVATE_KEY_FILE",
)


def salesforce_settings_from_env(env: Mapping[str, str]) -> SalesforceSettings | None:
    """The org's settings, or None when no way in is configured."""

    def get(key: str) -> str | None:
        return env.get(PREFIX + key) or None

    auth = _auth_from_env({key: get(key) for key in _AUTH_KEYS})
    if auth is None:
        return None
    version = get("API_VERSION") or "59.0"
    if not re.match(r"^[0-9]{2,3}\.0$", version):
        raise ConfigError(PREFIX + "API_VERSION", f"expected a version like 59.0, got {version!r}")
    if float(version) < MIN_API_VERSION:
        raise ConfigError(
            PREFIX + "API_VERSION",
            f"expected {MIN_API_VERSION:.1f} or later (sObject Collections upsert needs it), "
            f"got {version}",
        )
    soap = isinstance(auth, PasswordAuth) and auth.consumer_key is None
    if soap and float(version) > SOAP_LAST_VERSION:
        raise ConfigError(
            PREFIX + "API_VERSION",
            f"the SOAP username-password login is not available at API {version} (none "
            f"from 65.0, and retired for every version in Summer '27): use the JWT bearer "
            f"flow or client credentials (README, Configuration)",
        )
    mapping = TaskMapping()
    if (mapping_file := get("MAPPING_FILE")) is not None:
        try:
            mapping = decode_mapping(Path(mapping_file).read_bytes())
        except (OSError, msgspec.DecodeError) as error:
            raise ConfigError(PREFIX + "MAPPING_FILE", str(error)) from None
    ca_file = get("CA_FILE")
    if ca_file is not None and not Path(ca_file).is_file():
        raise ConfigError(PREFIX + "CA_FILE", f"no such file: {ca_file}")
    limits = LimitPolicy()
    if (slow_from := get("SLOW_FROM")) is not None:
        try:
            limits = msgspec.structs.replace(limits, slow_from=float(slow_from.rstrip("%")) / 100)
        except ValueError:
            raise ConfigError(
                PREFIX + "SLOW_FROM", f"expected a percentage, got {slow_from!r}"
            ) from None
        if not 0 < limits.slow_from <= 1:
            raise ConfigError(PREFIX + "SLOW_FROM", f"expected 1% to 100%, got {slow_from!r}")
    if (pause := get("LIMIT_PAUSE")) is not None:
        seconds = parse_duration(PREFIX + "LIMIT_PAUSE", pause)
        limits = msgspec.structs.replace(limits, pause_seconds=max(1.0, seconds))
    return SalesforceSettings(
        auth=auth, api_version=version, mapping=mapping, ca_file=ca_file, limits=limits
    )


def _describe(auth: SalesforceAuth) -> str:
    match auth:
        case SessionAuth():
            return "session"
        case PasswordAuth(consumer_key=None):
            return "SOAP username-password login"
        case PasswordAuth():
            return "OAuth username-password flow"
        case JwtBearerAuth():
            return "OAuth JWT bearer flow"
        case ClientCredentialsAuth():
            return "OAuth client credentials flow"


class SalesforceConnection:
    """The org's simple-salesforce client; logs in again when its session expires.

    Thread-safe: the sink calls it from worker threads. ``http`` is the ``requests.Session``
    every call goes through (tests mount a transport on it to point logins at the stand-in).
    """

    def __init__(self, settings: SalesforceSettings, *, http: requests.Session | None = None):
        self.settings = settings
        if http is None:
            http = requests.Session()
            if settings.ca_file is not None:
                http.verify = settings.ca_file
                # requests lets REQUESTS_CA_BUNDLE override Session.verify: not for this session.
                http.trust_env = False
        self._http = http
        self._lock = threading.Lock()
        self._client: Salesforce | None = None
        self.logins = 0
        """How many logins this connection made (for logs and tests)."""

    @property
    def flow(self) -> str:
        """How this connection gets its sessions, for logs and messages."""
        return _describe(self.settings.auth)

    def client(self) -> Salesforce:
        """The current client, logging in first if there is none yet."""
        with self._lock:
            if self._client is None:
                self._client = self._login()
            return self._client

    def relogin(self, expired: Salesforce) -> Salesforce:
        """A client with a fresh session, in place of ``expired`` (once, however many ask)."""
        with self._lock:
            if self._client is not None and self._client is not expired:
                return self._client  # another thread already logged in again
            if isinstance(self.settings.auth, SessionAuth):
                raise SalesforceLoginFailed(
                    self.flow,
                    "INVALID_SESSION_ID",
                    "the session expired and no login flow is configured to get a new one",
                )
            self._client = self._login()
            return self._client

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    def _login(self) -> Salesforce:
        auth, version = self.settings.auth, self.settings.api_version
        if isinstance(auth, SessionAuth):
            return Salesforce(
                instance_url=auth.instance_url,
                session_id=auth.session_id,
                version=version,
                session=self._http,
            )
        try:
            session_id, instance = SalesforceLogin(
                **self._login_arguments(auth), session=self._http
            )
        except SalesforceAuthenticationFailed as error:
            message = error.auth_message
            soap = isinstance(auth, PasswordAuth) and auth.consumer_key is None
            if soap and str(error.code) == "INSUFFICIENT_ACCESS":
                message += (
                    " (SOAP login() needs the user permission Use Any API Auth, and the org "
                    "setting Enable SOAP API login(); better, use the JWT bearer flow)"
                )
            raise SalesforceLoginFailed(self.flow, str(error.code), message) from None
        self.logins += 1
        return Salesforce(
            instance=instance, session_id=session_id, version=version, session=self._http
        )

    def _login_arguments(self, auth: SalesforceAuth) -> dict[str, Any]:
        version = self.settings.api_version
        match auth:
            case PasswordAuth(consumer_key=None):
                return {
                    "username": auth.username,
                    "password": auth.password,
                    "security_token": auth.security_token or "",
                    "domain": auth.domain,
                    "sf_version": version,
                }
            case PasswordAuth():
                return {
                    "username": auth.username,
                    # The OAuth password flow takes the security token appended to the password.
                    "password": auth.password + (auth.security_token or ""),
                    "consumer_key": auth.consumer_key,
                    "consumer_secret": auth.consumer_secret,
                    "domain": auth.domain,
                    "sf_version": version,
                }
            case JwtBearerAuth():
                # simple-salesforce posts to instance_url when given, signing aud for domain.
                return {
                    "username": auth.username,
                    "consumer_key": auth.consumer_key,
                    "privatekey_file": auth.private_key_file,
                    "domain": auth.domain,
                    "instance_url": auth.token_domain,
                    "sf_version": version,
                }
            case ClientCredentialsAuth():
                return {
                    "consumer_key": auth.consumer_key,
                    "consumer_secret": auth.consumer_secret,
                    "domain": auth.domain,
                    "sf_version": version,
                }
        raise AssertionError(f"no login for {auth!r}")
