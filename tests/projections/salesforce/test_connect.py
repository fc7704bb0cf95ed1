"""Salesforce settings from SOFTPHONE_RELAY_SF_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from projections.salesforce.connect import (
    ClientCredentialsAuth,
    JwtBearerAuth,
    PasswordAuth,
    SessionAuth,
    salesforce_settings_from_env,
)
from relay.errors import ConfigError

URL = "https://acme.my.salesforce.com"


def sf(**variables: str) -> dict[str, str]:
    """Environment variables without their SOFTPHONE_RELAY_SF_ prefix."""
    return {f"SOFTPHONE_RELAY_SF_{k}": v for k, v in variables.items()}


def test_no_variables_means_no_org() -> None:
    """Without configuration the caller decides (``up`` uses the stand-in)."""
    assert salesforce_settings_from_env({}) is None


def test_session_settings_are_read(tmp_path: Path) -> None:
    """Instance URL, session id, API version and mapping file."""
    mapping = tmp_path / "m.toml"
    mapping.write_text('[fields]\nlanguage = "Language__c"\n')
    settings = salesforce_settings_from_env(
        {
            "SOFTPHONE_RELAY_SF_INSTANCE_URL": URL,
            "SOFTPHONE_RELAY_SF_SESSION_ID": "00D!x",
            "SOFTPHONE_RELAY_SF_API_VERSION": "62.0",
            "SOFTPHONE_RELAY_SF_MAPPING_FILE": str(mapping),
        }
    )
    assert settings is not None
    assert settings.auth == SessionAuth(URL, "00D!x")
    assert settings.api_version == "62.0"
    assert settings.mapping.fields == {"language": "Language__c"}


def test_username_password_and_token_is_the_soap_login() -> None:
    """USERNAME + PASSWORD (+ SECURITY_TOKEN), on login by default."""
    settings = salesforce_settings_from_env(sf(USERNAME="u", PASSWORD="p", SECURITY_TOKEN="t"))
    assert settings is not None
    assert settings.auth == PasswordAuth(username="u", password="p", security_token="t")


def test_a_connected_app_makes_it_the_oauth_password_flow() -> None:
    """CONSUMER_KEY + CONSUMER_SECRET with a username: OAuth, on a sandbox here."""
    settings = salesforce_settings_from_env(
        sf(USERNAME="u", PASSWORD="p", CONSUMER_KEY="k", CONSUMER_SECRET="s", DOMAIN="test")
    )
    assert settings is not None
    assert settings.auth == PasswordAuth(
        username="u", password="p", consumer_key="k", consumer_secret="s", domain="test"
    )


def test_a_private_key_makes_it_the_jwt_bearer_flow(tmp_path: Path) -> None:
    """USERNAME + CONSUMER_KEY + PRIVATE_KEY_FILE."""
    key = tmp_path / "server.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    settings = salesforce_settings_from_env(
        sf(USERNAME="u", CONSUMER_KEY="k", PRIVATE_KEY_FILE=str(key))
    )
    assert settings is not None
    assert settings.auth == JwtBearerAuth(username="u", consumer_key="k", private_key_file=str(key))


def test_client_credentials_on_a_my_domain() -> None:
    """Key and secret alone, with the My Domain given in any usual spelling."""
    settings = salesforce_settings_from_env(
        sf(CONSUMER_KEY="k", CONSUMER_SECRET="s", DOMAIN="https://acme.my.salesforce.com")
    )
    assert settings is not None
    assert settings.auth == ClientCredentialsAuth(
        consumer_key="k", consumer_secret="s", domain="acme.my"
    )


def test_limit_settings_are_read() -> None:
    """SLOW_FROM as a percentage, LIMIT_PAUSE as a duration."""
    settings = salesforce_settings_from_env(
        sf(INSTANCE_URL=URL, SESSION_ID="x", SLOW_FROM="90%", LIMIT_PAUSE="10m")
    )
    assert settings is not None
    assert (settings.limits.slow_from, settings.limits.pause_seconds) == (0.9, 600.0)


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"SOFTPHONE_RELAY_SF_INSTANCE_URL": URL}, "SOFTPHONE_RELAY_SF_SESSION_ID"),
        ({"SOFTPHONE_RELAY_SF_SESSION_ID": "x"}, "SOFTPHONE_RELAY_SF_INSTANCE_URL"),
        (
            {
                "SOFTPHONE_RELAY_SF_INSTANCE_URL": "http://plain",
                "SOFTPHONE_RELAY_SF_SESSION_ID": "x",
            },
            "SOFTPHONE_RELAY_SF_INSTANCE_URL",
        ),
        (
            {
                "SOFTPHONE_RELAY_SF_INSTANCE_URL": URL,
                "SOFTPHONE_RELAY_SF_SESSION_ID": "x",
                "SOFTPHONE_RELAY_SF_API_VERSION": "latest",
            },
            "SOFTPHONE_RELAY_SF_API_VERSION",
        ),
        (
            {
                "SOFTPHONE_RELAY_SF_INSTANCE_URL": URL,
                "SOFTPHONE_RELAY_SF_SESSION_ID": "x",
                "SOFTPHONE_RELAY_SF_MAPPING_FILE": "/no/such.toml",
            },
            "SOFTPHONE_RELAY_SF_MAPPING_FILE",
        ),
        ({"SOFTPHONE_RELAY_SF_PASSWORD": "p"}, "SOFTPHONE_RELAY_SF_PASSWORD"),
        (sf(USERNAME="u"), "SOFTPHONE_RELAY_SF_PASSWORD"),
        (sf(USERNAME="u", PASSWORD="p", CONSUMER_KEY="k"), "SOFTPHONE_RELAY_SF_CONSUMER_SECRET"),
        (sf(INSTANCE_URL=URL, SESSION_ID="x", USERNAME="u"), "SOFTPHONE_RELAY_SF_USERNAME"),
        (sf(CONSUMER_KEY="k", CONSUMER_SECRET="s"), "SOFTPHONE_RELAY_SF_DOMAIN"),
        (sf(CONSUMER_KEY="k", CONSUMER_SECRET="s", DOMAIN="login"), "SOFTPHONE_RELAY_SF_DOMAIN"),
        (sf(CONSUMER_KEY="k", DOMAIN="acme.my"), "SOFTPHONE_RELAY_SF_CONSUMER_SECRET"),
        (sf(PRIVATE_KEY_FILE="/no/key", USERNAME="u"), "SOFTPHONE_RELAY_SF_CONSUMER_KEY"),
        (
            sf(PRIVATE_KEY_FILE="/no/key", USERNAME="u", CONSUMER_KEY="k"),
            "SOFTPHONE_RELAY_SF_PRIVATE_KEY_FILE",
        ),
        (sf(USERNAME="u", PASSWORD="p", DOMAIN="not a host"), "SOFTPHONE_RELAY_SF_DOMAIN"),
        (sf(INSTANCE_URL=URL, SESSION_ID="x", SLOW_FROM="lots"), "SOFTPHONE_RELAY_SF_SLOW_FROM"),
        (sf(INSTANCE_URL=URL, SESSION_ID="x", SLOW_FROM="150%"), "SOFTPHONE_RELAY_SF_SLOW_FROM"),
        (
            sf(INSTANCE_URL=URL, SESSION_ID="x", LIMIT_PAUSE="soon"),
            "SOFTPHONE_RELAY_SF_LIMIT_PAUSE",
        ),
    ],
)
def test_invalid_settings_name_the_variable(env: dict[str, str], setting: str) -> None:
    """Every problem names its variable."""
    with pytest.raises(ConfigError) as info:
        salesforce_settings_from_env(env)
    assert info.value.setting == setting


def test_ca_file_must_exist() -> None:
    """A CA bundle that is not there is named at start."""
    with pytest.raises(ConfigError) as info:
        salesforce_settings_from_env(
            {
                "SOFTPHONE_RELAY_SF_INSTANCE_URL": URL,
                "SOFTPHONE_RELAY_SF_SESSION_ID": "x",
                "SOFTPHONE_RELAY_SF_CA_FILE": "/no/ca.pem",
            }
        )
    assert info.value.setting == "SOFTPHONE_RELAY_SF_CA_FILE"


def test_the_api_version_has_a_floor_of_46() -> None:
    """Collection upsert needs 46.0; an older version is refused at start, saying why."""
    with pytest.raises(ConfigError, match=r"46.0 or later .* got 45.0"):
        salesforce_settings_from_env(sf(INSTANCE_URL=URL, SESSION_ID="x", API_VERSION="45.0"))
    settings = salesforce_settings_from_env(
        sf(INSTANCE_URL=URL, SESSION_ID="x", API_VERSION="46.0")
    )
    assert settings is not None and settings.api_version == "46.0"


def test_soap_login_is_refused_where_salesforce_no_longer_offers_it() -> None:
    """SOAP login() is gone from API 65.0: refused, pointing at the flows that remain."""
    soap = sf(USERNAME="u", PASSWORD="p", SECURITY_TOKEN="t", API_VERSION="65.0")
    with pytest.raises(ConfigError, match="JWT bearer flow or client credentials"):
        salesforce_settings_from_env(soap)
    assert salesforce_settings_from_env({**soap, "SOFTPHONE_RELAY_SF_API_VERSION": "64.0"})
    oauth = {**soap, **sf(CONSUMER_KEY="k", CONSUMER_SECRET="s")}
    assert salesforce_settings_from_env(oauth) is not None, "the OAuth password flow is not SOAP"


def test_jwt_bearer_through_a_my_domain_keeps_the_login_audience(tmp_path: Path) -> None:
    """An org whose API logins must go through its My Domain: the assertion is posted there,
    and its audience stays the login host Salesforce takes (test for a sandbox's)."""
    key = tmp_path / "key.pem"
    key.write_text("not read here")
    env = sf(USERNAME="u", CONSUMER_KEY="k", PRIVATE_KEY_FILE=str(key), DOMAIN="acme.my")
    settings = salesforce_settings_from_env(env)
    assert settings is not None and isinstance(settings.auth, JwtBearerAuth)
    assert (settings.auth.domain, settings.auth.token_domain) == ("login", "acme.my")
    sandbox = salesforce_settings_from_env(
        {**env, "SOFTPHONE_RELAY_SF_DOMAIN": "https://acme--uat.sandbox.my.salesforce.com"}
    )
    assert sandbox is not None and isinstance(sandbox.auth, JwtBearerAuth)
    assert (sandbox.auth.domain, sandbox.auth.token_domain) == ("test", "acme--uat.sandbox.my")
    for domain in ("login", "test"):
        plain = salesforce_settings_from_env({**env, "SOFTPHONE_RELAY_SF_DOMAIN": domain})
        assert plain is not None and isinstance(plain.auth, JwtBearerAuth)
        assert (plain.auth.domain, plain.auth.token_domain) == (domain, None)
