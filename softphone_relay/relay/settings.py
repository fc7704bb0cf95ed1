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


Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
"""A TCP port; 0 asks the system for a free one."""
Seconds = Annotated[float, msgspec.Meta(gt=0)]
"""A duration in seconds, greater than zero."""


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    """Everything the relay and the CLI need to run; see the README for each variable."""

    redis_url: str | None = None
    secret: str | None = None
    public_key: str | None = None
    allowed_origins: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: Port = 8765
    shards: Annotated[int, msgspec.Meta(ge=1, le=1024)] = 1
    rate_limit: RateLimit = RateLimit(50.0, 200)
    partners: dict[str, Partner] | None = None
    hello_timeout: Seconds = 10.0
    heartbeat: Seconds = 20.0
    command_ttl: Seconds = 30.0
    dedupe_ttl: Annotated[int, msgspec.Meta(ge=1)] = 7 * 24 * 3600
    max_frame_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 1 << 20
    batch_wait: Annotated[float, msgspec.Meta(ge=0)] = 1.0
    """How long a projector batch may wait to fill (``SOFTPHONE_RELAY_BATCH_WAIT``); 0: no wait.
    Only the calls group waits: a second of lag on a finished call's record buys batches of
    hundreds of calls, each Salesforce request carrying 200 of them."""
    claim_idle: Seconds = 30.0
    """After this long unacked, a dead worker's entries are taken over
    (``SOFTPHONE_RELAY_CLAIM_IDLE``); a conversation lock lasts 4 times as long."""
    disposition_refresh: Seconds = 600.0
    """How often the calls workers reread Salesforce disposition picklists."""
    api_port: Port = 8766
    """The control API's port (``SOFTPHONE_RELAY_API_PORT``)."""
    api_keys: dict[str, str] = msgspec.field(default_factory=dict)
    """API key → the partner it acts for (``SOFTPHONE_RELAY_API_KEYS``)."""
    worker_metrics_port: Port = 9108
    """Where ``project`` serves its Prometheus metrics; 0 turns that off."""
    retention: Annotated[float, msgspec.Meta(ge=3600)] | None = None
    """How long the event log keeps entries (``SOFTPHONE_RELAY_RETENTION``, e.g. ``90d``, at
    least 1h); None (unset or ``forever``) keeps everything. Entries a consumer group has not
    processed are kept whatever their age."""
    archive_url: str | None = None
    """Where the ``archive`` group writes the log's segments (``SOFTPHONE_RELAY_ARCHIVE_URL``:
    ``file:///dir``, ``file:relative/dir`` or ``s3://bucket/prefix``); None: no archive.
    Readers (``replay``, ``tail``, ``export``, ``status``) read it as the older part of the log."""
    archive_segment: Annotated[float, msgspec.Meta(ge=1)] = 3600.0
    """The span of entries one archive segment holds (``SOFTPHONE_RELAY_ARCHIVE_SEGMENT``)."""

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


def parse_int(name: str, text: str) -> int:
    """An integer (its range is checked with every other limit, by :func:`build_settings`)."""
    try:
        return int(text)
    except ValueError:
        raise ConfigError(name, f"expected an integer, got {text!r}") from None


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


def settings_from_env(env: Mapping[str, str], flags: Mapping[str, object] = {}) -> Settings:
    """Build :class:`Settings` from ``SOFTPHONE_RELAY_*`` variables, then command-line ``flags``
    (by field name, e.g. ``{"port": 8000}`` for ``--port``); every declared limit applies to
    both, and a value out of range names its variable or flag and the allowed range."""
    fields, sources = _from_env(env)
    for name, value in flags.items():
        fields[name] = value
        sources[name] = "--" + name.replace("_", "-")
    return build_settings(fields, sources)


def build_settings(fields: Mapping[str, object], sources: Mapping[str, str] = {}) -> Settings:
    """``fields`` as :class:`Settings`, each checked against its declared type and limits;
    ``sources`` names where each came from (a variable or a flag) for the error message."""
    try:
        return msgspec.convert(dict(fields), Settings)
    except msgspec.ValidationError as error:
        match = re.search(r"at `\$\.(\w+)`", str(error))
        name = match.group(1) if match else ""
        source = sources.get(name, name or "settings")
        value = fields.get(name)
        if name in _IN_SECONDS and isinstance(value, int | float):
            shown = _as_duration(value)
        else:
            shown = repr(value)
        raise ConfigError(source, f"{_allowed(name, str(error))}, got {shown}") from None


_IN_SECONDS: Final = frozenset(
    {"hello_timeout", "heartbeat", "command_ttl", "dedupe_ttl", "batch_wait", "claim_idle"}
    | {"disposition_refresh", "retention", "archive_segment"}
)


def _allowed(name: str, fallback: str) -> str:
    """The allowed range of field ``name``, in words (msgspec's own message if it has none)."""
    info = msgspec.inspect.type_info(Settings)
    assert isinstance(info, msgspec.inspect.StructType)
    fields = {f.name: f.type for f in info.fields}
    kind = fields.get(name)
    if isinstance(kind, msgspec.inspect.UnionType):
        kind = next((k for k in kind.types if not isinstance(k, msgspec.inspect.NoneType)), None)
    if not isinstance(kind, msgspec.inspect.IntType | msgspec.inspect.FloatType):
        return fallback.split(" - at ")[0].replace("Expected", "expected")
    show = _as_duration if name in _IN_SECONDS else _as_number
    low = show(kind.ge) if kind.ge is not None else None
    high = show(kind.le) if kind.le is not None else None
    if low is not None and high is not None:
        allowed = f"from {low} to {high}"
    elif low is not None:
        allowed = f"at least {low}"
    elif kind.gt is not None:
        allowed = "greater than zero" if kind.gt == 0 else f"greater than {show(kind.gt)}"
    else:
        allowed = f"at most {high}"
    if name in _IN_SECONDS:
        return f"expected a duration {allowed}"
    what = "an integer" if isinstance(kind, msgspec.inspect.IntType) else "a number"
    return f"expected {what} {allowed}"


def _as_number(value: float) -> str:
    return f"{value:g}"


def _as_duration(seconds: float) -> str:
    """Seconds as the largest whole unit: ``3600`` as ``1h``, ``0.5`` as ``500ms``."""
    for unit in ("d", "h", "m", "s"):
        count = seconds / _UNITS[unit]
        if count >= 1 and count == int(count):
            return f"{int(count)}{unit}"
    return f"{seconds * 1000:g}ms"


_DURATIONS: Final = {
    "HELLO_TIMEOUT": "hello_timeout",
    "HEARTBEAT": "heartbeat",
    "COMMAND_TTL": "command_ttl",
    "CLAIM_IDLE": "claim_idle",
    "DISPOSITION_REFRESH": "disposition_refresh",
    "BATCH_WAIT": "batch_wait",
    "ARCHIVE_SEGMENT": "archive_segment",
}


def _from_env(env: Mapping[str, str]) -> tuple[dict[str, object], dict[str, str]]:
    """The fields the environment sets, parsed from text, and the variable each came from."""

    def get(key: str) -> str | None:
        value = env.get(PREFIX + key)
        return value if value not in (None, "") else None

    fields: dict[str, object] = {}
    sources: dict[str, str] = {}

    def put(field: str, key: str, value: object) -> None:
        fields[field] = value
        sources[field] = PREFIX + key

    if (url := get("REDIS_URL")) is not None:
        if not re.match(r"^(redis|rediss|unix|redis\+cluster|rediss\+cluster)://", url):
            raise ConfigError(
                PREFIX + "REDIS_URL",
                "expected redis://, rediss://, unix://, or redis+cluster:// (rediss+cluster://) "
                f"for a Redis Cluster, got {url!r}",
            )
        put("redis_url", "REDIS_URL", url)
    secret, key_file = get("SECRET"), get("PUBLIC_KEY_FILE")
    if secret is not None and key_file is not None:
        raise ConfigError(PREFIX + "SECRET", "set either a secret or PUBLIC_KEY_FILE, not both")
    if secret is not None:
        if len(secret.encode()) < 32:
            raise ConfigError(PREFIX + "SECRET", "must be at least 32 bytes (HS256 wants 256 bits)")
        put("secret", "SECRET", secret)
    if key_file is not None:
        put("public_key", "PUBLIC_KEY_FILE", _read_key_file(PREFIX + "PUBLIC_KEY_FILE", key_file))
    if (origins := get("ALLOWED_ORIGINS")) is not None:
        patterns = tuple(o.strip() for o in origins.split(",") if o.strip())
        for pattern in patterns:
            if not re.match(r"^(https?|\*)://[^/]+$", pattern):
                raise ConfigError(
                    PREFIX + "ALLOWED_ORIGINS",
                    f"{pattern!r} is no origin glob such as https://*.example.com",
                )
        put("allowed_origins", "ALLOWED_ORIGINS", patterns)
    if (archive := get("ARCHIVE_URL")) is not None:
        if not re.match(r"^(file:|s3://[^/]+)", archive):
            raise ConfigError(
                PREFIX + "ARCHIVE_URL",
                f"expected file:///dir, file:relative/dir or s3://bucket/prefix, got {archive!r}",
            )
        put("archive_url", "ARCHIVE_URL", archive)
    if (host := get("HOST")) is not None:
        put("host", "HOST", host)
    for key, field in (
        ("PORT", "port"),
        ("API_PORT", "api_port"),
        ("WORKER_METRICS_PORT", "worker_metrics_port"),
        ("SHARDS", "shards"),
    ):
        if (text := get(key)) is not None:
            put(field, key, parse_int(PREFIX + key, text))
    if (api_keys := get("API_KEYS")) is not None:
        put("api_keys", "API_KEYS", parse_api_keys(PREFIX + "API_KEYS", api_keys))
    if (rate := get("RATE_LIMIT")) is not None:
        put("rate_limit", "RATE_LIMIT", parse_rate_limit(PREFIX + "RATE_LIMIT", rate))
    if (partners := get("PARTNERS_FILE")) is not None:
        put("partners", "PARTNERS_FILE", load_partners(PREFIX + "PARTNERS_FILE", Path(partners)))
    for key, field in _DURATIONS.items():
        if (text := get(key)) is not None:
            put(field, key, parse_duration(PREFIX + key, text))
    if (retention := get("RETENTION")) is not None and retention.strip() != "forever":
        put("retention", "RETENTION", parse_duration(PREFIX + "RETENTION", retention))
    if (ttl := get("DEDUPE_TTL")) is not None:
        put("dedupe_ttl", "DEDUPE_TTL", int(parse_duration(PREFIX + "DEDUPE_TTL", ttl)))
    return fields, sources
