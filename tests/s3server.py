"""A throwaway SeaweedFS S3 server (`weed mini`) for the tests and the benchmark.

SeaweedFS is a real S3-compatible server: it checks SigV4 signatures, presigned-URL signatures and
expiry, which moto does not. Everything binds 127.0.0.1; the server is stopped by its PID.
"""

from __future__ import annotations

import json
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.tools import need

ACCESS_KEY = "PORTALTESTACCESSKEY"
SECRET_KEY = "portal-test-secret-key-0123456789"
REGION = "us-east-1"
GRPC_OFFSET = 10000  # weed opens a gRPC port at each HTTP port + 10000


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_base_port(attempts: int = 200) -> int:
    """A base B such that B+1..B+5 and their gRPC twins are all free."""
    for _ in range(attempts):
        base = random.randrange(20000, 40000, 10)
        ports = [base + i for i in range(1, 6)]
        if all(_port_free(p) and _port_free(p + GRPC_OFFSET) for p in ports):
            return base
    raise RuntimeError("no free port range found for SeaweedFS")


class SeaweedS3:
    """`weed mini` in a temp folder. `start()` returns once a bucket can be created."""

    def __init__(self) -> None:
        self.weed = str(need("weed"))
        self.folder = Path(tempfile.mkdtemp(prefix="seaweed."))
        self.base = _free_base_port()
        self.process: subprocess.Popen | None = None

    @property
    def port(self) -> int:
        return self.base + 4

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, endpoint: str | None = None) -> dict[str, str]:
        """The AWS_* variables that point boto3's standard chain (and the aws CLI) at this server."""
        return {
            "AWS_ENDPOINT_URL_S3": endpoint or self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            # Nothing from the machine's own AWS setup, and no instance-metadata lookups (no network).
            "AWS_CONFIG_FILE": str(self.folder / "aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.folder / "aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY)

    def start(self, timeout: float = 60.0) -> SeaweedS3:
        data = self.folder / "data"
        data.mkdir()
        identities = {"identities": [{"name": "test", "credentials": [{"accessKey": ACCESS_KEY,
                                                                       "secretKey": SECRET_KEY}],
                                      "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
        config = self.folder / "s3.json"
        config.write_text(json.dumps(identities))
        b = self.base
        command = [
            self.weed, f"-logdir={self.folder}", "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-admin.ui=false", "-webdav=false", f"-master.port={b + 1}", f"-volume.port={b + 2}",
            f"-filer.port={b + 3}", f"-s3.port={b + 4}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            # The admin server listens even with its UI off, by default on a fixed port that a second
            # server (another test session, the benchmark) would also want.
            f"-admin.port={b + 5}", f"-admin.port.grpc={b + 5 + GRPC_OFFSET}",
            f"-s3.config={config}",
            # Its local sockets default to /tmp/seaweedfs-*.sock, left behind on every stop: keep them here.
            f"-filer.localSocket={self.folder / 'filer.sock'}", f"-s3.localSocket={self.folder / 's3.sock'}",
        ]
        log = open(self.folder / "stdout.log", "wb")  # noqa: SIM115 - lives as long as the server
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        import boto3
        from botocore.config import Config

        client = boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id=ACCESS_KEY,
                              aws_secret_access_key=SECRET_KEY,
                              config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=5))
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"weed exited with status {self.process.returncode}; see {self.folder}")
            try:
                client.create_bucket(Bucket="ready-probe")
                client.delete_bucket(Bucket="ready-probe")
                return
            except Exception as exc:  # noqa: BLE001 - not ready yet, whatever the reason
                last = exc
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"SeaweedFS did not become ready in {timeout:.0f} s: {last}")

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        """Stop the server by its PID and remove its files. A graceful stop (2 s) removes most of the
        sockets weed keeps in /tmp whatever its flags say; a kill would leave them all."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
        shutil.rmtree(self.folder, ignore_errors=True)


def started_or_skipped() -> Iterator[SeaweedS3]:
    """A SeaweedFS server for a fixture to yield; skipped when it cannot start, failed instead under
    PORTAL_REQUIRE_S3=1 (CI)."""
    from tests.required import running

    yield from running(lambda: SeaweedS3().start(), "SeaweedFS", "PORTAL_REQUIRE_S3")


def point_boto3_at(server: SeaweedS3, monkeypatch: Any) -> None:
    """Point boto3's standard chain at SeaweedFS, and at nothing else of this machine's AWS setup."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REQUEST_CHECKSUM_CALCULATION",
                 "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
