"""The S3 target's failures: one clear line for each configuration problem, nothing deleted, and retries that
back off with jitter on what waiting can fix and give up at once on what it cannot."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from portal.publish import s3 as s3target
from portal.publish.objects import PublishError
from portal.publish.publisher import publish
from tests.s3server import SeaweedS3
from tests.site_helpers import listing, rebuild, revoke


def test_missing_bucket_is_one_clear_error(site, aws_env: SeaweedS3):
    settings, out = site
    with pytest.raises(PublishError) as caught:
        publish(settings.replace(target="s3://no-such-bucket/site"), out)
    assert caught.value.message == (f"s3://no-such-bucket/site: bucket no-such-bucket does not exist "
                                    f"(at {aws_env.endpoint})")
    assert caught.value.exit_code != 0


def test_wrong_credentials_are_one_clear_error_and_nothing_is_deleted(site, export_dir: Path, bucket: str,
                                                                      aws_env: SeaweedS3, monkeypatch):
    settings, out = site
    settings = settings.replace(target=f"s3://{bucket}/site")
    publish(settings, out)
    before = listing(aws_env.client(), bucket, "site")
    revoke(settings, "C00001")  # the next publish would delete the old pages
    rebuild(export_dir, out, settings)

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(PublishError) as caught:
        publish(settings, out)

    assert caught.value.message.startswith(f"s3://{bucket}/site: access denied")
    assert "AWS_ACCESS_KEY_ID" in caught.value.message and "\n" not in caught.value.message
    assert listing(aws_env.client(), bucket, "site") == before


def test_unreachable_endpoint_is_one_clear_error(site, aws_env: SeaweedS3, monkeypatch):
    settings, out = site
    with socket_closed_port() as port:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{port}")
        started = time.monotonic()
        with pytest.raises(PublishError) as caught:
            publish(settings.replace(target="s3://any-bucket/site"), out)
    assert caught.value.message == (f"s3://any-bucket/site: cannot reach the S3 endpoint http://127.0.0.1:{port} "
                                    "(check AWS_ENDPOINT_URL_S3 and the network)")
    assert time.monotonic() - started < 15


class socket_closed_port:
    """A loopback port that nothing listens on (bound, never listening, so nobody else takes it meanwhile)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def test_missing_credentials_are_one_clear_error(site, aws_env: SeaweedS3, monkeypatch):
    settings, out = site
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(PublishError, match=r"^s3://any-bucket/site: no usable AWS credentials: set AWS_ACCESS_KEY_ID"):
        publish(settings.replace(target="s3://any-bucket/site"), out)


def slowdown() -> ClientError:
    return ClientError({"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."},
                        "ResponseMetadata": {"HTTPStatusCode": 503}}, "PutObject")


def test_retries_back_off_exponentially_with_full_jitter(monkeypatch):
    monkeypatch.setattr(s3target, "BACKOFF_BASE", 0.5)
    assert s3target.backoff_delay(0, lambda: 1.0) == 0.5
    assert s3target.backoff_delay(3, lambda: 1.0) == 4.0
    assert s3target.backoff_delay(10, lambda: 1.0) == s3target.BACKOFF_CAP
    assert s3target.backoff_delay(3, lambda: 0.0) == 0.0

    waits: list[float] = []
    outcomes = iter([slowdown(), EndpointConnectionError(endpoint_url="http://x"), slowdown(), "done"])

    def flaky() -> str:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert s3target.with_retries(flaky, attempts=5, sleep=waits.append) == "done"
    assert len(waits) == 3 and all(0 <= w <= 0.5 * 2 ** n for n, w in enumerate(waits))


def test_retries_give_up_on_errors_that_waiting_cannot_fix():
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "no"},
                          "ResponseMetadata": {"HTTPStatusCode": 403}}, "PutObject")
    calls = []

    def refuse() -> None:
        calls.append(1)
        raise denied

    with pytest.raises(ClientError):
        s3target.with_retries(refuse, attempts=5, sleep=lambda _s: None)
    assert len(calls) == 1

    always = itertools.count()
    with pytest.raises(ClientError):
        s3target.with_retries(lambda: (next(always), (_ for _ in ()).throw(slowdown())), attempts=3,
                              sleep=lambda _s: None)
    assert next(always) == 3
