"""The command line's own shape: each command imports only what it uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import PARTNER, SECRET

HEAVY = ("simple_salesforce", "zeep", "aiohttp", "projections.salesforce", "trustme")
PROBE = """
import json, sys
from softphone_relay.cli.main import main
code = main(sys.argv[1:])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {names} or m.startswith({names}))
print(json.dumps({{"code": code, "heavy": heavy}}), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args",
    [
        ["token", "--agent", "a1", "--partner", PARTNER],
        ["send", "a1", "get_presence", "null"],
        ["status", "--json"],
        ["tail", "--no-follow", "--from", "-"],
    ],
    ids=lambda args: args[0],
)
def test_light_commands_never_import_salesforce_or_aiohttp(
    args: list[str], redis_url: str, tmp_path: Path
) -> None:
    """``token``, ``send``, ``status`` and ``tail`` start without the heavy integrations."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOFTPHONE_RELAY_")}
    env |= {"SOFTPHONE_RELAY_REDIS_URL": redis_url, "SOFTPHONE_RELAY_SECRET": SECRET}
    probe = PROBE.format(names=repr(HEAVY))
    result = subprocess.run(
        [sys.executable, "-c", probe, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    report = json.loads(result.stderr.strip().splitlines()[-1])
    assert report == {"code": 0, "heavy": []}, result.stderr
