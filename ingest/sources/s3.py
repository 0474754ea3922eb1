"""Anonymous S3 access to NOAA's open-data buckets (or a mirror of them).

One client serves every source: the buckets differ, the endpoint is shared
(``WXTILES_NOAA_ENDPOINT``, empty = AWS). Requests are unsigned, connect and
read timeouts are short, and botocore retries throttling, 5xx answers and
connection failures with exponential backoff. What is left after the retries
is sorted here into two kinds:

* :class:`ObjectError`: one object is missing, shorter than asked, or refused.
  The caller reports that file and goes on with the others.
* :class:`SourceUnavailable`: the endpoint or bucket cannot be used at all
  (connection refused, timeouts, no such bucket). Fetching stops with one line
  naming the bucket.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
from botocore import UNSIGNED
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionError as BotoConnectionError,
    HTTPClientError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from urllib3.exceptions import HTTPError as Urllib3Error

from ingest.sources.base import FetchError
from tileserver.core.settings import Settings

DEFAULT_ATTEMPTS = 4
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0
# Reading a response body is outside botocore's retries; these many tries, with backoff.
BODY_ATTEMPTS = 3


class ObjectError(Exception):
    """One object cannot be read (missing, truncated, refused): one line."""


class MissingObject(ObjectError):
    """The object does not exist (yet)."""


class SourceUnavailable(FetchError):
    """The bucket or endpoint cannot be used at all."""


def make_client(
    settings: Settings,
    *,
    max_attempts: int = DEFAULT_ATTEMPTS,  # tries per request, the first included
    connect_timeout: float = CONNECT_TIMEOUT_S,
    read_timeout: float = READ_TIMEOUT_S,
) -> BaseClient:
    """An unsigned S3 client for the NOAA buckets (``settings.noaa_endpoint`` or AWS)."""
    config = Config(
        signature_version=UNSIGNED,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        # total_max_attempts counts the first try (botocore's max_attempts counts retries only).
        retries={"total_max_attempts": max(1, max_attempts), "mode": "standard"},
        # A mirror (MinIO, moto, a proxy) usually wants path-style URLs.
        s3={"addressing_style": "path"} if settings.noaa_endpoint else {},
        user_agent_extra="wxtiles-fetch",
        # AWS_ENDPOINT_URL(_S3) in the environment points the *store* at its own S3
        # (MinIO, a proxy); it must not redirect the NOAA buckets. Empty = AWS.
        ignore_configured_endpoint_urls=True,
    )
    # The NOAA buckets live in us-east-1; anonymous access needs no credentials.
    return boto3.session.Session().client(
        "s3", region_name="us-east-1", endpoint_url=settings.noaa_endpoint or None, config=config,
    )


def endpoint_of(client: BaseClient) -> str:
    return str(client.meta.endpoint_url)


def _network_reason(exc: BaseException) -> str:
    if isinstance(exc, ReadTimeoutError) or "timeout" in type(exc).__name__.lower():
        return "timed out"
    if isinstance(exc, BotoConnectionError):
        return "connection failed"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def unavailable(client: BaseClient, bucket: str, exc: BaseException) -> SourceUnavailable:
    retries = client.meta.config.retries or {}
    attempts = retries.get("total_max_attempts") or (retries.get("max_attempts", DEFAULT_ATTEMPTS - 1) + 1)
    return SourceUnavailable(
        f"cannot reach bucket {bucket} at {endpoint_of(client)}: {_network_reason(exc)} "
        f"({type(exc).__name__}, after {attempts} attempts)"
    )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "")) or str(
        exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
    )


def _bucket_level_error(client: BaseClient, bucket: str, exc: ClientError) -> SourceUnavailable:
    code = _code(exc)
    if code == "NoSuchBucket":
        return SourceUnavailable(f"bucket {bucket} does not exist at {endpoint_of(client)}")
    if code in ("AccessDenied", "403", "AllAccessDisabled"):
        return SourceUnavailable(f"bucket {bucket} at {endpoint_of(client)} refuses anonymous listing ({code})")
    return SourceUnavailable(f"bucket {bucket} at {endpoint_of(client)} answered {code or 'an error'}")


_NETWORK_ERRORS = (BotoConnectionError, HTTPClientError, ReadTimeoutError, ResponseStreamingError, Urllib3Error)


def list_keys(client: BaseClient, bucket: str, prefix: str, start_after: str = "") -> Iterator[tuple[str, int]]:
    """``(key, size)`` of the objects under ``prefix``, in key order, after ``start_after``."""
    token: str | None = None
    while True:
        kwargs: dict[str, object] = {"Bucket": bucket, "Prefix": prefix}
        if token:
            kwargs["ContinuationToken"] = token
        elif start_after:
            kwargs["StartAfter"] = start_after
        try:
            page = client.list_objects_v2(**kwargs)
        except ClientError as exc:
            raise _bucket_level_error(client, bucket, exc) from None
        except _NETWORK_ERRORS as exc:
            raise unavailable(client, bucket, exc) from None
        for item in page.get("Contents", ()):
            yield str(item["Key"]), int(item.get("Size", 0))
        if not page.get("IsTruncated"):
            return
        token = page.get("NextContinuationToken")


def exists(client: BaseClient, bucket: str, key: str) -> bool:
    try:
        client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        code = _code(exc)
        if code in ("404", "NoSuchKey", "NotFound"):
            return False
        if code == "NoSuchBucket":
            raise _bucket_level_error(client, bucket, exc) from None
        if code in ("403", "AccessDenied"):
            # Anonymous HEAD of a missing key answers 403 where listing is not allowed.
            return False
        raise _bucket_level_error(client, bucket, exc) from None
    except _NETWORK_ERRORS as exc:
        raise unavailable(client, bucket, exc) from None
    return True


@dataclass(frozen=True)
class Download:
    data: bytes
    object_size: int | None  # the whole object's size (from Content-Range), when known


def get_bytes(client: BaseClient, bucket: str, key: str, start: int | None = None, end: int | None = None) -> Download:
    """The object, or bytes ``start`` to ``end`` (exclusive; None = to the object's end).

    Raises :class:`ObjectError` for this object's problems (missing, refused,
    range beyond its end, truncated body) and :class:`SourceUnavailable` when
    the endpoint cannot be reached after the retries.
    """
    kwargs: dict[str, str] = {"Bucket": bucket, "Key": key}
    if start is not None:
        kwargs["Range"] = f"bytes={start}-" + (f"{end - 1}" if end is not None else "")
    for attempt in range(1, BODY_ATTEMPTS + 1):
        try:
            response = client.get_object(**kwargs)
        except ClientError as exc:
            code = _code(exc)
            if code in ("NoSuchKey", "404"):
                raise MissingObject("missing object") from None
            if code in ("InvalidRange", "416"):
                size = exc.response.get("Error", {}).get("ActualObjectSize")
                raise ObjectError(f"object is shorter than the byte range {kwargs['Range'][6:]}" + (f" (it has {size} bytes)" if size else "")) from None
            if code == "NoSuchBucket":
                raise _bucket_level_error(client, bucket, exc) from None
            raise ObjectError(f"the server answered {code or 'an error'}") from None
        except _NETWORK_ERRORS as exc:
            raise unavailable(client, bucket, exc) from None
        expected = int(response.get("ContentLength", -1))
        try:
            data = response["Body"].read()
        except IncompleteReadError as exc:
            problem: BaseException = exc
        except _NETWORK_ERRORS as exc:
            problem = exc
        else:
            if expected >= 0 and len(data) != expected:
                problem = ObjectError(f"truncated download: {len(data)} of {expected} bytes")
            else:
                if start is not None and not response.get("ContentRange"):
                    # The server ignored Range and sent the whole object.
                    return Download(data[start:end], len(data))
                return Download(data, _object_size(response, len(data)))
        if attempt == BODY_ATTEMPTS:
            if isinstance(problem, ObjectError):
                raise problem
            raise ObjectError(f"truncated download ({_network_reason(problem)}, {attempt} attempts)")
        time.sleep(random.uniform(0, 0.2 * 2**attempt))
    raise AssertionError("unreachable")


def _object_size(response: dict, length: int) -> int | None:
    content_range = str(response.get("ContentRange") or "")
    if not content_range:
        return length
    total = content_range.rsplit("/", 1)[-1]
    return int(total) if total.isdigit() else None
