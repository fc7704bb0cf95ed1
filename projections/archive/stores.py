"""Where the archive lives: a directory (``file://``) or an S3-compatible bucket (``s3://``).

Both keep whole objects under names (``segments.py``) and answer :class:`ArchiveStore`:

- ``file:///var/lib/softphone-relay/archive`` (or ``file:./data/archive``, relative to the
  working directory): each object is written to a temporary file beside its place, fsynced,
  renamed into place and its directory fsynced, so a put that returned survives a crash and a
  crash mid-put leaves only a ``.tmp-`` file that no listing shows.
- ``s3://bucket/prefix``: through ``obstore`` (Rust's ``object_store``, one wheel, no other
  dependency, async): a PUT is durable and visible whole once S3 answers it. Credentials,
  region and endpoint come from the usual variables (``AWS_ACCESS_KEY_ID``,
  ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, ``AWS_ENDPOINT_URL`` for an S3-compatible
  server; an ``http://`` endpoint is allowed as given). The bucket must allow ``PutObject``,
  ``GetObject``, ``ListBucket`` and ``DeleteObject`` under the prefix.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Final, Protocol
from urllib.parse import urlsplit

import obstore
import obstore.exceptions
from obstore.store import S3Store

from projections.archive.segments import ArchiveError
from relay.errors import ConfigError

TEMPORARY: Final = ".tmp-"
"""Files a put has not finished (``file://``): never listed, never read."""
_STORE_ERRORS: Final = (OSError, obstore.exceptions.BaseError)


class ArchiveUnavailable(ArchiveError):
    """The archive's directory or bucket refused or did not answer."""


class ArchiveStore(Protocol):
    """Whole objects by name."""

    description: str

    async def put(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name`` durably (replacing what was there)."""

    async def get(self, name: str) -> bytes | None:
        """The object called ``name``; None if there is none."""

    async def list(self, prefix: str) -> list[str]:
        """Every name that starts with ``prefix``, sorted."""

    async def delete(self, name: str) -> None:
        """Remove ``name`` if it is there."""

    async def remove_unfinished(self, prefix: str) -> int:
        """Remove what puts under ``prefix`` left unfinished (a killed writer); how many. Only
        the holder of the prefix's shard may call it: another writer's put would be cut."""


class FileStore:
    """Objects as files under a directory, written durably."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = f"file://{root}"

    async def put(self, name: str, data: bytes) -> None:
        """Write a temporary file, fsync it, rename it into place, fsync the directory."""
        async with _answering(self.description):
            await asyncio.to_thread(self._put, self._path(name), data)

    async def get(self, name: str) -> bytes | None:
        """The file's bytes; None if there is none."""
        async with _answering(self.description):
            try:
                return await asyncio.to_thread(self._path(name).read_bytes)
            except FileNotFoundError:
                return None

    async def list(self, prefix: str) -> list[str]:
        """Every finished file whose name starts with ``prefix``."""
        async with _answering(self.description):
            return await asyncio.to_thread(self._list, prefix)

    async def delete(self, name: str) -> None:
        """Remove the file if it is there."""
        async with _answering(self.description):
            await asyncio.to_thread(self._path(name).unlink, missing_ok=True)

    async def remove_unfinished(self, prefix: str) -> int:
        """Remove the temporary files of puts that never finished under ``prefix``."""
        async with _answering(self.description):
            return await asyncio.to_thread(self._remove_unfinished, prefix)

    def _path(self, name: str) -> Path:
        if name.startswith("/") or ".." in name.split("/"):
            raise ValueError(f"not an archive name: {name!r}")
        return self.root / name

    @staticmethod
    def _put(path: Path, data: bytes) -> None:
        # Segments hold callers' numbers: folders and files are their owner's alone.
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = path.with_name(f"{TEMPORARY}{secrets.token_hex(4)}-{path.name}")
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            temporary.replace(path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def _files(self, prefix: str) -> builtins.list[Path]:
        """Every file below ``prefix``'s folder; an OSError for any folder it cannot read (a
        listing that skipped one would look like an archive with less in it)."""
        directory, _, _ = prefix.rpartition("/")
        base = self.root / directory if directory else self.root
        if not base.exists():
            return []

        def refuse(error: OSError) -> None:
            raise error

        return [
            Path(folder) / name
            for folder, _, names in os.walk(base, onerror=refuse)
            for name in names
        ]

    def _list(self, prefix: str) -> builtins.list[str]:
        names = (
            path.relative_to(self.root).as_posix()
            for path in self._files(prefix)
            if not path.name.startswith(TEMPORARY)
        )
        return sorted(name for name in names if name.startswith(prefix))

    def _remove_unfinished(self, prefix: str) -> int:
        unfinished = [path for path in self._files(prefix) if path.name.startswith(TEMPORARY)]
        for path in unfinished:
            path.unlink(missing_ok=True)
        return len(unfinished)


class BucketStore:
    """Objects in an S3-compatible bucket, through obstore."""

    def __init__(self, url: str) -> None:
        endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT")
        self._store = S3Store.from_url(
            url,
            client_options={
                "allow_http": bool(endpoint and endpoint.startswith("http://")),
                "connect_timeout": timedelta(seconds=5),
                "timeout": timedelta(seconds=60),
            },
            # A few quick retries, then the archiver's own backoff (and a reader's error).
            retry_config={"max_retries": 3, "retry_timeout": timedelta(seconds=30)},
        )
        self.description = url

    async def put(self, name: str, data: bytes) -> None:
        """One PUT: the object is there whole once S3 answers."""
        async with _answering(self.description):
            await obstore.put_async(self._store, name, data)

    async def get(self, name: str) -> bytes | None:
        """The object's bytes; None if there is none."""
        async with _answering(self.description):
            try:
                result = await obstore.get_async(self._store, name)
            except FileNotFoundError:
                return None
            return bytes(await result.bytes_async())

    async def list(self, prefix: str) -> list[str]:
        """Every object name under ``prefix`` (listed page by page)."""
        names: list[str] = []
        async with _answering(self.description):
            async for page in obstore.list(self._store, prefix=prefix.rstrip("/") or None):
                names.extend(str(meta["path"]) for meta in page)
        return sorted(name for name in names if name.startswith(prefix))

    async def delete(self, name: str) -> None:
        """Remove the object (S3 answers a delete of a missing object with success)."""
        async with _answering(self.description):
            await obstore.delete_async(self._store, name)

    async def remove_unfinished(self, prefix: str) -> int:
        """Nothing to remove: an S3 PUT stores the whole object or none of it."""
        return 0


@contextlib.asynccontextmanager
async def _answering(description: str) -> AsyncIterator[None]:
    """The store's own failures as :class:`ArchiveUnavailable`, naming the archive."""
    try:
        yield
    except _STORE_ERRORS as error:
        raise ArchiveUnavailable(f"the archive {description}: {str(error)[:300]}") from error


def open_store(url: str, *, setting: str = "SOFTPHONE_RELAY_ARCHIVE_URL") -> ArchiveStore:
    """The store a URL names; ConfigError naming ``setting`` for anything else."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        path = parts.path if not parts.netloc else f"/{parts.netloc}{parts.path}"
        if not path:
            raise ConfigError(setting, f"a file:// URL needs a directory, got {url!r}")
        return FileStore(Path(path).expanduser().absolute())
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ConfigError(setting, f"an s3:// URL needs a bucket, got {url!r}")
        return BucketStore(url)
    raise ConfigError(
        setting, f"expected file:///path, file:relative/path or s3://bucket/prefix, got {url!r}"
    )
