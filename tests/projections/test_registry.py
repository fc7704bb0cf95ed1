"""The group registry: one list, each group buildable, claim times by latency."""

from __future__ import annotations

import importlib

from projections import registry
from projections.settings import ProjectionSettings
from softphone_relay.cli.workers import worker_settings
from softphone_relay.settings import Settings


def test_every_group_names_a_module_with_a_build_function() -> None:
    """One module and one line per projection: the line points at the module's build()."""
    assert len(set(registry.NAMES)) == len(registry.GROUPS)
    for group in registry.GROUPS:
        assert callable(importlib.import_module(group.module).build), group.name


def test_requests_and_presence_are_taken_over_from_a_dead_worker_within_a_second() -> None:
    """A click-to-dial must not wait out SOFTPHONE_RELAY_CLAIM_IDLE (the command's TTL)."""
    settings = Settings(projections=ProjectionSettings(claim_idle=30.0, batch_wait=0.5))
    for name in ("dispatch", "presence"):
        chosen = worker_settings(settings, registry.group(name))
        assert (chosen.claim_idle_ms, chosen.batch_wait_ms) == (1000, 0)


def test_calls_follow_the_claim_idle_setting_and_wait_for_batches() -> None:
    """Salesforce writes are slow: a live calls worker keeps its entries that long."""
    settings = Settings(projections=ProjectionSettings(claim_idle=45.0, batch_wait=0.5))
    chosen = worker_settings(settings, registry.group("calls"))
    assert (chosen.claim_idle_ms, chosen.batch_wait_ms) == (45_000, 500)


def test_a_calls_batch_holds_two_collections_worth_of_calls() -> None:
    """About five events a call: 2,000 entries fill two 200-record Salesforce requests; the
    latency-critical groups keep small batches."""
    settings = Settings()
    assert worker_settings(settings, registry.group("calls")).batch_size == 2_000
    assert worker_settings(settings, registry.group("dispatch")).batch_size == 200


def test_the_archive_runs_by_default_only_where_an_archive_is_configured() -> None:
    """``project`` with no --group runs every group it can: the archive needs its URL."""
    assert "archive" not in registry.default_groups(ProjectionSettings())
    configured = ProjectionSettings(archive_url="file:///var/lib/softphone-relay/archive")
    assert registry.default_groups(configured) == [n for n in registry.NAMES if n != "voicecalls"]


def test_voice_calls_run_by_default_only_where_the_telephony_api_is_configured() -> None:
    """Salesforce Voice is opt-in: an Open CTI deployment never starts its group."""
    assert "voicecalls" not in registry.default_groups(ProjectionSettings())
    voice = ProjectionSettings(telephony_url="https://acme.my.salesforce-scrt.com/telephony/v1")
    assert "voicecalls" in registry.default_groups(voice)


def test_the_archive_has_no_dead_letters() -> None:
    """It keeps every entry as it is: dlq and status list only the worker-run groups."""
    assert "archive" not in registry.DEAD_LETTER_GROUPS
    assert set(registry.DEAD_LETTER_GROUPS) == {"calls", "dispatch", "presence", "voicecalls"}
