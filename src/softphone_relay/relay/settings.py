"""The relay's settings: one typed object, read once from the environment and validated.

No other module reads ``os.environ``. Every problem raises :class:`ConfigError` naming the
setting, so a bad deployment fails at start with a message an operator can act on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final

import msgspec

from softphone_relay.relay.contract import E164, DispositionCodes, Id
from softphone_relay.relay.errors import ConfigError

PREFIX: Final = "SOFTPHONE_RELAY_"


class Partner(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One partner's entry in the partners file."""

    disposition: DispositionCodes = msgspec.field(default_factory=list)
    businessSegmentId: Id
    channelOriginId: Id
    dialFrom: E164 | None = None
    region: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}$")] | None = None
    """Where click-to-dial numbers written without ``+country`` are (ISO 3166, e.g. US)."""
    dispositionField: Annotated[str, msgspec.Meta(pattern=r"^\w+\.\w+$")] | None = None
    """A Salesforce picklist (``Task.Disposition__c``) whose active values are the partner's
    disposition codes, instead of ``disposition`` (read by the ``calls`` workers)."""


class PartnersFile(msgspec.Struct, forbid_unknown_fields=True):
    """The TOML file named by ``SOFTPHONE_RELAY_PARTNERS_FILE``: ``[partners.<partnerId>]``."""

    partners: dict[str, Partner]


class RateLimit(msgspec.Struct, frozen=True):
    """Events per second per connection, with a burst allowance."""

    per_second: float
    burst: int


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    """Everything the relay and the CLI need to run; see the README for each variable."""

    redis_url: str | None = None
    secret: str | None = None
    public_key: str | None = None
    allowed_origins: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8765
    shards: Annotated[int, msgspec.Meta(ge=1, le=1024)] = 1
    rate_limit: RateLimit = RateLimit(50.0, 200)
    partners: dict[str, Partner] | None = None
    hello_timeout: float = 10.0
    heartbeat: float = 20.0
    command_ttl: float = 30.0
    dedupe_ttl: int = 7 * 24 * 3600
    max_frame_bytes: int = 1 << 20
    batch_wait: float = 0.5
    """How long a projector batch may wait to fill (``SOFTPHONE_RELAY_BATCH_WAIT``)."""
    claim_idle: float = 30.0
    """After this long unacked, a dead worker's entries are taken over
    (``SOFTPHONE_RELAY_CLAIM_IDLE``); a conversation lock lasts 4 times as long."""
    disposition_refresh: float = 600.0
    """How often the calls workers reread Salesforce disposition picklists."""
    api_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8766
    """The control API's port (``SOFTPHONE_RELAY_API_PORT``)."""
    api_keys: dict[str, str] = msgspec.field(default_factory=dict)
    """API key → the partner it acts for (``SOFTPHONE_RELAY_API_KEYS``)."""
    worker_metrics_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 9108
    """Where ``project`` serves its Prometheus metrics; 0 turns that off."""
    retention: float | None = None
    """How long the event log keeps entries (``SOFTPHONE_RELAY_RETENTION``, e.g. ``90d``);
    None (unset or ``forever``) keeps everything. Entries a consumer group has not processed
    are kept whatever their age."""

    def partner_config(self, partner_id: str) -> dict[str, Any] | None:
        """The welcome ``config`` for a partner, or None when a partners file excludes it."""
        if self.partners is None:
            return {"disposition": [], "partner_config": {"partnerId": partner_id}}
        partner = self.partners.get(partner_id)
        if partner is None:
            return None
        return {
            "disposition": list(partner.disposition),
            "partner_config": {
                "partnerId": partner_id,
                "businessSegmentId": partner.businessSegmentId,
                "channelOriginId": partner.channelOriginId,
            },
        }


_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)?$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(name: str, text: str) -> float:
    """``"10"``, ``"10s"``, ``"500ms"``, ``"5m"``, ``"90d"`` as seconds."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ConfigError(name, f"expected a duration such as 10s, 500ms, 5m or 90d, got {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_rate_limit(name: str, text: str) -> RateLimit:
    """``"RATE"`` or ``"RATE/BURST"`` events per second; the burst defaults to 4 x RATE."""
    match = re.match(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(?:/\s*([0-9]+))?\s*$", text)
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(name, f"expected RATE or RATE/BURST (events/s, burst), got {text!r}")
    rate = float(match.group(1))
    burst = int(match.group(2)) if match.group(2) else max(1, int(rate * 4))
    if burst < 1:
        raise ConfigError(name, "the burst must be at least 1")
    return RateLimit(rate, burst)


def parse_int(name: str, text: str, low: int, high: int) -> int:
    """An integer within ``[low, high]``."""
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(name, f"expected an integer, got {text!r}") from None
    if not low <= value <= high:
        raise ConfigError(name, f"expected {low} to {high}, got {value}")
    return value


MIN_API_KEY_LENGTH: Final = 16


def parse_api_keys(name: str, text: str) -> dict[str, str]:
    """``KEY1:PARTNER1,KEY2:PARTNER2`` as {key: partner}; keys of at least 16 characters."""
    found: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, sep, partner = item.partition(":")
        if not sep or not key or not partner:
            raise ConfigError(name, "expected KEY:PARTNER_ID pairs separated by commas")
        if len(key) < MIN_API_KEY_LENGTH:
            raise ConfigError(
                name, f"the key for partner {partner} is shorter than {MIN_API_KEY_LENGTH}"
            )
        if key in found:
            raise ConfigError(name, f"a key is given twice (for {found[key]} and {partner})")
        found[key] = partner
    return found


def load_partners(name: str, path: Path) -> dict[str, Partner]:
    """Read and validate a partners TOML file."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ConfigError(name, f"cannot read {path}: {error.strerror}") from None
    try:
        return msgspec.toml.decode(raw, type=PartnersFile).partners
    except msgspec.DecodeError as error:
        raise ConfigError(name, f"{path}: {error}") from None


def _read_key_file(name: str, path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as error:
        raise ConfigError(name, f"cannot read {path}: {error.strerror}") from None


def settings_from_env(env: Mapping[str, str], **overrides: object) -> Settings:
    """Build :class:`Settings` from ``SOFTPHONE_RELAY_*`` variables, then apply ``overrides``."""

    def get(key: str) -> str | None:
        value = env.get(PREFIX + key)
        return value if value not in (None, "") else None

    fields: dict[str, object] = {}
    if (url := get("REDIS_URL")) is not None:
        if not re.match(r"^(redis|rediss|unix)://", url):
            raise ConfigError(
                PREFIX + "REDIS_URL", f"expected redis://, rediss:// or unix://, got {url!r}"
            )
        fields["redis_url"] = url
    secret, key_file = get("SECRET"), get("PUBLIC_KEY_FILE")
    if secret is not None and key_file is not None:
        raise ConfigError(PREFIX + "SECRET", "set either a secret or PUBLIC_KEY_FILE, not both")
    if secret is not None:
        if len(secret.encode()) < 32:
            raise ConfigError(PREFIX + "SECRET", "must be at least 32 bytes (HS256 wants 256 bits)")
        fields["secret"] = secret
    if key_file is not None:
        fields["public_key"] = _read_key_file(PREFIX + "PUBLIC_KEY_FILE", key_file)
    if (origins := get("ALLOWED_ORIGINS")) is not None:
        patterns = tuple(o.strip() for o in origins.split(",") if o.strip())
        for pattern in patterns:
            if not re.match(r"^(https?|\*)://[^/]+$", pattern):
                raise ConfigError(
                    PREFIX + "ALLOWED_ORIGINS",
                    f"{pattern!r} is no origin glob such as https://*.example.com",
                )
        fields["allowed_origins"] = patterns
    if (host := get("HOST")) is not None:
        fields["host"] = host
    if (port := get("PORT")) is not None:
        fields["port"] = parse_int(PREFIX + "PORT", port, 0, 65535)
    if (api_port := get("API_PORT")) is not None:
        fields["api_port"] = parse_int(PREFIX + "API_PORT", api_port, 0, 65535)
    if (api_keys := get("API_KEYS")) is not None:
        fields["api_keys"] = parse_api_keys(PREFIX + "API_KEYS", api_keys)
    if (metrics_port := get("WORKER_METRICS_PORT")) is not None:
        fields["worker_metrics_port"] = parse_int(
            PREFIX + "WORKER_METRICS_PORT", metrics_port, 0, 65535
        )
    if (shards := get("SHARDS")) is not None:
        fields["shards"] = parse_int(PREFIX + "SHARDS", shards, 1, 1024)
    if (rate := get("RATE_LIMIT")) is not None:
        fields["rate_limit"] = parse_rate_limit(PREFIX + "RATE_LIMIT", rate)
    if (partners := get("PARTNERS_FILE")) is not None:
        fields["partners"] = load_partners(PREFIX + "PARTNERS_FILE", Path(partners))
    for key, attr in (
        ("HELLO_TIMEOUT", "hello_timeout"),
        ("HEARTBEAT", "heartbeat"),
        ("COMMAND_TTL", "command_ttl"),
        ("CLAIM_IDLE", "claim_idle"),
        ("DISPOSITION_REFRESH", "disposition_refresh"),
    ):
        if (text := get(key)) is not None:
            value = parse_duration(PREFIX + key, text)
            if value <= 0:
                raise ConfigError(PREFIX + key, "must be greater than zero")
            fields[attr] = value
    if (wait := get("BATCH_WAIT")) is not None:
        fields["batch_wait"] = parse_duration(PREFIX + "BATCH_WAIT", wait)  # 0: no waiting
    if (retention := get("RETENTION")) is not None and retention.strip() != "forever":
        kept = parse_duration(PREFIX + "RETENTION", retention)
        if kept < 3600:
            raise ConfigError(PREFIX + "RETENTION", "must be at least 1h (or forever)")
        fields["retention"] = kept
    if (ttl := get("DEDUPE_TTL")) is not None:
        fields["dedupe_ttl"] = max(1, int(parse_duration(PREFIX + "DEDUPE_TTL", ttl)))
    fields.update(overrides)
    return Settings(**fields)  # type: ignore[arg-type]  # each value was checked above
