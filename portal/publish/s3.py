"""The S3 implementation of the Target interface (portal/publish/targets.py): any S3-compatible store, configured
by boto3's standard chain.

Endpoint, region and credentials come from the environment or AWS profiles (AWS_ENDPOINT_URL_S3,
AWS_REGION, AWS_ACCESS_KEY_ID, AWS_PROFILE, roles), never from portal.toml.

Retries happen at two levels. botocore retries each request ("standard" mode: exponential backoff with
full jitter on throttling such as 503 SlowDown, on 5xx answers and on connection errors). Under sustained
throttling botocore stops retrying once its retry quota is spent, so each operation also runs in a loop of
our own with the same kind of backoff (`with_retries`).
"""

from __future__ import annotations

import base64
import os
import random
import time
from collections.abc import Callable
from functools import cached_property, lru_cache
from typing import TypeVar
from urllib.parse import quote

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)

from portal.publish.objects import (
    GZIP,
    PRIVATE_CACHE,
    SITE_ROOTS,
    Download,
    LocalFile,
    PublishError,
    cache_control,
    content_type,
    is_site_path,
)

T = TypeVar("T")

BOTO_MAX_ATTEMPTS = 5  # per request, inside botocore (first try included)
OWN_ATTEMPTS = 6  # per operation, around botocore's attempts
BACKOFF_BASE = 0.25  # seconds; the n-th wait is uniform in [0, min(cap, base * 2**n)] ("full jitter")
BACKOFF_CAP = 20.0
MULTIPART_THRESHOLD = 64 * 1024 * 1024  # bigger files go up in parts, streamed from disk

RETRYABLE_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests",
                   "RequestTimeout", "RequestTimeoutException", "InternalError", "ServiceUnavailable",
                   "500", "502", "503", "504"}
DENIED_CODES = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
                "ExpiredToken", "InvalidClientTokenId", "AllAccessDisabled"}
# Variables that change which client presigning needs (its clients are cached per combination).
CLIENT_ENV = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
              "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_CONFIG_FILE",
              "AWS_SHARED_CREDENTIALS_FILE")


def parse_target(target: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix/` -> ("bucket", "some/prefix")."""
    rest = target.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise PublishError(f"target {target!r}: no bucket name (use s3://bucket/prefix)")
    return bucket, prefix.strip("/")


def make_client(workers: int = 1, attempts: int | None = None, connect_timeout: float = 10,
                read_timeout: float = 60) -> BaseClient:
    """An S3 client from the standard chain. A new session each time: sessions are not thread-safe."""
    config = Config(
        signature_version="s3v4",  # presigned URLs too: SigV2 is deprecated and refused by many stores
        retries={"mode": "standard", "total_max_attempts": attempts or BOTO_MAX_ATTEMPTS},
        max_pool_connections=max(10, workers + 2),
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        tcp_keepalive=True,
    )
    return boto3.session.Session().client("s3", config=config)


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, S3UploadFailedError) and exc.__context__ is not None:
        exc = exc.__context__  # boto3's multipart upload wraps the ClientError
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error.get("Code") in RETRYABLE_CODES or status >= 500 or status == 429
    # Connection refused, reset or dropped, timeouts: the request may or may not have arrived, and every
    # operation here is idempotent, so sending it again is safe.
    return isinstance(exc, ConnectionError | HTTPClientError)


def backoff_delay(attempt: int, rand: Callable[[], float] = random.random) -> float:
    """Exponential backoff with full jitter: spreads retries of many threads over the whole window."""
    return rand() * min(BACKOFF_CAP, BACKOFF_BASE * 2 ** attempt)


def with_retries(call: Callable[[], T], attempts: int | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 retryable: Callable[[BaseException], bool] = is_retryable) -> T:
    """Run `call`, again after a backoff while it fails with a retryable error, at most `attempts` times."""
    attempts = attempts or OWN_ATTEMPTS
    for attempt in range(attempts):
        try:
            return call()
        except Exception as exc:
            if attempt == attempts - 1 or not retryable(exc):
                raise
            sleep(backoff_delay(attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def explain(exc: BaseException, bucket: str, endpoint: str) -> str:
    """One line a person can act on, for anything boto3 raises."""
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return ("no usable AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, "
                "or run with a role)")
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
        return f"cannot reach the S3 endpoint {endpoint} (check AWS_ENDPOINT_URL_S3 and the network)"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code, message = str(error.get("Code", "")), error.get("Message") or ""
        if code in {"404", "NoSuchBucket"}:
            return f"bucket {bucket} does not exist (at {endpoint})"
        if code in DENIED_CODES:
            return (f"access denied ({code}{': ' + message if message else ''}): check the credentials "
                    "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or AWS_PROFILE) and that they may list, read and "
                    f"write bucket {bucket}")
        if code in {"301", "PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"}:
            region = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("x-amz-bucket-region")
            return f"bucket {bucket} is in another region{' (' + region + ')' if region else ''}: set AWS_REGION"
        return f"{code}: {message}" if message else f"S3 answered {code}"
    if isinstance(exc, BotoCoreError):
        return str(exc)
    return f"{exc.__class__.__name__}: {exc}"


class S3Target:
    """A bucket and a key prefix. Site objects carry their SHA-256 in `x-amz-meta-sha256`."""

    delete_batch = 1000  # DeleteObjects' limit
    local_root = None  # nothing of it is on this machine

    def __init__(self, target: str, workers: int = 1):
        self.bucket, self.prefix = parse_target(target)
        self.name = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        self.workers = workers

    @cached_property
    def client(self) -> BaseClient:
        """Made on first use: choosing a target (the webhook does at start) must not need a working AWS setup."""
        try:
            return make_client(self.workers)
        except BotoCoreError as exc:  # e.g. a malformed endpoint or profile
            raise PublishError(f"{self.name}: {exc}") from None

    @property
    def endpoint(self) -> str:
        return self.client.meta.endpoint_url

    @cached_property
    def send_checksum(self) -> bool:
        # A store that cannot take flexible checksums is served by AWS_REQUEST_CHECKSUM_CALCULATION=when_required.
        return self.client.meta.config.request_checksum_calculation != "when_required"

    def key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def _fail(self, exc: BaseException) -> PublishError:
        return PublishError(f"{self.name}: {explain(exc, self.bucket, self.endpoint)}")

    def _call(self, call: Callable[[], T]) -> T:
        try:
            return with_retries(call)
        except (BotoCoreError, ClientError, S3UploadFailedError) as exc:
            raise self._fail(exc) from exc

    def check(self) -> None:
        """Fail fast, with one clear line, on a missing bucket, wrong credentials or an unreachable endpoint."""
        def flaky(exc: BaseException) -> bool:
            # Throttling and dropped connections are worth waiting for; an endpoint that refuses or never
            # answers connections is a configuration problem, said at once.
            return is_retryable(exc) and not isinstance(exc, EndpointConnectionError | ConnectTimeoutError)

        _ = self.client  # first: a configuration boto3 cannot even make a client from is said as such
        probe = make_client(attempts=3, connect_timeout=5, read_timeout=15)
        try:
            with_retries(lambda: probe.head_bucket(Bucket=self.bucket), retryable=flaky)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc) from None
        finally:
            probe.close()

    def scan(self, roots: tuple[str, ...] = SITE_ROOTS) -> dict[str, int]:
        sizes: dict[str, int] = {}
        base = self.key("")
        for top in roots:
            def listing(top: str = top) -> dict[str, int]:
                found = {}
                pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base + top)
                for page in pages:
                    for obj in page.get("Contents", ()):
                        rel = obj["Key"][len(base):]
                        if is_site_path(rel):
                            found[rel] = obj["Size"]
                return found
            sizes.update(self._call(listing))
        return sizes

    def remote_sha(self, path: str) -> str | None:
        def head() -> str | None:
            try:
                return self.client.head_object(Bucket=self.bucket, Key=self.key(path))["Metadata"].get("sha256")
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                    return None
                raise
        return self._call(head)

    def put(self, item: LocalFile) -> None:
        extra = {"ContentType": content_type(item.path), "CacheControl": cache_control(item.path),
                 "Metadata": {"sha256": item.sha256}}
        if item.size > MULTIPART_THRESHOLD and item.data is None:
            item.verify()
            config = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, use_threads=False)
            self._call(lambda: self.client.upload_file(str(item.source), self.bucket, self.key(item.path),
                                                       ExtraArgs=extra, Config=config))
            return
        data = item.read()
        if self.send_checksum:
            # The store verifies the SHA-256 we already have, instead of botocore computing a CRC32.
            extra["ChecksumSHA256"] = base64.b64encode(bytes.fromhex(item.sha256)).decode()
        self._call(lambda: self.client.put_object(Bucket=self.bucket, Key=self.key(item.path), Body=data, **extra))

    def delete(self, paths: list[str]) -> None:
        objects = [{"Key": self.key(p)} for p in paths]

        def delete() -> None:
            answer = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})
            errors = answer.get("Errors") or []
            if errors:
                # Per-key errors come in a 200 answer: raise the first as a ClientError so it is retried
                # when it is a throttling or server error (deleting twice is harmless).
                first = errors[0]
                raise ClientError({"Error": {"Code": first.get("Code", ""),
                                             "Message": f"{first.get('Key')}: {first.get('Message', '')}"}},
                                  "DeleteObjects")
        self._call(delete)

    def read(self, name: str) -> bytes | None:
        def get() -> bytes | None:
            try:
                return self.client.get_object(Bucket=self.bucket, Key=self.key(name))["Body"].read()
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                    return None
                raise
        return self._call(get)

    def write(self, name: str, data: bytes, content_type: str = GZIP) -> None:
        self._call(lambda: self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=data,
                                                  ContentType=content_type, CacheControl=PRIVATE_CACHE))

    def remove(self, name: str) -> None:
        self._call(lambda: self.client.delete_object(Bucket=self.bucket, Key=self.key(name)))

    def download(self, path: str, expires_in: int, filename: str | None = None,
                 disposition: str = "inline") -> Download:
        """A presigned GET URL (SigV4): the store refuses it once expired, or when its key, lifetime or signature
        was changed. `filename` and `disposition` become the answer's Content-Disposition."""
        try:
            client = _presign_client(tuple(os.environ.get(name) for name in CLIENT_ENV))
            params = {"Bucket": self.bucket, "Key": self.key(path)}
            if filename:
                params["ResponseContentDisposition"] = content_disposition(filename, disposition)
            return Download(url=client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in))
        except (BotoCoreError, ClientError) as exc:
            endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "the S3 endpoint"
            raise PublishError(f"s3://{self.bucket}/{self.prefix}: {explain(exc, self.bucket, endpoint)}") from None


# --- presigned URLs ------------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _presign_client(_environment: tuple[str | None, ...]) -> BaseClient:
    return make_client()


def content_disposition(filename: str, disposition: str = "inline") -> str:
    """`inline` (or `attachment`) with a safe ASCII name and the exact UTF-8 one (RFC 6266), for the browser's
    save dialog."""
    cleaned = "".join(c for c in filename if c.isprintable() and c not in '"\\/').strip() or "document"
    ascii_name = cleaned.encode("ascii", "replace").decode().replace("?", "_")
    return f"{disposition}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(cleaned, safe='')}"
