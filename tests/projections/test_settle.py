"""The settle policy, without Redis: outcomes in, acks, dead letters, pauses out."""

from __future__ import annotations

from projections.outcomes import Done, LogEntry, Outcome, Pause, Reject, Retry, Wait
from projections.settle import retry_delay_ms, settle


def entry(entry_id: str, deliveries: int = 1) -> LogEntry:
    """An entry of shard 0 delivered ``deliveries`` times."""
    return LogEntry("sp:events:{0}", entry_id, b"{}", None, deliveries)


def test_done_is_acked() -> None:
    """A done entry is acked, nothing else happens to it."""
    settled = settle([entry("1-0")], {"1-0": Done()}, max_deliveries=5)
    assert settled.acks == ["1-0"] and not settled.dead_letters and not settled.paused


def test_a_rejected_entry_is_dead_lettered_with_its_error_then_acked() -> None:
    """Reject: the dead letter carries the projection's error, and the entry is acked."""
    one = entry("1-0")
    settled = settle([one], {"1-0": Reject("bad field")}, max_deliveries=5)
    assert settled.dead_letters == [(one, "bad field")] and settled.acks == ["1-0"]


def test_a_retried_entry_stays_pending() -> None:
    """Retry under the delivery limit: neither acked nor dead-lettered."""
    settled = settle([entry("1-0", 2)], {"1-0": Retry("locked")}, max_deliveries=5)
    assert settled.acks == [] and settled.dead_letters == [] and settled.counts["retry"] == 1


def test_a_retry_at_the_delivery_limit_becomes_a_dead_letter() -> None:
    """The last allowed delivery's retry is given up, saying how many there were."""
    one = entry("1-0", 5)
    settled = settle([one], {"1-0": Retry("locked")}, max_deliveries=5)
    assert settled.dead_letters == [(one, "gave up after 5 deliveries: locked")]
    assert settled.counts == {"reject": 1}


def test_an_entry_without_an_outcome_is_retried() -> None:
    """A projection that forgot an entry does not lose it."""
    settled = settle([entry("1-0")], {}, max_deliveries=5)
    assert settled.acks == [] and settled.counts == {"retry": 1}


def test_a_pause_is_never_given_up_and_waits_the_longest_asked() -> None:
    """Paused entries stay pending whatever their deliveries; the reader waits the longest."""
    first, second = entry("1-0", 9), entry("2-0", 9)
    outcomes: dict[str, Outcome] = {"1-0": Pause("down", 2.0), "2-0": Pause("limit", 60.0)}
    settled = settle([first, second], outcomes, max_deliveries=5)
    assert settled.paused == [first, second] and settled.dead_letters == []
    assert settled.pause_seconds == 60.0 and settled.pause_error == "down"


def test_a_wait_is_never_given_up_and_pauses_nothing() -> None:
    """Wait at the delivery limit: taken back (no attempt), no dead letter, no pause."""
    waiting = entry("1-0", 5)
    settled = settle([waiting], {"1-0": Wait("may still commit", 600.0)}, max_deliveries=5)
    assert settled.waiting == [waiting] and settled.dead_letters == [] and settled.acks == []
    assert settled.paused == [] and settled.pause_seconds == 0.0
    assert settled.counts["wait"] == 1


def test_a_batch_of_mixed_outcomes_is_counted_by_kind() -> None:
    """The counts feed the per-outcome metric."""
    entries = [entry(f"{i}-0") for i in range(4)]
    outcomes: dict[str, Outcome] = {
        "0-0": Done(),
        "1-0": Retry("x"),
        "2-0": Reject("y"),
        "3-0": Pause("z", 1.0),
    }
    settled = settle(entries, outcomes, max_deliveries=5)
    assert settled.counts == {"done": 1, "retry": 1, "reject": 1, "pause": 1}
    assert settled.acks == ["0-0", "2-0"]


def test_retry_delays_grow_exponentially_up_to_a_cap() -> None:
    """Each delivery doubles the wait, capped below claim_idle, with jitter within half."""
    ceilings = [100, 200, 400, 800, 1600, 3200, 5000, 5000]
    for deliveries, ceiling in enumerate(ceilings, start=1):
        for entry_id in (b"1-0", b"2-0", b"1732450000000-7"):
            delay = retry_delay_ms(entry_id, deliveries, retry_after_ms=100, claim_idle_ms=10_000)
            assert ceiling / 2 <= delay <= ceiling


def test_retry_jitter_spreads_entries_and_is_stable() -> None:
    """Different entries get different delays; one entry always the same."""

    def delay(entry_id: str | bytes) -> float:
        return retry_delay_ms(entry_id, 2, retry_after_ms=1000, claim_idle_ms=30_000)

    assert len({delay(f"{i}-0") for i in range(20)}) > 10
    assert delay("5-0") == delay(b"5-0")
