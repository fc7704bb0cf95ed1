"""``erase`` and ``subject`` from the installed command line, on a log sealed by a relay."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import redis.asyncio as aioredis

from relay.privacy.keys import new_data_key
from relay.server.server import Relay
from tests.helpers import (
    AgentFactory,
    RelayFactory,
    call_data,
    clean_env,
    conversation_ids,
    run_cli,
)
from tests.relay.privacy.test_sealed_log import ANA, BEN, DATA_KEYS, NOTES

ENV = clean_env() | {"SOFTPHONE_RELAY_DATA_KEY": DATA_KEYS[0]}


async def two_callers(relay: Relay, open_agent: AgentFactory) -> dict[str, str]:
    """Ana and Ben call once each, with notes: their conversation ids."""
    agent = await open_agent(relay)
    conversations = dict(zip(("ana", "ben"), conversation_ids(2), strict=True))
    for who, number in (("ana", ANA), ("ben", BEN)):
        await agent.event("incomingCall", call_data(conversations[who], callerANI=number))
        await agent.next("ack")
        await agent.event(
            "callNotesSubmitted", call_data(conversations[who], notes=f"{who}: {NOTES}")
        )
        await agent.next("ack")
    return conversations


def exported(redis_url: str, tmp_path: Path) -> list[dict[str, object]]:
    result = run_cli(redis_url, tmp_path, "export", env=ENV)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


async def test_erase_a_caller_then_export_shows_their_fields_erased(
    start_relay: RelayFactory, open_agent: AgentFactory, redis_url: str, tmp_path: Path
) -> None:
    relay = await start_relay(data_keys=DATA_KEYS)
    conversations = await two_callers(relay, open_agent)
    dry = run_cli(
        redis_url,
        tmp_path,
        "erase",
        "--caller",
        "020 7946 0958",
        "--region",
        "GB",
        "--dry-run",
        "--json",
        env=ENV,
    )
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout) | {"seq": None} == {
        "what": "caller",
        "conversations": [conversations["ana"]],
        "keys": 1,
        "dry_run": True,
        "seq": None,
        "events": {"redis": 2, "archive": 0, "dead_letters": 0},
    }
    done = run_cli(
        redis_url, tmp_path, "erase", "--caller", ANA, "--by", "dpo@acme.example", env=ENV
    )
    assert done.returncode == 0, done.stderr
    assert (
        "erased caller: 1 conversation(s), 1 data key(s), the personal fields of events "
        "(2 in redis, 0 in archive, 0 in dead_letters)" in done.stdout
    )
    events = {
        e["data"].get("notes", e["data"].get("callerANI")): e for e in exported(redis_url, tmp_path)
    }
    assert "[erased]" in events and f"ben: {NOTES}" in events and BEN in events
    ana = [e for e in exported(redis_url, tmp_path) if e["conversationId"] == conversations["ana"]]
    assert [e["data"].get("callerANI", e["data"].get("notes")) for e in ana] == ["[erased]"] * 2
    (logged,) = [e for e in exported(redis_url, tmp_path) if e["name"] == "personalDataErased"]
    assert logged["agentId"] == "operator:dpo@acme.example"


async def test_subject_writes_every_event_about_a_caller_in_clear(
    start_relay: RelayFactory, open_agent: AgentFactory, redis_url: str, tmp_path: Path
) -> None:
    relay = await start_relay(data_keys=DATA_KEYS)
    conversations = await two_callers(relay, open_agent)
    out = tmp_path / "ben.jsonl"
    result = run_cli(redis_url, tmp_path, "subject", "--caller", BEN, "--out", str(out), env=ENV)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert {e["conversationId"] for e in events} == {conversations["ben"]}
    assert [e["name"] for e in events] == ["incomingCall", "callNotesSubmitted"]
    assert events[0]["data"]["callerANI"] == BEN and events[1]["data"]["notes"] == f"ben: {NOTES}"
    assert out.stat().st_mode & 0o777 == 0o600


def test_erase_without_a_data_key_says_so(redis_url: str, tmp_path: Path) -> None:
    result = run_cli(redis_url, tmp_path, "erase", "--conversation", "c1")
    assert result.returncode == 2
    assert "SOFTPHONE_RELAY_DATA_KEY" in result.stderr and "not sealed" in result.stderr


def test_erase_needs_one_of_caller_and_conversation(redis_url: str, tmp_path: Path) -> None:
    both = run_cli(redis_url, tmp_path, "erase", "--caller", ANA, "--conversation", "c1", env=ENV)
    assert both.returncode == 2 and "--caller NUMBER or --conversation ID" in both.stderr


async def test_rewrap_moves_every_key_to_the_new_key_so_the_old_one_can_go(
    start_relay: RelayFactory, open_agent: AgentFactory, redis_url: str, tmp_path: Path
) -> None:
    """Sealed under the old key; the new key put first, the old one after; rewrap; then
    with the new key alone everything still opens."""
    relay = await start_relay(data_keys=DATA_KEYS)
    await two_callers(relay, open_agent)
    new = base64.b64encode(new_data_key()).decode()
    both = clean_env() | {"SOFTPHONE_RELAY_DATA_KEY": f"{new},{DATA_KEYS[0]}"}
    dry = run_cli(redis_url, tmp_path, "rewrap", "--dry-run", "--json", env=both)
    assert dry.returncode == 0, dry.stderr
    counted = json.loads(dry.stdout)
    assert counted["keys"] == counted["rewrapped"] == 3  # two conversations, the index key
    done = run_cli(redis_url, tmp_path, "rewrap", env=both)
    assert done.returncode == 0 and "re-wrapped 3 of 3 wrapped keys" in done.stdout
    again = json.loads(run_cli(redis_url, tmp_path, "rewrap", "--json", env=both).stdout)
    assert again["rewrapped"] == 0 and list(again["before"]) == [again["current"]]
    alone = clean_env() | {"SOFTPHONE_RELAY_DATA_KEY": new}
    result = run_cli(redis_url, tmp_path, "export", env=alone)
    assert result.returncode == 0, result.stderr
    assert ANA in result.stdout and f"ben: {NOTES}" in result.stdout


async def test_reseal_seals_a_log_written_before_the_data_key_and_erase_then_reaches_it(
    start_relay: RelayFactory,
    open_agent: AgentFactory,
    redis_client: aioredis.Redis,
    redis_url: str,
    tmp_path: Path,
) -> None:
    """A relay without the data key stored the calls in clear; ``reseal`` seals them (the
    export still shows them), and erasing Ana afterwards reaches her call."""
    relay = await start_relay()
    conversations = await two_callers(relay, open_agent)
    result = run_cli(redis_url, tmp_path, "reseal", "--json", env=ENV)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [s["sealed"] for s in report["redis"]["streams"]] == [4]
    assert report["archive"] is None
    raw = await redis_client.xrange("sp:events:{0}")
    assert not any(ANA.encode() in f[b"e"] or b"Visa" in f[b"e"] for _, f in raw)
    notes = {e["conversationId"]: e["data"].get("notes") for e in exported(redis_url, tmp_path)}
    assert notes[conversations["ana"]] == f"ana: {NOTES}"
    erased = run_cli(redis_url, tmp_path, "erase", "--caller", ANA, "--json", env=ENV)
    assert json.loads(erased.stdout)["conversations"] == [conversations["ana"]]
    again = run_cli(redis_url, tmp_path, "reseal", env=ENV)
    assert "sealed 0 of 5 entries" in again.stdout  # the 4, and the erasure's own event
