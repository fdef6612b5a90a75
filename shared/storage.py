"""The object store for photos and documents: one interface, an S3 driver (MinIO in production) and a folder driver.

Keys are paths like `reads/2026/11/25/<uuid>.jpg`: deleting a day is deleting a prefix.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, urlencode

import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from shared.secret_files import url_signing_secret
from shared.settings import Settings


class StorageError(Exception):
    """Base for object-store failures."""


class ObjectNotFound(StorageError):
    def __init__(self, key: str) -> None:
        super().__init__(f"object not found: {key}")
        self.key = key


class StoreUnavailable(StorageError):
    """The store could not be reached or answered with a server error: retry later."""


def _check_key(key: str) -> str:
    if not key or key.startswith("/") or ".." in key.split("/") or "\\" in key or "\x00" in key:
        raise ValueError(f"invalid object key: {key!r}")
    return key


@dataclass(frozen=True)
class StoredObject:
    """A key and when it was last written (UTC): the purge leaves young objects alone (in-flight reads)."""

    key: str
    last_modified: datetime


class ObjectStore(Protocol):
    name: str

    async def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...
    async def get(self, key: str) -> bytes: ...
    async def exists(self, key: str) -> bool: ...
    async def delete(self, key: str) -> None: ...
    async def delete_prefix(self, prefix: str) -> int: ...
    async def delete_keys(self, keys: Sequence[str]) -> int: ...
    async def list(self, prefix: str = "") -> list[str]: ...
    async def list_objects(self, prefix: str = "") -> Sequence[StoredObject]: ...
    async def ping(self) -> None: ...
    async def presigned_url(self, key: str, expires_s: int = 300) -> str: ...


class S3Store:
    """S3 API through the `minio` client. The client is blocking, so calls run in threads."""

    name = "s3"

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        *,
        secure: bool = False,
        region: str = "us-east-1",
        timeout_s: float = 5.0,
    ) -> None:
        # Short timeouts and one retry: an outage must surface as 503 quickly, not hang a car's upload.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=min(timeout_s, 3.0), read=timeout_s),
            retries=urllib3.Retry(total=1, backoff_factor=0.1, status_forcelist=(502, 503, 504)),
            maxsize=32,
        )
        self.bucket = bucket
        self.client = Minio(
            endpoint, access_key=access_key, secret_key=secret_key, secure=secure, region=region, http_client=http
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Store:
        assert settings.s3_endpoint and settings.s3_access_key and settings.s3_secret_key
        return cls(
            settings.s3_endpoint,
            settings.s3_access_key,
            settings.s3_secret_key.get_secret_value(),
            settings.s3_bucket,
            secure=settings.s3_secure,
            region=settings.s3_region,
            timeout_s=settings.s3_timeout_s,
        )

    async def _call(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                raise ObjectNotFound(exc.resource or "") from exc
            raise StorageError(f"S3 error {exc.code}: {exc.message}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StoreUnavailable(f"object store unreachable: {type(exc).__name__}") from exc

    async def ensure_bucket(self) -> None:
        if not await self._call(self.client.bucket_exists, self.bucket):
            await self._call(self.client.make_bucket, self.bucket)

    async def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        _check_key(key)
        await self._call(
            self.client.put_object, self.bucket, key, io.BytesIO(data), len(data), content_type=content_type
        )

    async def get(self, key: str) -> bytes:
        _check_key(key)

        def _read() -> bytes:
            resp = self.client.get_object(self.bucket, key)
            try:
                return resp.read()
            finally:
                resp.close()
                resp.release_conn()

        try:
            data: bytes = await self._call(_read)
        except ObjectNotFound:
            raise ObjectNotFound(key) from None
        return data

    async def exists(self, key: str) -> bool:
        _check_key(key)
        try:
            await self._call(self.client.stat_object, self.bucket, key)
        except ObjectNotFound:
            return False
        return True

    async def delete(self, key: str) -> None:
        _check_key(key)
        await self._call(self.client.remove_object, self.bucket, key)

    async def list(self, prefix: str = "") -> list[str]:
        def _list() -> list[str]:
            return [
                o.object_name
                for o in self.client.list_objects(self.bucket, prefix=prefix or None, recursive=True)
                if o.object_name is not None
            ]

        keys: list[str] = await self._call(_list)
        return keys

    async def list_objects(self, prefix: str = "") -> Sequence[StoredObject]:
        def _list() -> list[StoredObject]:
            return [
                StoredObject(o.object_name, o.last_modified.astimezone(UTC) if o.last_modified else datetime.now(UTC))
                for o in self.client.list_objects(self.bucket, prefix=prefix or None, recursive=True)
                if o.object_name is not None
            ]

        objects: list[StoredObject] = await self._call(_list)
        return objects

    async def delete_prefix(self, prefix: str) -> int:
        keys = await self.list(prefix)

        def _remove() -> None:
            for start in range(0, len(keys), 1000):
                errors = list(
                    self.client.remove_objects(self.bucket, [DeleteObject(k) for k in keys[start : start + 1000]])
                )
                if errors:
                    raise StorageError(f"could not delete {len(errors)} objects under {prefix!r}")

        await self._call(_remove)
        return len(keys)

    async def delete_keys(self, keys: Sequence[str]) -> int:
        """Delete these objects (1000 per request); a key already gone is not an error."""
        for key in keys:
            _check_key(key)

        def _remove() -> None:
            for start in range(0, len(keys), 1000):
                errors = list(
                    self.client.remove_objects(self.bucket, [DeleteObject(k) for k in keys[start : start + 1000]])
                )
                if errors:
                    raise StorageError(f"could not delete {len(errors)} of {len(keys)} objects")

        await self._call(_remove)
        return len(keys)

    async def ping(self) -> None:
        if not await self._call(self.client.bucket_exists, self.bucket):
            raise StoreUnavailable(f"bucket {self.bucket!r} does not exist")

    async def presigned_url(self, key: str, expires_s: int = 300) -> str:
        _check_key(key)
        url: str = await self._call(
            self.client.presigned_get_object, self.bucket, key, expires=timedelta(seconds=expires_s)
        )
        return url


@dataclass(frozen=True)
class LinkViewer:
    """Who a link is issued to, and under what: the view's audit entry names them, and only their token opens it."""

    subject: str
    agency: str = ""
    grant_id: str = ""
    case_number: str = ""

    def params(self) -> dict[str, str]:
        return {"sub": self.subject, "agency": self.agency, "grant": self.grant_id, "case": self.case_number}


class SignedLinks:
    """Links to objects that the access service serves itself (`GET /v1/objects/{key}`), so that each view is
    audited: an HMAC over the key, the expiry time and the viewer (subject, agency, grant, case), with the
    deployment's URL-signing secret. A forwarded link opens for nobody else: the viewer's token must come with it."""

    def __init__(self, base_url: str, secret: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._secret = secret.encode()

    def sign(self, key: str, expires_at: int, viewer: LinkViewer | None = None) -> str:
        bound = "\n".join(viewer.params().values()) if viewer else ""
        return hmac.new(self._secret, f"{key}\n{expires_at}\n{bound}".encode(), hashlib.sha256).hexdigest()

    def verify(self, key: str, expires_at: int, signature: str, viewer: LinkViewer | None = None) -> bool:
        # Bytes: compare_digest refuses str with non-ASCII characters (a forged signature may carry any).
        expected = self.sign(key, expires_at, viewer).encode()
        return expires_at >= time.time() and hmac.compare_digest(expected, signature.encode("utf-8", "replace"))

    def url(self, key: str, expires_s: int = 300, viewer: LinkViewer | None = None) -> str:
        _check_key(key)
        expires_at = int(time.time()) + expires_s
        bound = "&" + urlencode(viewer.params()) if viewer else ""
        signature = self.sign(key, expires_at, viewer)
        return f"{self.base_url}/v1/objects/{quote(key)}?expires={expires_at}{bound}&signature={signature}"

    @classmethod
    def from_settings(cls, settings: Settings) -> SignedLinks:
        return cls(settings.url_of("access"), url_signing_secret(settings))


def _private_dirs(root: Path, folder: Path) -> None:
    """Make `folder` (under `root`) and any missing folder between them, each 0700."""
    missing = []
    current = folder
    while current != root and not current.is_dir():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            continue  # another writer made it
        os.chmod(path, 0o700)


class LocalStore:
    """Objects as files under a folder: the one-command default. Writes are atomic (temp file + rename). A folder
    serves nothing by itself: its presigned links are access's signed links."""

    name = "local"

    def __init__(self, root: Path, *, signing_secret: str, base_url: str = "") -> None:
        self.root = root.resolve()
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)  # photos and court orders: the service's user only
        self.links = SignedLinks(base_url, signing_secret)

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    async def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        path = self._path(key)

        def _write() -> None:
            _private_dirs(self.root, path.parent)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            # Owner-only from the first byte (0600), whatever the umask.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)

        await asyncio.to_thread(_write)

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise ObjectNotFound(key) from None

    async def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    async def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    async def list(self, prefix: str = "") -> list[str]:
        def _walk() -> list[str]:
            out = []
            for path in self.root.rglob("*"):
                if path.is_file() and not path.name.startswith("."):
                    key = path.relative_to(self.root).as_posix()
                    if key.startswith(prefix):
                        out.append(key)
            return sorted(out)

        return await asyncio.to_thread(_walk)

    async def list_objects(self, prefix: str = "") -> Sequence[StoredObject]:
        def _stat() -> list[StoredObject]:
            out = []
            for key in keys:
                try:
                    mtime = self._path(key).stat().st_mtime
                except FileNotFoundError:
                    continue  # deleted meanwhile
                out.append(StoredObject(key, datetime.fromtimestamp(mtime, UTC)))
            return out

        keys = await self.list(prefix)
        return await asyncio.to_thread(_stat)

    async def delete_prefix(self, prefix: str) -> int:
        keys = await self.list(prefix)
        for key in keys:
            self._path(key).unlink(missing_ok=True)
        return len(keys)

    async def delete_keys(self, keys: Sequence[str]) -> int:
        for key in keys:
            self._path(key).unlink(missing_ok=True)
        return len(keys)

    async def ping(self) -> None:
        if not self.root.is_dir() or not os.access(self.root, os.W_OK):
            raise StoreUnavailable(f"object folder {self.root} is not writable")

    async def presigned_url(self, key: str, expires_s: int = 300) -> str:
        return self.links.url(key, expires_s)


def create_store(settings: Settings, *, base_url: str = "") -> ObjectStore:
    if settings.s3_endpoint:
        return S3Store.from_settings(settings)
    return LocalStore(settings.objects_dir, signing_secret=url_signing_secret(settings), base_url=base_url)
