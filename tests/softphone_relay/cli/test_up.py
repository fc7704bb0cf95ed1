"""``softphone-relay up`` and ``serve`` as processes: ordered stops, taken ports, flags out of
range, and the embedded server an ``up`` killed outright leaves behind.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from relay.errors import ConfigError
from relay.log.envelope import encode_stored
from softphone_relay.cli.dev import DEV_PARTNER_ID, DevState
from softphone_relay.cli.up import up_settings
from softphone_relay.embedded import free_port
from tests.helpers import CLI, SECRET, clean_env, envelope

READY = "Ctrl-C stops everything this started."


class Up:
    """An ``up`` started as a terminal starts it: its own process group, stderr to a file."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.stderr_path = cwd / "up.stderr"
        self._stderr = self.stderr_path.open("w")
        self.process = subprocess.Popen(
            [*CLI, "up", "--port", "0", "--api-port", "0", *args],
            cwd=cwd,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        lines = []
        for line in self.process.stdout:
            lines.append(line)
            if line.startswith(READY):
                break
        self.output = "".join(lines)
        found = re.search(r"redis\s+(redis://\S+)", self.output)
        assert found is not None, self.output + self.stderr()
        self.redis_url = found.group(1)

    def stderr(self) -> str:
        """What ``up`` logged so far."""
        return self.stderr_path.read_text()

    def server_pid(self) -> int:
        """The embedded server's process id, as it reports it."""
        client = redis.Redis.from_url(self.redis_url)
        try:
            return int(client.info("server")["process_id"])
        finally:
            client.close()

    def close(self) -> None:
        """Make sure nothing is left running."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
        assert self.process.stdout is not None
        self.process.stdout.close()
        self._stderr.close()


@pytest.fixture
def start_up(tmp_path: Path) -> Iterator[type[Up]]:
    """Start ``up`` processes in the test's directory (stopped at the end)."""
    started: list[Up] = []

    class Started(Up):
        def __init__(self, *args: str) -> None:
            super().__init__(tmp_path, *args)
            started.append(self)

    yield Started  # type: ignore[misc]
    for one in started:
        one.close()


def answers(url: str) -> bool:
    """Whether a Redis server answers at ``url``."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def test_the_embedded_server_runs_in_a_session_of_its_own(start_up: type[Up]) -> None:
    """Ctrl-C in a terminal reaches the process group of ``up``, not its Redis."""
    up = start_up()
    assert os.getsid(up.server_pid()) != os.getsid(up.process.pid)


def test_ctrl_c_stops_relay_and_workers_before_redis_with_no_connection_errors(
    start_up: type[Up],
) -> None:
    """SIGINT to the terminal's process group: exit 0, the server stopped last, a clean log."""
    up = start_up()
    os.killpg(up.process.pid, signal.SIGINT)
    assert up.process.wait(timeout=30) == 0
    assert not answers(up.redis_url), "the embedded server is still running"
    log = up.stderr()
    for sign in ("Error", "error=", "Traceback", "level=ERROR", "redis_unreachable"):
        assert sign not in log, log
    relay_stopped = log.index("event=relay_stopped")
    assert "event=embedded_stopped" in log[relay_stopped:], log


def test_up_on_a_taken_port_stops_with_one_line_naming_address_and_setting(
    tmp_path: Path,
) -> None:
    """No retrying forever: the address and the setting, then exit 2, nothing left running."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*CLI, "up", "--port", str(port), "--api-port", "0"],
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert errors == [
        f"softphone-relay: error: SOFTPHONE_RELAY_PORT (--port): cannot listen on "
        f"127.0.0.1:{port}: Address already in use"
    ], result.stderr
    assert not (tmp_path / "data" / "redis-url").exists(), "the embedded server was left running"


def test_serve_on_a_taken_port_stops_with_one_line(redis_url: str, tmp_path: Path) -> None:
    """``serve`` too: one line naming the address and the setting, exit 2."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = clean_env(
            SOFTPHONE_RELAY_REDIS_URL=redis_url,
            SOFTPHONE_RELAY_SECRET=SECRET,
            SOFTPHONE_RELAY_PORT=str(port),
            SOFTPHONE_RELAY_API_PORT=str(free_port()),
        )
        result = subprocess.run(
            [*CLI, "serve"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30
        )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"softphone-relay: error: SOFTPHONE_RELAY_PORT (--port): cannot listen on "
        f"127.0.0.1:{port}: Address already in use"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "99999"], "--port: expected an integer from 0 to 65535, got 99999"),
        (["--api-port", "-5"], "--api-port: expected an integer from 0 to 65535, got -5"),
    ],
)
def test_up_with_a_flag_out_of_range_stops_naming_flag_and_range(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """Checked before anything starts: one line, exit 2."""
    result = subprocess.run(
        [*CLI, "up", *args],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"softphone-relay: error: {message}"


def test_a_server_left_by_a_killed_up_is_stopped_by_the_next_up(start_up: type[Up]) -> None:
    """Two servers never share one data directory: the leftover is shut down first."""
    first = start_up()
    first.process.kill()
    first.process.wait()
    assert answers(first.redis_url), "SIGKILL leaves the server of its own session running"
    second = start_up()
    assert not answers(first.redis_url)
    assert answers(second.redis_url)


def test_up_refuses_tls_settings_naming_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``up`` serves this machine over plain HTTP: TLS files in its environment are an error
    that points to ``serve``, not a setting silently ignored."""
    monkeypatch.setenv("SOFTPHONE_RELAY_TLS_CERT_FILE", str(tmp_path / "tls.crt"))
    monkeypatch.setenv("SOFTPHONE_RELAY_TLS_KEY_FILE", str(tmp_path / "tls.key"))
    with pytest.raises(ConfigError, match="TLS is for serve"):
        up_settings(DevState(tmp_path), None, None, None)


def test_up_makes_an_inbound_call_a_voice_call_in_the_stand_in(start_up: type[Up]) -> None:
    """With no org configured, ``up`` wires the voicecalls group to the stand-in's
    Telephony Integration API (a key and certificate of its own): an inbound call in the log
    becomes one VoiceCall, ended, which the printed query lists."""
    running = start_up()
    found = re.search(
        r"curl -s --cacert (\S+) -H 'Authorization: Bearer (\S+)' \\\n\s+'(\S+FROM\+VoiceCall)'",
        running.output,
    )
    assert found is not None, running.output
    ca_file, session, query = found.groups()
    conversation = str(uuid.uuid4())
    events = [
        envelope("incomingCall", conversation, 0, partner=DEV_PARTNER_ID, callerANI="+18883973342"),
        envelope(
            "callEnded",
            conversation,
            10,
            partner=DEV_PARTNER_ID,
            duration=10,
            callType="inbound",
            notes="Refund issued",
        ),
    ]
    client = redis.Redis.from_url(running.redis_url)
    try:
        for event in events:
            client.xadd("sp:events:{0}", {"e": encode_stored(event)})
    finally:
        client.close()
    deadline = time.monotonic() + 20
    while True:
        answer = requests.get(
            query, headers={"Authorization": f"Bearer {session}"}, verify=ca_file, timeout=10
        )
        records = [r for r in answer.json()["records"] if r["VendorCallKey"] == conversation]
        if records or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [(r["CallDisposition"], r["Notes__c"]) for r in records] == [
        ("completed", "Refund issued")
    ]
