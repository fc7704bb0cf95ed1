"""What users run is what they install: the built wheel in a fresh virtual environment, and the
README's start command alone on a fresh copy of the repository. Each is started from a
directory that holds nothing of ours, probed over HTTP, and stopped with SIGTERM with nothing
left running.

Slow (each installs the dependencies into a new environment, from pip's cache when warm).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import urllib.request
import zipfile
from importlib import resources
from pathlib import Path

import pytest
import redis

from tests.helpers import clean_env

ROOT = Path(__file__).resolve().parents[1]
READY = "Ctrl-C stops everything this started."
pytestmark = pytest.mark.timeout(900)


def get(url: str) -> tuple[int, bytes]:
    """GET ``url``; status and body."""
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


def run_until_ready(command: list[str], cwd: Path) -> tuple[subprocess.Popen[str], str]:
    """Start ``up`` (directly or through a script) and read its welcome."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith(READY):
            return process, "".join(lines)
    process.wait(timeout=30)
    raise AssertionError("up never became ready:\n" + "".join(lines))


def stop_and_check_nothing_is_left(process: subprocess.Popen[str], welcome: str) -> None:
    """SIGTERM: exit 0, and the embedded server is gone too."""
    url = next(w for w in welcome.split() if w.startswith("redis://"))
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    assert process.stdout is not None
    process.stdout.close()
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    with pytest.raises(redis.ConnectionError):
        client.ping()
    client.close()


def relay_base(welcome: str) -> str:
    """``http://HOST:PORT`` of the relay, from the welcome's healthz line."""
    healthz = next(w for w in welcome.split() if w.endswith("/healthz"))
    return healthz.removesuffix("/healthz")


OUR_PACKAGES = ["clientjs", "projections", "relay", "softphone_relay"]
"""The design card's top level, installed as four import packages by one distribution."""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The built wheel, installed (at the pinned versions) in a new venv: (wheel, venv)."""
    tmp_path = tmp_path_factory.mktemp("wheel")
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(ROOT)],
        check=True,
        env=clean_env(),
        timeout=300,
    )
    [wheel] = dist.glob("softphone_relay-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-c",
            str(ROOT / "constraints.txt"),
            str(wheel),
        ],
        check=True,
        env=clean_env(),
        timeout=600,
    )
    return wheel, venv


def test_the_wheel_holds_exactly_the_four_packages_of_the_design_card(
    installed: tuple[Path, Path],
) -> None:
    """No tests/, bench/ or scripts/ in site-packages, where they would shadow others'."""
    wheel, _ = installed
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
    assert sorted(t for t in tops if not t.endswith(".dist-info")) == OUR_PACKAGES


def test_the_wheel_ships_the_wrapper_library_and_nothing_of_its_tooling(
    installed: tuple[Path, Path],
) -> None:
    """clientjs/ in the wheel: the library's files, not its tests, npm packages or tsconfig."""
    wheel, _ = installed
    with zipfile.ZipFile(wheel) as archive:
        shipped = sorted(
            n.removeprefix("clientjs/") for n in archive.namelist() if n.startswith("clientjs/")
        )
    assert shipped == [
        "__init__.py",
        "connector.js",
        "contract.schema.json",
        "demo.html",
        "softphone.d.ts",
        "softphone.js",
        "softphone.mjs",
    ]


def test_no_other_installed_distribution_provides_our_packages(
    installed: tuple[Path, Path],
) -> None:
    """``relay`` and ``projections`` are names other projects on PyPI use too: in the venv each
    of ours is provided by our distribution alone, and imports from there."""
    _, venv = installed
    script = (
        "import importlib, importlib.metadata as m, json, sys\n"
        "owners = m.packages_distributions()\n"
        f"names = {OUR_PACKAGES!r}\n"
        "print(json.dumps({n: [sorted(owners.get(n, [])),"
        " importlib.import_module(n).__file__.startswith(sys.prefix)] for n in names}))"
    )
    found = subprocess.run(
        [str(venv / "bin" / "python"), "-c", script],
        cwd=venv,
        capture_output=True,
        text=True,
        check=True,
        env=clean_env(),
        timeout=60,
    )
    owners = json.loads(found.stdout)
    assert owners == {name: [["softphone-relay"], True] for name in OUR_PACKAGES}


def test_the_wheel_installed_in_a_fresh_venv_runs_up_from_an_empty_directory(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    """Built wheel → new venv → ``up`` in an empty directory serves health, library and demo."""
    _, venv = installed
    empty = tmp_path / "empty"
    empty.mkdir()
    command = [str(venv / "bin" / "softphone-relay"), "up", "--port", "0", "--api-port", "0"]
    process, welcome = run_until_ready(command, empty)
    try:
        base = relay_base(welcome)
        assert get(base + "/healthz") == (200, b"ok\n")
        shipped = resources.files("clientjs")
        assert get(base + "/softphone.js") == (200, shipped.joinpath("softphone.js").read_bytes())
        status, connector = get(base + "/connector.js")
        assert status == 200 and b"scv-connector-base 3.6.2, unmodified" in connector
        status, page = get(base + "/demo")
        assert status == 200 and page == shipped.joinpath("demo.html").read_bytes()
    finally:
        stop_and_check_nothing_is_left(process, welcome)
    assert sorted(p.name for p in empty.iterdir()) == ["data"], "up writes only its data dir"


def tracked_files() -> list[str]:
    """The repository's files as a fresh clone has them (tracked, or new and not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    )
    return [name for name in listed.stdout.decode().split("\0") if name and (ROOT / name).exists()]


def test_the_readme_start_command_alone_brings_the_system_up_in_a_fresh_clone(
    tmp_path: Path,
) -> None:
    """``./scripts/up.sh`` in a copy with no .venv sets up what it needs and starts ``up``."""
    clone = tmp_path / "clone"
    for name in tracked_files():
        target = clone / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    assert not (clone / ".venv").exists()
    process, welcome = run_until_ready(["./scripts/up.sh", "--port", "0", "--api-port", "0"], clone)
    try:
        assert get(relay_base(welcome) + "/healthz") == (200, b"ok\n")
    finally:
        stop_and_check_nothing_is_left(process, welcome)
    pip_list = subprocess.run(
        [str(clone / ".venv" / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "pytest" not in pip_list, "the start command installs no test tools"
