"""The command line as a user runs it: ``up`` on no configuration serves a real client;
``token``, ``send`` and ``serve`` work or fail with a one-line error naming the problem.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import stat
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from websockets.asyncio.client import connect

from relay.wire.auth import TokenVerifier
from tests.helpers import CLI, PARTNER, SECRET, clean_env, run_cli


@pytest.fixture
def up(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    """``softphone-relay up --port 0`` in an empty directory with no configuration."""
    process = subprocess.Popen(
        [*CLI, "up", "--port", "0", "--api-port", "0"],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("Ctrl-C"):
            break
    text = "".join(lines)
    info = {
        "socket": re.search(r"(ws://\S+/v1/socket)", text).group(1),  # type: ignore[union-attr]
        "token": re.search(r"agent token (\S+)", text).group(1),  # type: ignore[union-attr]
        "redis": re.search(r"redis\s+(redis://\S+)", text).group(1),  # type: ignore[union-attr]
        "standin_ca": re.search(r"--cacert (\S+)", text).group(1),  # type: ignore[union-attr]
        "standin_auth": re.search(r"--cacert \S+ -H 'Authorization: Bearer ([^']+)'", text).group(
            1
        ),  # type: ignore[union-attr]
        "api": re.search(r"control API (http://\S+)/v1/openapi.json", text).group(1),  # type: ignore[union-attr]
        "api_key": re.search(r"\(API key (\S+)\)", text).group(1),  # type: ignore[union-attr]
        "standin_query": re.search(r"'(https://\S+/query\?q=\S+)'", text).group(1),  # type: ignore[union-attr]
        "output": text,
    }
    try:
        yield process, info
    finally:
        if process.poll() is None:
            process.terminate()  # lets `up` stop its embedded server too
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        process.stdout.close()


async def test_up_serves_a_real_client_with_no_configuration(
    up: tuple[subprocess.Popen[str], dict[str, str]], tmp_path: Path
) -> None:
    """A fresh ``up`` accepts the printed token, acks an event and delivers a ``send``."""
    _, info = up
    async with connect(info["socket"], subprotocols=["softphone.v1"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "hello", "token": info["token"]}))
        welcome = json.loads(await ws.recv())
        assert welcome["config"]["disposition"] == ["code1", "code2"]
        await ws.send(
            json.dumps(
                {
                    "type": "event",
                    "id": "e1",
                    "name": "incomingCall",
                    "at": "2026-11-24T10:00:00Z",
                    "data": {},
                }
            )
        )
        assert json.loads(await ws.recv())["type"] == "ack"
        sent = await asyncio.to_thread(
            run_cli, None, tmp_path, "send", "dev-agent", "get_presence", "null"
        )
        assert sent.returncode == 0, sent.stderr
        command = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert (command["type"], command["name"], command["id"]) == (
            "command",
            "get_presence",
            sent.stdout.strip(),
        )


def test_up_stops_everything_on_sigterm(
    up: tuple[subprocess.Popen[str], dict[str, str]], tmp_path: Path
) -> None:
    """SIGTERM stops the relay and the embedded server, and exits 0."""
    process, info = up
    port = int(info["redis"].rsplit(":", 1)[1].split("/")[0])
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    import socket

    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    assert (tmp_path / "data" / "redis" / "appendonlydir").is_dir(), "AOF persistence is off"


def test_token_mints_a_verifiable_token(tmp_path: Path) -> None:
    """``token`` signs with SOFTPHONE_RELAY_SECRET."""
    result = run_cli(
        None,
        tmp_path,
        "token",
        "--agent",
        "alice",
        "--partner",
        PARTNER,
        "--ttl",
        "60",
        env=clean_env(SOFTPHONE_RELAY_SECRET=SECRET),
    )
    assert result.returncode == 0, result.stderr
    identity = TokenVerifier(secret=SECRET).verify(result.stdout.strip())
    assert (identity.agent_id, identity.partner_id) == ("alice", PARTNER)


def test_token_names_the_agents_salesforce_user(tmp_path: Path) -> None:
    """``--salesforce-user`` puts the User id in the token (claim sfUserId); a value that is
    no User id is refused naming the option."""
    env = clean_env(SOFTPHONE_RELAY_SECRET=SECRET)
    base = ["token", "--agent", "alice", "--partner", PARTNER, "--salesforce-user"]
    result = run_cli(None, tmp_path, *base, "005Hs00000A1b2CIAR", env=env)
    identity = TokenVerifier(secret=SECRET).verify(result.stdout.strip())
    assert identity.salesforce_user_id == "005Hs00000A1b2CIAR"
    refused = run_cli(None, tmp_path, *base, "alice@example.com", env=env)
    assert refused.returncode == 2
    assert refused.stderr.strip().startswith("softphone-relay: error: --salesforce-user")


def test_token_without_a_secret_says_which_setting(tmp_path: Path) -> None:
    """No secret and no ``up`` state: a one-line error naming the variable."""
    result = run_cli(None, tmp_path, "token", "--agent", "a", "--partner", "p")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("softphone-relay: error: SOFTPHONE_RELAY_SECRET")


def test_send_refuses_a_payload_that_breaks_the_contract(tmp_path: Path, redis_url: str) -> None:
    """``send`` validates against the contract and names the field."""
    result = run_cli(
        None,
        tmp_path,
        "send",
        "a",
        "start_call",
        '{"dialTo": "+18883973342"}',
        env=clean_env(SOFTPHONE_RELAY_REDIS_URL=redis_url),
    )
    assert result.returncode == 2
    assert "missing required field `partnerId`" in result.stderr


def test_send_refuses_invalid_json(tmp_path: Path, redis_url: str) -> None:
    """Malformed JSON is a clear error."""
    result = run_cli(
        None,
        tmp_path,
        "send",
        "a",
        "get_presence",
        "{",
        env=clean_env(SOFTPHONE_RELAY_REDIS_URL=redis_url),
    )
    assert result.returncode == 2 and "not valid JSON" in result.stderr


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SOFTPHONE_RELAY_PORT": "http"}, "SOFTPHONE_RELAY_PORT"),
        ({"SOFTPHONE_RELAY_SECRET": "x" * 32}, "SOFTPHONE_RELAY_REDIS_URL"),
        ({"SOFTPHONE_RELAY_REDIS_URL": "redis://127.0.0.1:1/0"}, "SOFTPHONE_RELAY_SECRET"),
    ],
)
def test_serve_with_bad_configuration_fails_naming_the_setting(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    """``serve`` refuses to start on invalid configuration, naming the variable."""
    result = run_cli(None, tmp_path, "serve", env=clean_env(**env))
    assert result.returncode == 2
    assert named in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_serve_waits_for_redis_and_stops_on_sigterm(tmp_path: Path) -> None:
    """With Redis unreachable, ``serve`` retries with backoff (logged) and SIGTERM ends it."""
    from softphone_relay.embedded import free_port

    env = clean_env(
        SOFTPHONE_RELAY_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
        SOFTPHONE_RELAY_SECRET=SECRET,
        SOFTPHONE_RELAY_PORT="0",
    )
    process = subprocess.Popen(
        [*CLI, "serve"],
        cwd=tmp_path,
        env=env,
        text=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    for line in process.stderr:
        if "event=redis_unreachable" in line:
            break
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0
    process.stderr.close()


def standin_tasks(info: dict[str, str]) -> list[dict[str, object]]:
    """The Tasks the stand-in of a running ``up`` holds, through its REST API."""
    import requests

    with requests.Session() as http:
        http.trust_env = False
        response = http.get(
            info["standin_query"],
            verify=info["standin_ca"],
            timeout=5,
            headers={"Authorization": f"Bearer {info['standin_auth']}"},
        )
    response.raise_for_status()
    return response.json()["records"]  # type: ignore[no-any-return]


def test_up_without_an_org_names_the_login_that_renews_itself(
    up: tuple[subprocess.Popen[str], dict[str, str]],
) -> None:
    """The welcome points to JWT bearer (what the README recommends), not to a session id that
    expires and cannot be renewed."""
    _, info = up
    welcome = " ".join(info["output"].split())
    assert "JWT bearer flow" in welcome
    for variable in ("SF_USERNAME", "SF_CONSUMER_KEY", "SF_PRIVATE_KEY_FILE"):
        assert f"SOFTPHONE_RELAY_{variable}" in welcome
    assert "SF_SESSION_ID" not in welcome


async def test_up_writes_each_call_to_the_salesforce_stand_in(
    up: tuple[subprocess.Popen[str], dict[str, str]],
) -> None:
    """With no org configured, ``up`` projects calls into its stand-in, listable by curl."""
    _, info = up
    async with connect(info["socket"], subprotocols=["softphone.v1"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "hello", "token": info["token"]}))
        await ws.recv()
        for i, (name, extra) in enumerate(
            [
                ("incomingCall", {"callerANI": "+18883973342"}),
                ("callEnded", {"duration": 42, "notes": "hi"}),
            ]
        ):
            data = {"partnerId": PARTNER, "conversationId": "cli-call", **extra}
            await ws.send(
                json.dumps(
                    {
                        "type": "event",
                        "id": f"e{i}",
                        "name": name,
                        "at": f"2026-11-24T10:00:0{i}Z",
                        "data": data,
                    }
                )
            )
            assert json.loads(await ws.recv())["type"] == "ack"
    for _ in range(50):
        found = await asyncio.to_thread(standin_tasks, info)
        if found:
            break
        await asyncio.sleep(0.1)
    assert [(t["CallObject"], t["Description"], t["Status"]) for t in found] == [
        ("cli-call", "hi", "Completed")
    ]


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (
            ["project", "--group", "calls,nope"],
            {"SOFTPHONE_RELAY_REDIS_URL": "redis://x:1/0"},
            "--group: unknown group nope",
        ),
        (
            ["project"],
            {"SOFTPHONE_RELAY_REDIS_URL": "redis://x:1/0"},
            "SOFTPHONE_RELAY_SF_INSTANCE_URL",
        ),
        (
            ["project"],
            {
                "SOFTPHONE_RELAY_REDIS_URL": "redis://x:1/0",
                "SOFTPHONE_RELAY_SF_USERNAME": "me@example.com",
            },
            "SOFTPHONE_RELAY_SF_PASSWORD: required by the username-password login",
        ),
        (["project"], {}, "SOFTPHONE_RELAY_REDIS_URL"),
    ],
)
def test_project_with_bad_configuration_fails_naming_the_setting(
    tmp_path: Path, args: list[str], env: dict[str, str], named: str
) -> None:
    """``project`` refuses to start without what it needs, in one line."""
    result = run_cli(None, tmp_path, *args, env=clean_env(**env))
    assert result.returncode == 2
    assert named in result.stderr and len(result.stderr.strip().splitlines()) == 1


async def test_up_dials_through_the_cli_and_the_api(
    up: tuple[subprocess.Popen[str], dict[str, str]], tmp_path: Path
) -> None:
    """``call`` and a POST to the printed API both reach the agent's socket as start_call."""
    _, info = up
    async with connect(info["socket"], subprotocols=["softphone.v1"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "hello", "token": info["token"]}))
        await ws.recv()
        calling = await asyncio.create_subprocess_exec(
            *CLI,
            "call",
            "dev-agent",
            "+1 888 397 3342",
            cwd=tmp_path,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert (frame["name"], frame["data"]["dialTo"]) == ("start_call", "+18883973342")
        await ws.send(json.dumps({"type": "ack", "id": frame["id"]}))
        out, _ = await asyncio.wait_for(calling.communicate(), 10)
        assert calling.returncode == 0
        assert json.loads(out)["state"] == "acked"

        def post() -> tuple[int, dict[str, object]]:
            import requests

            with requests.Session() as http:
                http.trust_env = False
                answer = http.post(
                    f"{info['api']}/v1/agents/dev-agent/calls",
                    json={"dialTo": "+18449401117"},
                    headers={"Authorization": f"Bearer {info['api_key']}"},
                    timeout=5,
                )
            return answer.status_code, answer.json()

        status, body = await asyncio.to_thread(post)
        assert status == 202 and body["state"] in ("accepted", "queued")
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert frame["data"]["dialTo"] == "+18449401117"


def test_call_for_an_unknown_agent_fails_in_one_line(
    up: tuple[subprocess.Popen[str], dict[str, str]], tmp_path: Path
) -> None:
    """An agent that never connected is named, with a non-zero exit."""
    result = run_cli(None, tmp_path, "call", "nobody", "+18883973342")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "softphone-relay: error: no agent 'nobody' has opened a softphone session"
    )


def test_an_unreachable_cluster_is_named_in_one_line(tmp_path: Path) -> None:
    """A ``redis+cluster://`` URL no node answers: one line saying it is the Redis Cluster,
    not a traceback."""
    result = run_cli("redis+cluster://127.0.0.1:1", tmp_path, "status")
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip()
    assert line.startswith("softphone-relay: error: the event log (Redis Cluster):"), line
    assert "\n" not in line


def test_up_keeps_its_data_directory_and_secrets_to_its_owner(
    up: tuple[subprocess.Popen[str], dict[str, str]], tmp_path: Path
) -> None:
    """The data directory and the embedded server's folder (its AOF files hold callers'
    numbers) are 0700; the secrets, the server's URL and its password file are 0600."""
    data = tmp_path / "data"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "redis").stat().st_mode) == 0o700
    for name in ("dev-secret", "dev-api-key", "redis-password", "redis-url", "redis/auth.conf"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name


def test_up_s_embedded_server_wants_its_password(
    up: tuple[subprocess.Popen[str], dict[str, str]],
) -> None:
    """Another local user who finds the port gets NOAUTH; the printed URL carries the
    password (and is kept in a 0600 file for the other commands)."""
    _, info = up
    url = info["redis"]
    assert url.startswith("redis://:") and "@127.0.0.1:" in url
    anonymous = redis.Redis.from_url("redis://" + url.split("@", 1)[1], socket_timeout=2)
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    anonymous.close()
    owner = redis.Redis.from_url(url, socket_timeout=2)
    assert owner.ping()
    owner.close()


def test_up_hands_out_demo_tokens_to_localhost_only(
    up: tuple[subprocess.Popen[str], dict[str, str]],
) -> None:
    """``/demo/token`` with ``Host: 127.0.0.1:PORT`` answers a token; with another site's
    name (a page that had its name resolve to 127.0.0.1) a 403."""
    _, info = up
    base = info["socket"].replace("ws://", "http://").removesuffix("/v1/socket")
    port = base.rsplit(":", 1)[1]
    request = urllib.request.Request(base + "/demo/token", headers={"Host": f"localhost:{port}"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 200 and answer.read().count(b".") == 2
    rebound = urllib.request.Request(base + "/demo/token", headers={"Host": f"evil.test:{port}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(rebound, timeout=5)
    refused.value.close()
    assert refused.value.code == 403


def test_up_with_a_configured_secret_hands_out_no_demo_token(tmp_path: Path) -> None:
    """With ``SOFTPHONE_RELAY_SECRET`` set (a real deployment's key), the demo page and its
    unauthenticated tokens are not served."""
    process = subprocess.Popen(
        [*CLI, "up", "--port", "0", "--api-port", "0"],
        cwd=tmp_path,
        env=clean_env(SOFTPHONE_RELAY_SECRET=SECRET),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    try:
        text = ""
        for line in process.stdout:
            text += line
            if line.startswith("Ctrl-C"):
                break
        base = re.search(r"(ws://\S+)/v1/socket", text).group(1).replace("ws://", "http://")  # type: ignore[union-attr]
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(base + "/demo/token", timeout=5)
        missing.value.close()
        assert missing.value.code == 404
    finally:
        process.terminate()
        process.wait(timeout=20)
        process.stdout.close()


def test_export_writes_a_file_only_its_owner_can_read(tmp_path: Path, redis_url: str) -> None:
    """The log holds callers' numbers: ``export --out`` makes the file 0600, also when a file
    of a wider mode was there."""
    out = tmp_path / "log.jsonl"
    out.write_text("")
    out.chmod(0o644)
    result = run_cli(redis_url, tmp_path, "export", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
