"""compose.yaml is a valid Compose file whose services run commands the CLI really has."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from projections.registry import NAMES as GROUPS
from softphone_relay.cli.main import parser
from softphone_relay.settings import load_partners

ROOT = Path(__file__).parent.parent


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())  # type: ignore[no-any-return]


def test_compose_file_matches_the_compose_specification() -> None:
    """Validated against the Compose Specification's JSON schema (tests/data/README.md)."""
    schema = json.loads((Path(__file__).parent / "data" / "compose-spec.schema.json").read_text())
    # The schema names draft-07 by a URL jsonschema does not recognise; say so explicitly.
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(compose())


def python_services() -> dict[str, dict[str, Any]]:
    """The services that run our image (merge keys resolved)."""
    return {
        name: service
        for name, service in compose()["services"].items()
        if service.get("image") == "softphone-relay:latest"
    }


def test_every_python_service_starts_a_real_cli_command() -> None:
    """Each service running our image runs a subcommand the CLI parses, groups it knows."""
    command_line = parser()
    assert len(python_services()) >= 4
    for name, service in python_services().items():
        args = command_line.parse_args(service["command"])
        assert args.command == service["command"][0], name
        if args.command == "project":
            assert set(args.group.split(",")) <= set(GROUPS), name


def test_every_projection_group_has_workers() -> None:
    """calls, dispatch and presence are each run by some service."""
    run = {
        group
        for service in python_services().values()
        if service["command"][0] == "project"
        for group in service["command"][service["command"].index("--group") + 1].split(",")
    }
    assert run == set(GROUPS)


def test_every_python_service_has_a_health_check_and_a_restart_policy() -> None:
    """Every relay and worker service is watched and restarted."""
    for name, service in python_services().items():
        assert "healthcheck" in service and service["restart"] == "unless-stopped", name


def test_the_calls_workers_log_in_to_salesforce_with_a_secret_key() -> None:
    """The calls workers use the JWT bearer flow with the key as a secret, not in the image."""
    [calls] = [s for s in python_services().values() if s["command"][-1] == "calls"]
    env = calls["environment"]
    assert env["SOFTPHONE_RELAY_SF_PRIVATE_KEY_FILE"] == "/run/secrets/salesforce_key"
    assert calls["secrets"] == ["salesforce_key"]


def test_the_shipped_partners_file_is_valid() -> None:
    """The compose stack's config/partners.toml loads as the relay would load it."""
    partners = load_partners("config/partners.toml", ROOT / "config" / "partners.toml")
    assert partners


def test_redis_keeps_an_append_only_file_on_a_volume() -> None:
    """The log survives restarts: AOF on, data on a named volume."""
    valkey = compose()["services"]["valkey"]
    assert "--appendonly" in valkey["command"] and "yes" in valkey["command"]
    assert any(v.endswith(":/data") for v in valkey["volumes"])


def test_relays_are_replicated_with_health_checks_and_restart_policies() -> None:
    """At least two relays, each with a health check and a restart policy."""
    relays = [s for n, s in compose()["services"].items() if n.startswith("relay")]
    assert len(relays) >= 2
    assert all("healthcheck" in r and r["restart"] == "unless-stopped" for r in relays)


def test_every_relay_must_be_given_the_softphones_origin() -> None:
    """No Lightning default that an Open CTI softphone never sends: compose refuses to start
    until the softphone page's origin is given."""
    relays = [s for n, s in compose()["services"].items() if n.startswith("relay")]
    for relay in relays:
        origins = relay["environment"]["SOFTPHONE_RELAY_ALLOWED_ORIGINS"]
        assert origins.startswith("${SOFTPHONE_RELAY_ALLOWED_ORIGINS:?"), origins
        assert "lightning.force.com" not in origins


def test_a_cluster_profile_runs_three_primaries_with_append_only_files() -> None:
    """``--profile cluster``: three cluster-enabled nodes on volumes, joined by a one-shot job,
    and the services take their Redis URL from the environment (``redis+cluster://``)."""
    services = compose()["services"]
    nodes = [s for n, s in services.items() if n.startswith("valkey-node-")]
    assert len(nodes) == 3
    for node in nodes:
        assert node["profiles"] == ["cluster"]
        assert "--cluster-enabled" in node["command"] and "--appendonly" in node["command"]
        assert any(v.endswith(":/data") for v in node["volumes"])
    init = services["cluster-init"]
    assert "--cluster create" in init["command"][0] and init["profiles"] == ["cluster"]
    url = services["relay-1"]["environment"]["SOFTPHONE_RELAY_REDIS_URL"]
    assert url.startswith("${SOFTPHONE_RELAY_REDIS_URL:-")
