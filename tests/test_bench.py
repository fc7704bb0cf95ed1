"""Every benchmark script runs to the end on a tiny load and prints its figures (the figures
themselves are read by people, never asserted: speed is measured, not tested)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"

RUNS = {
    "archive.py": (
        ["--calls", "100", "--shards", "2", "--store", "s3"],
        [
            "RAM per hot event",
            "bytes per event",
            "from the archive (0 entries left in Redis)",
            "archive, varied calls",
            "personal fields sealed:",
        ],
    ),
    "calls.py": (
        ["--calls", "200", "--rate", "1000", "--drop-every", "1"],
        ["0 calls with more than one", "per 1,000 calls", "lag callEnded"],
    ),
    "calls.py --call-key": (
        [
            "--calls",
            "100",
            "--rate",
            "1000",
            "--batch",
            "50",
            "--drop-every",
            "7",
            "--late-every",
            "3",
            "--late-seconds",
            "1",
            "--client-timeout",
            "0.5",
            "--call-key",
            "--sharing",
        ],
        ["0 calls with more than one", "key field on, sharing on"],
    ),
    "calls.py --voice": (
        ["--calls", "30", "--rate", "200", "--voice"],
        ["voice: 30 VoiceCalls, 0 calls with more than one", "VoiceCall created: p50"],
    ),
    "dial.py": (["--requests", "3", "--background-rate", "20"], ["click-to-dials"]),
    "ingest.py": (
        [
            "--clients",
            "2",
            "--seconds",
            "1",
            "--paced-rate",
            "20",
            "--cluster",
            "--dedupe-days",
            "1",
            "--sealing",
        ],
        ["relay/raw", "three-primary cluster", "sealing:", "relay memory at the end"],
    ),
    "erase.py": (["--conversations", "20", "--others", "30"], ["erase: a caller with 20 conv"]),
    "replay.py": (["--calls", "100"], ["the stand-in holds 100 Tasks"]),
    "sockets.py": (
        ["--sessions", "10", "--concurrency", "5", "--idle-seconds", "0.5"],
        ["relay: refused 0, opened 10", "relay/bare"],
    ),
}


@pytest.mark.parametrize("script", sorted(RUNS))
def test_the_benchmark_runs_and_prints_its_figures(script: str, tmp_path: Path) -> None:
    """``bench/SCRIPT`` on a tiny load exits 0 and prints what its docstring promises."""
    arguments, expected = RUNS[script]
    done = subprocess.run(
        [sys.executable, str(BENCH / script.split()[0]), *arguments],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for line in expected:
        assert line in done.stdout, done.stdout
