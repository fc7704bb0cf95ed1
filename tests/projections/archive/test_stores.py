"""Where the archive lives: a directory written durably, or an S3-protocol bucket."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import pytest

from projections.archive.stores import (
    ArchiveStore,
    ArchiveUnavailable,
    FileStore,
    open_store,
)
from relay.errors import ConfigError

NAME = "v1/shard-0000/2026/11/26/01/1-0_2-0.jsonl.zst"


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArchiveStore:
    if request.param == "file":
        return open_store(f"file://{tmp_path / 'archive'}")
    return open_store(request.getfixturevalue("bucket_url"))


async def test_what_is_put_is_got_back_and_listed_by_prefix(store: ArchiveStore) -> None:
    await store.put(NAME, b"segment")
    await store.put("v1/shard-0001/2026/11/26/01/3-0_4-0.jsonl.zst", b"other shard")
    assert await store.get(NAME) == b"segment"
    assert await store.list("v1/shard-0000/") == [NAME]
    assert len(await store.list("v1/")) == 2


async def test_a_put_replaces_and_a_missing_name_is_none(store: ArchiveStore) -> None:
    await store.put(NAME, b"first")
    await store.put(NAME, b"second")
    assert await store.get(NAME) == b"second"
    assert await store.get("v1/shard-0000/nothing") is None
    assert await store.list("v1/shard-0009/") == []


async def test_delete_removes_and_tolerates_what_is_gone(store: ArchiveStore) -> None:
    await store.put(NAME, b"x")
    await store.delete(NAME)
    await store.delete(NAME)
    assert await store.get(NAME) is None


async def test_an_unfinished_file_put_is_never_listed(tmp_path: Path) -> None:
    """A crash mid-put leaves a temporary file beside the place: no reader sees it."""
    store = FileStore(tmp_path)
    await store.put(NAME, b"whole")
    (tmp_path / NAME).with_name(".tmp-0000-x.jsonl.zst").write_bytes(b"half")
    assert await store.list("v1/") == [NAME]


async def test_a_file_name_cannot_leave_the_archive_directory(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "archive")
    with pytest.raises(ValueError, match="not an archive name"):
        await store.put("../escape", b"x")


def test_a_relative_file_url_is_taken_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("file:data/archive")
    assert isinstance(store, FileStore) and store.root == tmp_path / "data" / "archive"


@pytest.mark.parametrize("url", ["ftp://host/dir", "s3://", "file://", "archive"])
def test_an_unknown_archive_url_is_refused_naming_the_setting(url: str) -> None:
    with pytest.raises(ConfigError, match="SOFTPHONE_RELAY_ARCHIVE_URL"):
        open_store(url)


async def test_a_bucket_that_does_not_answer_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No S3 server at the endpoint: ArchiveUnavailable names the archive."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    store = open_store("s3://nowhere/archive")
    with pytest.raises(ArchiveUnavailable, match="s3://nowhere/archive"):
        await store.list("v1/")


async def test_a_directory_that_cannot_be_written_is_one_clear_error(tmp_path: Path) -> None:
    """The archive path is a file: ArchiveUnavailable names the archive."""
    (tmp_path / "archive").write_text("not a directory")
    store = FileStore(tmp_path / "archive")
    with pytest.raises(ArchiveUnavailable, match="archive"):
        await store.put(NAME, b"x")


async def test_a_directory_archive_keeps_its_segments_to_its_owner(tmp_path: Path) -> None:
    """Segments hold callers' numbers: their files are 0600 and the folders made for them
    0700."""
    store = FileStore(tmp_path / "archive")
    await store.put("v1/shard-0000/2026/12/03/08/a_b.jsonl.zst", b"segment")
    written = tmp_path / "archive" / "v1/shard-0000/2026/12/03/08/a_b.jsonl.zst"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert stat.S_IMODE(written.parent.stat().st_mode) == 0o700
