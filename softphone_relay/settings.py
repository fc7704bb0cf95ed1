"""Every setting of a ``softphone-relay`` process, read once from ``SOFTPHONE_RELAY_*`` (and
the files they name) and composed from what each package owns: the relay's
(:class:`relay.settings.RelaySettings`) and the projections' (:class:`ProjectionSettings`).

The only module of ours that reads these variables (the Salesforce login has its own,
``SOFTPHONE_RELAY_SF_*``, read by :mod:`projections.salesforce.connect`). Every problem raises
:class:`ConfigError` naming the variable or flag.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import msgspec

from projections.settings import PROJECTION_DURATIONS, ProjectionSettings
from relay.errors import ConfigError
from relay.privacy.keys import parse_data_keys
from relay.settings import (
    PREFIX,
    RELAY_DURATIONS,
    Partner,
    RelaySettings,
    convert_settings,
    decode_partners,
    parse_api_keys,
    parse_duration,
    parse_int,
    parse_rate_limit,
)


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    """The relay's settings and the projections', as one process reads them."""

    relay: RelaySettings = RelaySettings()
    projections: ProjectionSettings = ProjectionSettings()


_PROJECTION_FIELDS: Final = frozenset(ProjectionSettings.__struct_fields__)


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
    """``fields`` (of either package, by name) as :class:`Settings`, each checked against its
    declared type and limits; ``sources`` names where each came from for the error message."""
    ours = {k: v for k, v in fields.items() if k in _PROJECTION_FIELDS}
    theirs = {k: v for k, v in fields.items() if k not in _PROJECTION_FIELDS}
    return Settings(
        relay=convert_settings(RelaySettings, theirs, sources, RELAY_DURATIONS),
        projections=convert_settings(ProjectionSettings, ours, sources, PROJECTION_DURATIONS),
    )


def with_fields(settings: Settings, fields: Mapping[str, object]) -> Settings:
    """``settings`` with ``fields`` (of either package, by name) replaced, unchecked (for
    values the command line makes itself, such as ``up``'s development defaults)."""
    return Settings(
        relay=msgspec.structs.replace(
            settings.relay, **{k: v for k, v in fields.items() if k not in _PROJECTION_FIELDS}
        ),
        projections=msgspec.structs.replace(
            settings.projections, **{k: v for k, v in fields.items() if k in _PROJECTION_FIELDS}
        ),
    )


def load_partners(name: str, path: Path) -> dict[str, Partner]:
    """Read and validate a partners TOML file (``SOFTPHONE_RELAY_PARTNERS_FILE``), with the key
    files it names (``publicKeyFile``, relative to it) read into ``publicKey``."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(name, f"cannot read {path}: {error.strerror}") from None
    partners = decode_partners(name, data, str(path))
    for partner_id, partner in partners.items():
        if partner.publicKeyFile is not None:
            pem = _read_key_file(name, str(path.parent / partner.publicKeyFile))
            partners[partner_id] = msgspec.structs.replace(
                partner, publicKey=pem, publicKeyFile=None
            )
    return partners


def _read_key_file(name: str, path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as error:
        raise ConfigError(name, f"cannot read {path}: {error.strerror}") from None


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
    for key, field in (("TLS_CERT_FILE", "tls_cert_file"), ("TLS_KEY_FILE", "tls_key_file")):
        if (path := get(key)) is not None:
            put(field, key, path)
    if (get("TLS_CERT_FILE") is None) != (get("TLS_KEY_FILE") is None):
        raise ConfigError(PREFIX + "TLS_CERT_FILE", "set both TLS_CERT_FILE and TLS_KEY_FILE")
    data_key, data_key_file = get("DATA_KEY"), get("DATA_KEY_FILE")
    if data_key is not None and data_key_file is not None:
        raise ConfigError(PREFIX + "DATA_KEY", "set either DATA_KEY or DATA_KEY_FILE, not both")
    if data_key_file is not None:
        data_key = _read_key_file(PREFIX + "DATA_KEY_FILE", data_key_file)
    if data_key is not None:
        source = "DATA_KEY_FILE" if data_key_file is not None else "DATA_KEY"
        try:
            keys = parse_data_keys(data_key)
        except ValueError as error:
            raise ConfigError(PREFIX + source, str(error)) from None
        put("data_keys", source, tuple(base64.b64encode(k).decode() for k in keys))
    if (host := get("HOST")) is not None:
        put("host", "HOST", host)
    for key in ("URL", "ORG_ID", "CALL_CENTER", "KEY_FILE", "CA_FILE", "NUMBER"):
        if (text := get("TELEPHONY_" + key)) is not None:
            put("telephony_" + key.lower(), "TELEPHONY_" + key, text)
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
