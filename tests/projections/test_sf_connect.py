"""Salesforce settings from SOFTPHONE_RELAY_SF_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from projections.sf_connect import salesforce_settings_from_env
from relay.errors import ConfigError

URL = "https://acme.my.salesforce.com"


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
    assert (settings.instance_url, settings.session_id, settings.api_version) == (
        URL,
        "00D!x",
        "62.0",
    )
    assert settings.mapping.fields == {"language": "Language__c"}


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
