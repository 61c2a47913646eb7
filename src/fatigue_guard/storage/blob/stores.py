"""Blob stores: bytes by key, on a local folder or Azure Blob Storage.

Keys are ``/``-separated relative paths (``features/v1/date=2025-01-31/<batch>.parquet``). Both
implementations make a ``put`` all-or-nothing: a reader sees the old object, the new one, or
none, never half a file.
"""

from __future__ import annotations

import contextlib
from pathlib import Path, PurePosixPath
from typing import Protocol, runtime_checkable

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContainerClient, LinearRetry

from fatigue_guard.config import Settings
from fatigue_guard.files import TEMP_PREFIX, atomic_write


class BlobNotFound(KeyError):
    """No object under this key."""


@runtime_checkable
class BlobStore(Protocol):
    """The four operations the feature store needs; anything providing them will do."""

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...

    def list(self, prefix: str = "") -> list[str]: ...

    def delete(self, key: str) -> None: ...


def _check_key(key: str) -> str:
    path = PurePosixPath(key)
    if not key or path.is_absolute() or ".." in path.parts or key.endswith("/"):
        raise ValueError(f"invalid blob key {key!r}")
    return key


class LocalBlobStore:
    """Objects as files under ``root`` (the default store: nothing needs to run)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*PurePosixPath(_check_key(key)).parts)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise BlobNotFound(key) from exc

    def list(self, prefix: str = "") -> list[str]:
        if not self.root.exists():
            return []
        keys = (
            p.relative_to(self.root).as_posix()
            for p in self.root.rglob("*")
            if p.is_file() and not p.name.startswith(TEMP_PREFIX)
        )
        return sorted(k for k in keys if k.startswith(prefix))

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class AzureBlobStore:
    """Objects in one Azure Blob Storage container (or Azurite), from a connection string.

    The container is created on first use rather than at construction, so a process can start
    while the storage account is unreachable and catch up later (the outbox keeps the data).
    Retries are left to the outbox, which backs off; the SDK's own retry loop is kept short so a
    dead endpoint fails fast instead of stalling the flusher for minutes.
    """

    def __init__(
        self,
        connection_string: str,
        container: str,
        *,
        connection_timeout_s: float = 5.0,
        read_timeout_s: float = 30.0,
        retry_total: int = 1,
    ) -> None:
        self.container = container
        self._client = ContainerClient.from_connection_string(
            connection_string,
            container,
            connection_timeout=connection_timeout_s,
            read_timeout=read_timeout_s,
            # The SDK's default back-off is 15 s +- 3 s; the outbox has its own, shorter one.
            retry_policy=LinearRetry(backoff=0.3, random_jitter_range=0.1, retry_total=retry_total),
        )
        self._container_ready = False

    def __repr__(self) -> str:
        return (
            f"AzureBlobStore(account={self._client.account_name!r}, container={self.container!r})"
        )

    def ensure_container(self) -> None:
        if self._container_ready:
            return
        with contextlib.suppress(ResourceExistsError):
            self._client.create_container()
        self._container_ready = True

    def put(self, key: str, data: bytes) -> None:
        self.ensure_container()
        self._client.upload_blob(_check_key(key), data, overwrite=True)

    def get(self, key: str) -> bytes:
        self.ensure_container()
        try:
            return self._client.download_blob(_check_key(key)).readall()
        except ResourceNotFoundError as exc:
            raise BlobNotFound(key) from exc

    def list(self, prefix: str = "") -> list[str]:
        self.ensure_container()
        return sorted(b.name for b in self._client.list_blobs(name_starts_with=prefix or None))

    def delete(self, key: str) -> None:
        self.ensure_container()
        with contextlib.suppress(ResourceNotFoundError):
            self._client.delete_blob(_check_key(key))


def build_blob_store(settings: Settings) -> BlobStore:
    """Azure Blob Storage if a connection string is configured, else the local folder."""
    if settings.azure_storage_connection_string is not None:
        return AzureBlobStore(
            settings.azure_storage_connection_string.get_secret_value(), settings.blob_container
        )
    return LocalBlobStore(settings.local_blob_root)
