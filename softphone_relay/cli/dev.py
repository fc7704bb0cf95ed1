"""What ``up`` leaves in its data directory for the other commands, and its sample partner.

``token``, ``send``, ``call`` and ``presence`` find a running ``up`` through the data
directory (``--data-dir``, default ``./data``): its signing secret, its embedded server's URL,
its development API key and its Salesforce stand-in (where ``replay --target standin`` writes).
"""

from __future__ import annotations

import secrets
from pathlib import Path

import msgspec

from relay.settings import Partner

DEV_PARTNER_ID = "215fd887-39be-4935-981f-2670d6afeaa7"
DEV_AGENT_ID = "dev-agent"
DEMO_AGENT_ID = "demo-agent"
DEV_PARTNERS = {
    DEV_PARTNER_ID: Partner(
        disposition=["code1", "code2"],
        businessSegmentId="d6afeaa7-39be-4935-981f-2670215fd887",
        channelOriginId="57053e21-0440-4689-a27a-513d7dceebde",
        dialFrom="+18449401117",
        records="both",
    )
}
DEV_ORIGINS = ("http://localhost:*", "http://127.0.0.1:*")


class DevState:
    """What ``up`` leaves in its data directory so that other commands find it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def keep_private(self) -> None:
        """Create the data directory if need be, readable by its owner only: the log's AOF
        files, the archive and the secrets below it hold callers' numbers and keys."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)

    def secret(self) -> str:
        """The development signing secret, created on first use."""
        path = self.data_dir / "dev-secret"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip()

    def existing_secret(self) -> str | None:
        """The development secret if ``up`` made one."""
        path = self.data_dir / "dev-secret"
        return path.read_text().strip() if path.exists() else None

    def api_key(self) -> str:
        """The development control API key, created on first use."""
        path = self.data_dir / "dev-api-key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text("dev-" + secrets.token_urlsafe(24))
            path.chmod(0o600)
        return path.read_text().strip()

    def redis_password(self) -> str:
        """The embedded server's password, created on first use."""
        path = self.data_dir / "redis-password"
        if not path.exists():
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(24))
            path.chmod(0o600)
        return path.read_text().strip()

    def archive_url(self) -> str:
        """Where ``up`` archives the log: ``archive`` in its data directory."""
        return (self.data_dir / "archive").absolute().as_uri()

    def redis_url(self) -> str | None:
        """The URL of the embedded server of a running ``up``."""
        path = self.data_dir / "redis-url"
        return path.read_text().strip() if path.exists() else None

    def set_redis_url(self, url: str | None) -> None:
        """Record (or, with None, forget) the embedded server's URL."""
        path = self.data_dir / "redis-url"
        if url is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(url)
            path.chmod(0o600)  # it holds the server's password


class StandInAddress(msgspec.Struct, frozen=True):
    """Where ``up``'s Salesforce stand-in listens, a live session on it, and its CA."""

    instance_url: str
    session_id: str
    ca_file: str


def _standin_path(state: DevState) -> Path:
    return state.data_dir / "standin.json"


def record_standin(state: DevState, address: StandInAddress | None) -> None:
    """Record (or, with None, forget) the stand-in of a running ``up``."""
    path = _standin_path(state)
    if address is None:
        path.unlink(missing_ok=True)
        return
    state.data_dir.mkdir(parents=True, exist_ok=True)
    path.write_bytes(msgspec.json.encode(address))
    path.chmod(0o600)


def running_standin(state: DevState) -> StandInAddress | None:
    """The stand-in of a running ``up``, if there is one."""
    path = _standin_path(state)
    return msgspec.json.decode(path.read_bytes(), type=StandInAddress) if path.exists() else None
