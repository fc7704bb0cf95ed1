"""The relay's settings (the websocket server, the log, the control API) as one typed object,
and the parsing of their text forms.

Pure: this module reads no file and no environment. The command line
(:mod:`softphone_relay.settings`) reads ``SOFTPHONE_RELAY_*`` and the files they name, and
composes these with the projections' settings. Every problem raises :class:`ConfigError` naming
the setting, so a bad deployment fails at start with a message an operator can act on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal, TypeVar

import msgspec

from relay.errors import ConfigError
from relay.wire.contract import E164, DispositionCodes, Id, whole

PREFIX: Final = "SOFTPHONE_RELAY_"


class Partner(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One partner's entry in the partners file."""

    disposition: DispositionCodes = msgspec.field(default_factory=list)
    businessSegmentId: Id
    channelOriginId: Id
    dialFrom: E164 | None = None
    region: Annotated[str, msgspec.Meta(pattern=whole(r"[A-Z]{2}"))] | None = None
    """Where click-to-dial numbers written without ``+country`` are (ISO 3166, e.g. US)."""
    dispositionField: Annotated[str, msgspec.Meta(pattern=whole(r"\w+\.\w+"))] | None = None
    """A Salesforce picklist (``Task.Disposition__c``) whose active values are the partner's
    disposition codes, instead of ``disposition`` (read by the ``calls`` workers)."""
    publicKey: str | None = None
    """PEM certificates or public keys (one or more) that alone verify this partner's agent
    tokens: no other key, the relay's shared one included, can sign for it."""
    publicKeyFile: str | None = None
    """A file holding ``publicKey``, relative to the partners file (read at start)."""
    personalFields: list[Annotated[str, msgspec.Meta(pattern=whole(r"\w{1,64}"))]] = msgspec.field(
        default_factory=list
    )
    """Event data fields of this partner's that carry personal data, sealed as the
    contract's own are (``callerANI``, ``dialTo``, ``dialFrom``, ``dialledTo``, ``notes``)."""
    records: Literal["tasks", "voicecalls", "both"] = "tasks"
    """What its calls become in Salesforce: Tasks (an Open CTI org, the ``calls`` group),
    VoiceCalls (Salesforce Voice, the ``voicecalls`` group), or both."""
    voicePresence: dict[
        Annotated[str, msgspec.Meta(min_length=1, max_length=255)],
        Annotated[str, msgspec.Meta(min_length=1, max_length=128)],
    ] = msgspec.field(default_factory=dict)
    """Salesforce Voice: a Salesforce presence status's name (as the org's Omni-Channel
    shows it) → the softphone's status id (``softphoneId``), both ways: the connector turns
    an agent's status change in Salesforce into ``update_presence`` and ``statusChanged``
    back into the Salesforce status. A status not listed is not carried over."""


VOICE_PRESENCE: Final = "voicePresence"
"""The key of a partner's presence mapping in its session ``config`` (the connector's only)."""


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


class RelaySettings(msgspec.Struct, kw_only=True, frozen=True):
    """What the relay, the control API and every reader of the log need; see the README for
    each variable."""

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
    api_port: Port = 8766
    """The control API's port (``SOFTPHONE_RELAY_API_PORT``)."""
    api_keys: dict[str, str] = msgspec.field(default_factory=dict)
    """API key → the partner it acts for (``SOFTPHONE_RELAY_API_KEYS``)."""
    tls_cert_file: str | None = None
    """The PEM certificate chain both servers present (``SOFTPHONE_RELAY_TLS_CERT_FILE``);
    with ``tls_key_file``, the relay speaks https/wss and the control API https."""
    tls_key_file: str | None = None
    """The certificate's PEM private key (``SOFTPHONE_RELAY_TLS_KEY_FILE``)."""
    data_keys: tuple[str, ...] = ()
    """Key-encryption keys, base64, the current one first (``SOFTPHONE_RELAY_DATA_KEY`` or
    ``SOFTPHONE_RELAY_DATA_KEY_FILE``): with them, personal fields are sealed in the log."""

    def partner_personal_fields(self) -> dict[str, list[str]]:
        """Partner id → the extra fields it lists as personal data."""
        return {p: list(v.personalFields) for p, v in (self.partners or {}).items()}

    def partner_keys(self) -> dict[str, str]:
        """Partner id → the PEM text of the keys that alone verify its tokens."""
        return {
            partner_id: partner.publicKey
            for partner_id, partner in (self.partners or {}).items()
            if partner.publicKey is not None
        }

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
            VOICE_PRESENCE: dict(partner.voicePresence),
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
    """An integer (its range is checked with every other limit, by :func:`convert_settings`)."""
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


def decode_partners(name: str, data: bytes, where: str) -> dict[str, Partner]:
    """A partners TOML file's bytes (read from ``where``), validated."""
    try:
        partners = msgspec.toml.decode(data, type=PartnersFile).partners
    except msgspec.DecodeError as error:
        raise ConfigError(name, f"{where}: {error}") from None
    for partner_id, partner in partners.items():
        if partner.publicKey is not None and partner.publicKeyFile is not None:
            raise ConfigError(
                name, f"{where}: partner {partner_id!r} sets publicKey and publicKeyFile: one"
            )
    return partners


AnySettings = TypeVar("AnySettings", bound=msgspec.Struct)


def convert_settings(
    kind: type[AnySettings],
    fields: Mapping[str, object],
    sources: Mapping[str, str],
    durations: frozenset[str],
) -> AnySettings:
    """``fields`` as a ``kind`` of settings, each checked against its declared type and limits;
    ``sources`` names where each came from (a variable or a flag) for the error message, and
    the fields named in ``durations`` are shown as durations (``1h``, not ``3600``)."""
    try:
        return msgspec.convert(dict(fields), kind)
    except msgspec.ValidationError as error:
        match = re.search(r"at `\$\.(\w+)`", str(error))
        name = match.group(1) if match else ""
        source = sources.get(name, name or "settings")
        value = fields.get(name)
        seconds = name in durations
        shown = _as_duration(value) if seconds and isinstance(value, int | float) else repr(value)
        raise ConfigError(
            source, f"{_allowed(kind, name, seconds, str(error))}, got {shown}"
        ) from None


RELAY_DURATIONS: Final = frozenset({"hello_timeout", "heartbeat", "command_ttl", "dedupe_ttl"})
"""The relay's settings given as durations."""


def _allowed(kind: type[msgspec.Struct], name: str, seconds: bool, fallback: str) -> str:
    """The allowed range of field ``name``, in words (msgspec's own message if it has none)."""
    info = msgspec.inspect.type_info(kind)
    assert isinstance(info, msgspec.inspect.StructType)
    fields = {f.name: f.type for f in info.fields}
    found = fields.get(name)
    if isinstance(found, msgspec.inspect.UnionType):
        found = next((k for k in found.types if not isinstance(k, msgspec.inspect.NoneType)), None)
    if not isinstance(found, msgspec.inspect.IntType | msgspec.inspect.FloatType):
        return fallback.split(" - at ")[0].replace("Expected", "expected")
    show = _as_duration if seconds else _as_number
    low = show(found.ge) if found.ge is not None else None
    high = show(found.le) if found.le is not None else None
    if low is not None and high is not None:
        allowed = f"from {low} to {high}"
    elif low is not None:
        allowed = f"at least {low}"
    elif found.gt is not None:
        allowed = "greater than zero" if found.gt == 0 else f"greater than {show(found.gt)}"
    else:
        allowed = f"at most {high}"
    if seconds:
        return f"expected a duration {allowed}"
    what = "an integer" if isinstance(found, msgspec.inspect.IntType) else "a number"
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
