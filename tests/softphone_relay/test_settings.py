"""Configuration from the environment: defaults, parsing, and errors that name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.errors import ConfigError
from relay.log.clients import cluster_seed
from relay.settings import RateLimit, parse_duration
from softphone_relay.settings import settings_from_env
from tests.certificates import org_certificate

SECRET = "s" * 32


def test_defaults_without_environment() -> None:
    """Nothing set: loopback, port 8765, one shard, 50/200 rate limit."""
    settings = settings_from_env({})
    assert (settings.relay.host, settings.relay.port, settings.relay.shards) == (
        "127.0.0.1",
        8765,
        1,
    )
    assert settings.relay.rate_limit == RateLimit(50.0, 200)
    assert settings.relay.partner_config("p") == {
        "disposition": [],
        "partner_config": {"partnerId": "p"},
    }


def test_every_variable_is_read() -> None:
    """Each documented variable lands in its setting."""
    settings = settings_from_env(
        {
            "SOFTPHONE_RELAY_REDIS_URL": "redis://r:6379/0",
            "SOFTPHONE_RELAY_SECRET": SECRET,
            "SOFTPHONE_RELAY_ALLOWED_ORIGINS": "https://*.force.com, https://*.expedia.com",
            "SOFTPHONE_RELAY_HOST": "0.0.0.0",
            "SOFTPHONE_RELAY_PORT": "9000",
            "SOFTPHONE_RELAY_SHARDS": "8",
            "SOFTPHONE_RELAY_RATE_LIMIT": "10/30",
            "SOFTPHONE_RELAY_HELLO_TIMEOUT": "500ms",
            "SOFTPHONE_RELAY_HEARTBEAT": "15s",
        }
    )
    assert settings.relay.redis_url == "redis://r:6379/0" and settings.relay.secret == SECRET
    assert settings.relay.allowed_origins == ("https://*.force.com", "https://*.expedia.com")
    assert (settings.relay.host, settings.relay.port, settings.relay.shards) == ("0.0.0.0", 9000, 8)
    assert settings.relay.rate_limit == RateLimit(10.0, 30)
    assert (settings.relay.hello_timeout, settings.relay.heartbeat) == (0.5, 15.0)


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("PORT", "eighty", "expected an integer"),
        ("PORT", "70000", "expected an integer from 0 to 65535"),
        ("SHARDS", "0", "expected an integer from 1 to 1024"),
        ("RATE_LIMIT", "fast", "RATE or RATE/BURST"),
        ("REDIS_URL", "http://x", "redis://"),
        ("SECRET", "short", "at least 32 bytes"),
        ("ALLOWED_ORIGINS", "*.force.com", "no origin glob"),
        ("HELLO_TIMEOUT", "soon", "duration"),
        ("PARTNERS_FILE", "/no/such/file.toml", "cannot read"),
        ("PUBLIC_KEY_FILE", "/no/such/key.pem", "cannot read"),
        ("API_PORT", "-1", "expected an integer from 0 to 65535"),
        ("API_KEYS", "just-a-key-without-partner", "KEY:PARTNER_ID"),
        ("API_KEYS", "short:p1", "shorter than 16"),
        ("API_KEYS", "k" * 16 + ":p1," + "k" * 16 + ":p2", "given twice"),
        ("WORKER_METRICS_PORT", "x", "expected an integer"),
    ],
)
def test_invalid_setting_is_named(variable: str, value: str, problem: str) -> None:
    """A bad value fails with the variable's name and what was wrong."""
    with pytest.raises(ConfigError) as info:
        settings_from_env({f"SOFTPHONE_RELAY_{variable}": value})
    assert info.value.setting == f"SOFTPHONE_RELAY_{variable}"
    assert problem in str(info.value)


def test_secret_and_public_key_are_exclusive(tmp_path: Path) -> None:
    """One way to verify tokens."""
    key = tmp_path / "key.pem"
    key.write_text("-----BEGIN PUBLIC KEY-----\n")
    with pytest.raises(ConfigError, match="not both"):
        settings_from_env(
            {"SOFTPHONE_RELAY_SECRET": SECRET, "SOFTPHONE_RELAY_PUBLIC_KEY_FILE": str(key)}
        )


def test_partners_file_gives_the_welcome_config(tmp_path: Path) -> None:
    """The TOML partners file supplies disposition codes and partner_config (and, for a
    connector's welcome, the Salesforce Voice presence table)."""
    path = tmp_path / "partners.toml"
    path.write_text(
        '[partners.p1]\ndisposition = ["sale", "no-sale"]\n'
        'businessSegmentId = "b"\nchannelOriginId = "c"\n'
        'voicePresence = { "Available for Voice" = "ready-1" }\n'
    )
    settings = settings_from_env({"SOFTPHONE_RELAY_PARTNERS_FILE": str(path)})
    assert settings.relay.partner_config("p1") == {
        "disposition": ["sale", "no-sale"],
        "partner_config": {"partnerId": "p1", "businessSegmentId": "b", "channelOriginId": "c"},
        "voicePresence": {"Available for Voice": "ready-1"},
    }
    assert settings.relay.partner_config("p2") is None


def test_invalid_partners_file_names_the_field(tmp_path: Path) -> None:
    """A partners file with a wrong field says where."""
    path = tmp_path / "partners.toml"
    path.write_text(
        '[partners.p1]\ndisposition = "sale"\nbusinessSegmentId = "b"\nchannelOriginId = "c"\n'
    )
    with pytest.raises(
        ConfigError, match=r"Expected `array`, got `str` - at `\$\.partners\[\.\.\.\]\.disposition`"
    ):
        settings_from_env({"SOFTPHONE_RELAY_PARTNERS_FILE": str(path)})


@pytest.mark.parametrize(
    ("text", "seconds"), [("10", 10.0), ("250ms", 0.25), ("5m", 300.0), ("90d", 7776000.0)]
)
def test_durations(text: str, seconds: float) -> None:
    """Durations take ms, s, m, h, d suffixes."""
    assert parse_duration("X", text) == seconds


def test_projector_timings_are_read() -> None:
    """Batch wait may be zero (no waiting); claim idle is a duration."""
    settings = settings_from_env(
        {"SOFTPHONE_RELAY_BATCH_WAIT": "0", "SOFTPHONE_RELAY_CLAIM_IDLE": "45s"}
    )
    assert (settings.projections.batch_wait, settings.projections.claim_idle) == (0.0, 45.0)


def test_api_keys_map_to_their_partner() -> None:
    """KEY:PARTNER pairs, spaces and empty items tolerated; the port as given."""
    settings = settings_from_env(
        {
            "SOFTPHONE_RELAY_API_KEYS": " key-one-0123456789:p1 , key-two-0123456789:p2, ",
            "SOFTPHONE_RELAY_API_PORT": "9100",
        }
    )
    assert settings.relay.api_keys == {"key-one-0123456789": "p1", "key-two-0123456789": "p2"}
    assert settings.relay.api_port == 9100


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"port": 99999}, "--port: expected an integer from 0 to 65535, got 99999"),
        ({"api_port": -1}, "--api-port: expected an integer from 0 to 65535, got -1"),
    ],
)
def test_a_flag_out_of_range_is_named_with_the_allowed_range(
    flags: dict[str, object], message: str
) -> None:
    """Command-line overrides pass the same limits as the environment, and name the flag."""
    with pytest.raises(ConfigError) as info:
        settings_from_env({}, flags)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("HEARTBEAT", "0s", "expected a duration greater than zero, got 0ms"),
        ("COMMAND_TTL", "0", "expected a duration greater than zero, got 0ms"),
        ("RETENTION", "30m", "expected a duration at least 1h, got 30m"),
        ("DEDUPE_TTL", "0s", "expected a duration at least 1s, got 0ms"),
    ],
)
def test_every_declared_limit_applies_to_the_environment(
    variable: str, value: str, message: str
) -> None:
    """Durations are checked against the limits the settings type declares."""
    with pytest.raises(ConfigError) as info:
        settings_from_env({f"SOFTPHONE_RELAY_{variable}": value})
    assert str(info.value) == f"SOFTPHONE_RELAY_{variable}: {message}"


def test_a_flag_overrides_the_environment() -> None:
    """--port wins over SOFTPHONE_RELAY_PORT."""
    settings = settings_from_env({"SOFTPHONE_RELAY_PORT": "9000"}, {"port": 9001})
    assert settings.relay.port == 9001


def test_a_cluster_is_named_by_its_url() -> None:
    """``redis+cluster://`` is accepted and kept; the client connects to its plain seed."""
    settings = settings_from_env({"SOFTPHONE_RELAY_REDIS_URL": "redis+cluster://node-1:6379"})
    assert settings.relay.redis_url == "redis+cluster://node-1:6379"
    assert cluster_seed("redis+cluster://node-1:6379") == "redis://node-1:6379"
    assert cluster_seed("rediss+cluster://node-1:6380") == "rediss://node-1:6380"
    assert cluster_seed("redis://node-1:6379/0") is None


def test_a_partners_key_file_is_read_relative_to_the_partners_file(tmp_path: Path) -> None:
    """``publicKeyFile = "keys/p1.crt"`` beside the partners file: its certificate becomes the
    partner's own verification key."""
    _, certificate = org_certificate()
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "p1.crt").write_text(certificate)
    path = tmp_path / "partners.toml"
    path.write_text(
        '[partners.p1]\nbusinessSegmentId = "b"\nchannelOriginId = "c"\n'
        'publicKeyFile = "keys/p1.crt"\n'
    )
    settings = settings_from_env({"SOFTPHONE_RELAY_PARTNERS_FILE": str(path)})
    assert settings.relay.partner_keys() == {"p1": certificate}


def test_a_partner_with_both_a_key_and_a_key_file_is_refused(tmp_path: Path) -> None:
    """Two sources for one partner's keys: which one wins would be a guess."""
    path = tmp_path / "partners.toml"
    path.write_text(
        '[partners.p1]\nbusinessSegmentId = "b"\nchannelOriginId = "c"\n'
        'publicKey = "x"\npublicKeyFile = "p1.crt"\n'
    )
    with pytest.raises(ConfigError, match="publicKey and publicKeyFile"):
        settings_from_env({"SOFTPHONE_RELAY_PARTNERS_FILE": str(path)})


def test_a_missing_partner_key_file_names_the_partners_setting(tmp_path: Path) -> None:
    """A key file that is not there: the error names the partners file's variable and path."""
    path = tmp_path / "partners.toml"
    path.write_text(
        '[partners.p1]\nbusinessSegmentId = "b"\nchannelOriginId = "c"\n'
        'publicKeyFile = "gone.crt"\n'
    )
    with pytest.raises(ConfigError, match=r"PARTNERS_FILE.*gone\.crt"):
        settings_from_env({"SOFTPHONE_RELAY_PARTNERS_FILE": str(path)})


def test_salesforce_voice_settings_and_a_partners_records_are_read(tmp_path: Path) -> None:
    """``SOFTPHONE_RELAY_TELEPHONY_*`` configure the voicecalls group; a partner's
    ``records`` says what its calls become (anything else is refused, naming the field)."""
    path = tmp_path / "partners.toml"
    path.write_text(
        '[partners.p1]\nbusinessSegmentId = "b"\nchannelOriginId = "c"\nrecords = "both"\n'
    )
    url = "https://acme.my.salesforce-scrt.com/telephony/v1"
    settings = settings_from_env(
        {
            "SOFTPHONE_RELAY_PARTNERS_FILE": str(path),
            "SOFTPHONE_RELAY_TELEPHONY_URL": url,
            "SOFTPHONE_RELAY_TELEPHONY_ORG_ID": "00D5g0000000001EAA",
            "SOFTPHONE_RELAY_TELEPHONY_CALL_CENTER": "ACME_Voice",
            "SOFTPHONE_RELAY_TELEPHONY_KEY_FILE": "/run/secrets/telephony_key",
            "SOFTPHONE_RELAY_TELEPHONY_NUMBER": "+442079460000",
        }
    )
    projections = settings.projections
    assert (projections.telephony_url, projections.telephony_call_center) == (url, "ACME_Voice")
    assert projections.telephony_number == "+442079460000"
    assert settings.relay.partners is not None and settings.relay.partners["p1"].records == "both"
    path.write_text(
        '[partners.p1]\nbusinessSegmentId = "b"\nchannelOriginId = "c"\nrecords = "voice"\n'
    )
    with pytest.raises(ConfigError, match=r"records"):
        settings_from_env({"SOFTPHONE_RELAY_PARTNERS_FILE": str(path)})
