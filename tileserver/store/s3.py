"""The store on S3 or anything that speaks its API (MinIO, Ceph RGW, R2).

boto3 writes and lists; GDAL reads frames itself through ``/vsis3/`` with range
requests. Endpoint, region and credentials come from the standard AWS chain
(``AWS_ENDPOINT_URL``, ``AWS_PROFILE``, environment, instance or pod roles), so
the same code runs against AWS and a self-hosted store.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError as BotoConnectionError, NoCredentialsError

from tileserver.store.storage import KeyNotFound, StorageError, StoredObject, StoreUnreachable

# Bounded waits: a store that hangs must turn into an error, not a hung worker.
CLIENT_CONFIG = Config(
    connect_timeout=3, read_timeout=15, retries={"max_attempts": 4, "mode": "standard"}, tcp_keepalive=True,
)
# Health checks and error diagnosis must answer fast: one attempt, short waits.
PROBE_CONFIG = Config(connect_timeout=2, read_timeout=3, retries={"max_attempts": 1, "mode": "standard"})
# Frames are a few MB; multipart above 16 MB, in 16 MB parts.
TRANSFER_CONFIG = TransferConfig(multipart_threshold=16 * 2**20, multipart_chunksize=16 * 2**20, max_concurrency=4)
_MISSING = {"NoSuchKey", "404", "NotFound"}
_DENIED = {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "Forbidden"}
_NOT_MODIFIED = frozenset({"304", "NotModified"})
_PAST_THE_END = frozenset({"InvalidRange", "416"})
_RACE = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


# GDAL's own reads of /vsis3/, bounded as boto3's are, in every process that
# uses the store: the server, and ingest reading earlier frames for motion (a
# stalled store must fail an ingest job, not hang it). No listing on open, and
# the COG header in the first request.
GDAL_S3_READ_CONFIG = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_INGESTED_BYTES_AT_OPEN": "32768",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif",
    "GDAL_HTTP_CONNECTTIMEOUT": "3",
    "GDAL_HTTP_TIMEOUT": "5",
    "GDAL_HTTP_MAX_RETRY": "1",
    "GDAL_HTTP_RETRY_DELAY": "0.5",
}


def _endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def configure_gdal_for_endpoint(endpoint: str | None) -> None:
    """Point GDAL's /vsis3/ at the same endpoint boto3 uses.

    GDAL reads its S3 settings from the process environment (rasterio refuses
    some of them in ``rasterio.Env``), and does not know ``AWS_ENDPOINT_URL``.
    """
    if not endpoint:
        return
    parsed = urlparse(endpoint)
    os.environ["AWS_S3_ENDPOINT"] = parsed.netloc + parsed.path.rstrip("/")
    os.environ["AWS_HTTPS"] = "YES" if parsed.scheme == "https" else "NO"
    # Self-hosted stores are reached by path (host/bucket/key), not bucket.host.
    os.environ.setdefault("AWS_VIRTUAL_HOSTING", "FALSE")


class S3Storage:
    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise StorageError(f"store {url!r}: write s3://bucket or s3://bucket/prefix")
        self.url = url.rstrip("/")
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.endpoint = _endpoint()
        try:
            session = boto3.session.Session()
            self.client = session.client("s3", endpoint_url=self.endpoint, config=CLIENT_CONFIG)
            self.probe = session.client("s3", endpoint_url=self.endpoint, config=PROBE_CONFIG)
        except BotoCoreError as exc:
            raise StorageError(f"store {self.url}: {exc}") from None
        configure_gdal_for_endpoint(self.endpoint)
        for key, value in GDAL_S3_READ_CONFIG.items():
            os.environ.setdefault(key, value)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _error(self, exc: Exception, action: str, key: str = "") -> StorageError:
        where = f"{self.url}/{key}" if key else self.url
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _MISSING and key:
                return KeyNotFound(key)
            if code in ("NoSuchBucket",) or (code in _MISSING and not key):
                return StorageError(f"store {self.url}: bucket {self.bucket!r} does not exist")
            if code in _DENIED:
                return StorageError(f"store {self.url}: access denied ({code}); check the credentials and the bucket policy")
            return StorageError(f"cannot {action} {where}: {code or exc}")
        if isinstance(exc, NoCredentialsError):
            return StorageError(f"store {self.url}: no AWS credentials found (environment, profile or instance role)")
        endpoint = self.endpoint or "AWS"
        return StoreUnreachable(f"store {self.url} at {endpoint} is unreachable: {str(exc).splitlines()[0]}")

    def _get(self, key: str, answers: frozenset[str] = frozenset(), **options: str) -> dict[str, Any] | None:
        """``get_object``; None when S3 answers with one of the error codes in ``answers``."""
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key), **options)  # type: ignore[no-any-return]
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) in answers:
                return None
            raise self._error(exc, "read", key) from None
        except (BotoCoreError, BotoConnectionError) as exc:
            raise self._error(exc, "read", key) from None

    def _body(self, response: dict[str, Any], key: str) -> bytes:
        try:
            return response["Body"].read()  # type: ignore[no-any-return]
        except (BotoCoreError, BotoConnectionError) as exc:  # cut mid-body
            raise self._error(exc, "read", key) from None

    def read_versioned(self, key: str) -> tuple[bytes, str]:
        response = self._get(key)
        assert response is not None
        return self._body(response, key), str(response["ETag"])

    def read_if_changed(self, key: str, version: str | None) -> tuple[bytes, str] | None:
        response = self._get(key, _NOT_MODIFIED, **({"IfNoneMatch": version} if version else {}))
        return None if response is None else (self._body(response, key), str(response["ETag"]))

    def read_range(self, key: str, start: int, length: int) -> bytes:
        response = self._get(key, _PAST_THE_END, Range=f"bytes={start}-{start + length - 1}")
        # Past the end: as a local read there, no bytes (the object is shorter than its reader expects).
        return b"" if response is None else self._body(response, key)

    def read_bytes(self, key: str) -> bytes:
        return self.read_versioned(key)[0]

    def write_bytes(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except (ClientError, BotoCoreError, BotoConnectionError) as exc:
            raise self._error(exc, "write", key) from None

    def write_if(self, key: str, data: bytes, version: str | None) -> bool:
        # S3 conditional writes: If-None-Match for "still absent", If-Match for "still this ETag".
        condition = {"IfMatch": version} if version else {"IfNoneMatch": "*"}
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **condition)
            return True
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) in _RACE:
                return False
            raise self._error(exc, "write", key) from None
        except (BotoCoreError, BotoConnectionError) as exc:
            raise self._error(exc, "write", key) from None

    def put_file(self, source: Path, key: str) -> None:
        # An S3 object becomes visible only once complete, multipart included.
        try:
            self.client.upload_file(str(source), self.bucket, self._key(key), Config=TRANSFER_CONFIG)
        except (ClientError, BotoCoreError, BotoConnectionError) as exc:
            raise self._error(exc, "upload", key) from None
        except Exception as exc:  # boto3's transfer manager wraps failures in S3UploadFailedError
            raise self._error(exc.__cause__ or exc, "upload", key) from None  # type: ignore[arg-type]

    def temporary_path(self, suffix: str) -> Path:
        fd, name = tempfile.mkstemp(suffix=suffix, prefix="wxtiles-")
        os.close(fd)
        return Path(name)

    def exists(self, key: str) -> bool:
        try:
            self.probe.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            error = self._error(exc, "check", key)
            if isinstance(error, KeyNotFound):
                return False
            raise error from None
        except (BotoCoreError, BotoConnectionError) as exc:
            raise self._error(exc, "check", key) from None

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (ClientError, BotoCoreError, BotoConnectionError) as exc:
            raise self._error(exc, "delete", key) from None

    def list(self, prefix: str) -> Iterator[StoredObject]:
        strip = len(self.prefix) + 1 if self.prefix else 0
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key(prefix))
            for page in pages:
                for item in page.get("Contents", []):
                    yield StoredObject(item["Key"][strip:], int(item["Size"]), item["LastModified"].timestamp())
        except (ClientError, BotoCoreError, BotoConnectionError) as exc:
            raise self._error(exc, "list", prefix) from None

    def gdal_path(self, key: str) -> str:
        return f"/vsis3/{self.bucket}/{self._key(key)}"

    def check(self) -> None:
        try:
            self.probe.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError, BotoConnectionError) as exc:
            raise self._error(exc, "reach") from None
