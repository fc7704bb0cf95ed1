"""Salesforce connection settings (``SOFTPHONE_RELAY_SF_*``) and the simple-salesforce client.

Supported now: an existing session (``SOFTPHONE_RELAY_SF_INSTANCE_URL`` +
``SOFTPHONE_RELAY_SF_SESSION_ID``). The login flows (username/password/token, JWT bearer,
client credentials) are refused at start with a clear message until they are built and
tested against the stand-in's login endpoints.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

import msgspec
import requests
from simple_salesforce.api import Salesforce

from projections.task_mapping import TaskMapping, load_mapping
from relay.errors import ConfigError

PREFIX: Final = "SOFTPHONE_RELAY_SF_"
LOGIN_VARIABLES: Final = (
    "USERNAME",
    "PASSWORD",
    "SECURITY_TOKEN",
    "CONSUMER_KEY",
    "CONSUMER_SECRET",
    "PRIVATE_KEY_FILE",
    "DOMAIN",
)


class SalesforceSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Where and how to reach the org, and what to write there."""

    instance_url: str
    session_id: str
    api_version: str = "59.0"
    ca_file: str | None = None
    """A CA bundle to trust instead of the system's (the local stand-in's)."""
    mapping: TaskMapping = msgspec.field(default_factory=TaskMapping)


def salesforce_settings_from_env(env: Mapping[str, str]) -> SalesforceSettings | None:
    """The org's settings, or None when no ``SOFTPHONE_RELAY_SF_*`` variable is set."""

    def get(key: str) -> str | None:
        return env.get(PREFIX + key) or None

    for key in LOGIN_VARIABLES:
        if get(key) is not None:
            raise ConfigError(
                PREFIX + key,
                "logging in is not supported yet; set "
                f"{PREFIX}INSTANCE_URL and {PREFIX}SESSION_ID instead",
            )
    url, session = get("INSTANCE_URL"), get("SESSION_ID")
    if url is None and session is None:
        return None
    if url is None or not url.startswith("https://"):
        raise ConfigError(PREFIX + "INSTANCE_URL", f"expected https://..., got {url!r}")
    if session is None:
        raise ConfigError(PREFIX + "SESSION_ID", "required with an instance URL")
    version = get("API_VERSION") or "59.0"
    if not version.replace(".", "", 1).isdigit():
        raise ConfigError(PREFIX + "API_VERSION", f"expected a version like 59.0, got {version!r}")
    mapping = TaskMapping()
    if (mapping_file := get("MAPPING_FILE")) is not None:
        try:
            mapping = load_mapping(Path(mapping_file))
        except (OSError, msgspec.DecodeError) as error:
            raise ConfigError(PREFIX + "MAPPING_FILE", str(error)) from None
    ca_file = get("CA_FILE")
    if ca_file is not None and not Path(ca_file).is_file():
        raise ConfigError(PREFIX + "CA_FILE", f"no such file: {ca_file}")
    return SalesforceSettings(
        instance_url=url,
        session_id=session,
        api_version=version,
        mapping=mapping,
        ca_file=ca_file,
    )


def connect(settings: SalesforceSettings) -> Salesforce:
    """A simple-salesforce client for the org."""
    http = requests.Session()
    if settings.ca_file is not None:
        http.verify = settings.ca_file
        # requests lets REQUESTS_CA_BUNDLE override Session.verify: not for this session.
        http.trust_env = False
    return Salesforce(
        instance_url=settings.instance_url,
        session_id=settings.session_id,
        version=settings.api_version,
        session=http,
    )
