"""compose.yaml is a valid Compose file whose services run commands the CLI really has."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from softphone_relay.cli import _parser

ROOT = Path(__file__).parent.parent


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())  # type: ignore[no-any-return]


def test_compose_file_matches_the_compose_specification() -> None:
    """Validated against the Compose Specification's JSON schema (tests/data/README.md)."""
    schema = json.loads((Path(__file__).parent / "data" / "compose-spec.schema.json").read_text())
    # The schema names draft-07 by a URL jsonschema does not recognise; say so explicitly.
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(compose())


def test_every_python_service_starts_a_real_cli_command() -> None:
    """Each service built from our image runs a subcommand the CLI parses."""
    parser = _parser()
    services = {n: s for n, s in compose()["services"].items() if "build" in s}
    assert services
    for name, service in services.items():
        args = parser.parse_args(service["command"])
        assert args.command == service["command"][0], name


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
