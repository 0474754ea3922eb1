"""Byte storage under the store: the one small interface the store layout sits on.

Keys are ``/``-separated relative names (``reflectivity/20261127T214000Z-ab12cd34.tif``).
:class:`LocalStorage` keeps them in a folder; an S3 implementation provides the
same operations. Keys never come from clients: the store builds them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol


class StorageError(RuntimeError):
    """The store could not be reached or refused an operation."""


class KeyNotFound(StorageError, FileNotFoundError):
    pass


class StoreUnreachable(StorageError):
    """The store did not answer (network, timeout): worth retrying later."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: float  # POSIX seconds


class Storage(Protocol):
    url: str

    def read_bytes(self, key: str) -> bytes: ...

    def read_versioned(self, key: str) -> tuple[bytes, str]:
        """The bytes and a version token for :meth:`write_if`; :class:`KeyNotFound` if absent."""

    def read_if_changed(self, key: str, version: str | None) -> tuple[bytes, str] | None:
        """The bytes and a version token, or None if ``key`` is still at ``version``.

        A conditional read: an unchanged object costs a round trip and no
        transfer (catalogs are re-read every few seconds and rarely change).
        :class:`KeyNotFound` if absent. The token is not one :meth:`write_if` takes.
        """

    def write_bytes(self, key: str, data: bytes) -> None:
        """Replace ``key`` atomically: readers see the old or the new bytes."""

    def write_if(self, key: str, data: bytes, version: str | None) -> bool:
        """Replace ``key`` only if it is still at ``version`` (None: only if absent).

        Compare-and-swap for catalogs: two writers never silently lose an entry.
        """

    def put_file(self, source: Path, key: str) -> None:
        """Publish a finished local file under ``key`` atomically."""

    def temporary_path(self, suffix: str) -> Path:
        """A fresh local path for building a file to publish."""

    def exists(self, key: str) -> bool: ...

    def read_range(self, key: str, start: int, length: int) -> bytes:
        """``length`` bytes of ``key`` from ``start`` (a ranged GET on S3)."""

    def delete(self, key: str) -> None: ...

    def list(self, prefix: str) -> Iterator[StoredObject]: ...

    def gdal_path(self, key: str) -> str:
        """The name GDAL opens for ``key`` (a file path, or a ``/vsis3/`` path)."""

    def check(self) -> None:
        """Raise :class:`StorageError` if the store is unreachable or misconfigured."""


class LocalStorage:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"key {key!r} escapes the store")
        return path

    def _tmp_dir(self) -> Path:
        # Temporary files live inside the store so the final rename stays on one filesystem.
        tmp = self.root / ".tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        return tmp

    def read_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise KeyNotFound(key) from None
        except OSError as exc:
            raise StorageError(f"cannot read {key} from {self.url}: {exc.strerror}") from exc

    @contextlib.contextmanager
    def _os_errors(self, action: str, key: str) -> Iterator[None]:
        # Disk full, read-only folder, permissions: a StorageError naming the store.
        try:
            yield
        except FileNotFoundError as exc:
            if action in ("read", "delete"):
                raise KeyNotFound(key) from None
            # A write has no missing key: name the file that went away (the store folder, a temp file).
            raise StorageError(f"cannot {action} {key} in {self.url}: {exc.strerror}: {exc.filename}") from None
        except OSError as exc:
            raise StorageError(f"cannot {action} {key} in {self.url}: {exc.strerror or exc}") from None

    def write_bytes(self, key: str, data: bytes) -> None:
        with self._os_errors("write", key):
            self._write_bytes(key, data)

    def _write_bytes(self, key: str, data: bytes) -> None:
        self._write_atomically(key, io.BytesIO(data))

    def put_file(self, source: Path, key: str) -> None:
        with self._os_errors("write", key):
            self._put_file(source, key)

    def _put_file(self, source: Path, key: str) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.resolve().parent == self._tmp_dir().resolve():
            with open(source, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(source, target)
            return
        with open(source, "rb") as src:
            self._write_atomically(key, src)

    def _write_atomically(self, key: str, src: BinaryIO) -> None:
        """Copy ``src`` to a temporary file in the store, fsync, then rename into place."""
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp_dir(), suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise

    def temporary_path(self, suffix: str) -> Path:
        """A fresh path in the store's own temp folder, for building files to publish."""
        with self._os_errors("create a temporary file", ".tmp/"):
            fd, name = tempfile.mkstemp(dir=self._tmp_dir(), suffix=suffix)
        os.close(fd)
        return Path(name)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def read_range(self, key: str, start: int, length: int) -> bytes:
        with self._os_errors("read", key):
            fd = os.open(self._path(key), os.O_RDONLY)
            try:
                return os.pread(fd, length, start)
            finally:
                os.close(fd)

    def delete(self, key: str) -> None:
        with contextlib.suppress(KeyNotFound), self._os_errors("delete", key):
            self._path(key).unlink()

    def list(self, prefix: str) -> Iterator[StoredObject]:
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return
        for path in sorted(base.rglob("*")):
            if path.is_file():
                stat = path.stat()
                yield StoredObject(path.relative_to(self.root).as_posix(), stat.st_size, stat.st_mtime)

    def gdal_path(self, key: str) -> str:
        return str(self._path(key))

    def read_versioned(self, key: str) -> tuple[bytes, str]:
        data = self.read_bytes(key)
        return data, hashlib.sha256(data).hexdigest()

    def read_if_changed(self, key: str, version: str | None) -> tuple[bytes, str] | None:
        # Every write is a rename of a fresh file, so a new inode: inode, size and
        # mtime together change on each write, even within one mtime tick. Taken
        # from the open file, so the bytes read are the version recorded.
        with self._os_errors("read", key), open(self._path(key), "rb") as handle:
            stat = os.fstat(handle.fileno())
            current = f"{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"
            if current == version:
                return None
            return handle.read(), current

    def write_if(self, key: str, data: bytes, version: str | None) -> bool:
        with self._os_errors("write", key):
            return self._write_if(key, data, version)

    def _write_if(self, key: str, data: bytes, version: str | None) -> bool:
        lock_dir = self.root / ".locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        lock_name = hashlib.sha256(key.encode()).hexdigest()[:16]
        with open(lock_dir / f"{lock_name}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                try:
                    current: str | None = self.read_versioned(key)[1]
                except KeyNotFound:
                    current = None
                if current != version:
                    return False
                self.write_bytes(key, data)
                return True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def check(self) -> None:
        if not self.root.is_dir():
            raise StorageError(f"store folder {self.url} does not exist")
        if not os.access(self.root, os.R_OK):
            raise StorageError(f"store folder {self.url} is not readable")


def open_storage(url: str, create: bool = False) -> Storage:
    """The storage a ``WXTILES_STORE`` value names: a folder, or ``s3://bucket/prefix``."""
    if url.startswith("s3://"):
        from tileserver.store.s3 import S3Storage

        return S3Storage(url)
    if "://" in url:
        raise StorageError(f"store {url!r}: use a folder path or s3://bucket/prefix")
    storage = LocalStorage(url)
    if create:
        try:
            storage.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create store folder {storage.url}: {exc.strerror}") from exc
    return storage
