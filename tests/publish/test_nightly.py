"""The nightly state machine of infra/template.yaml, run here: its import, its N shard tasks in parallel and its
reconcile publish the same objects as one unsharded `portal build` and `portal publish`.

The commands, their environment and their order come from the template (tests/nightly.py reads the state
machine's definition and the task definitions); the database is one real PostgreSQL, the bucket a real
SeaweedFS server, and every step is the real `portal` command in its own process.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode

from portal.publish.manifest import REMOTE_MANIFEST, decode_manifest
from tests.conftest import TEST_SECRET
from tests.nightly import Nightly, NightlyFailed, venv_path
from tests.s3server import SeaweedS3

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"
SHARDS = 3
SITE_URL = "https://portal.example.com"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    decoded, matches = decode(str(TEMPLATE))
    assert not matches, matches
    return json.loads(json.dumps(decoded))


def tree_state(folder: Path) -> dict[str, tuple[int, str]]:
    return {p.relative_to(folder).as_posix(): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def bucket_objects(client, bucket: str) -> dict[str, tuple[bytes, str, str, str]]:
    """Every site object: key -> (bytes, sha256 metadata, content type, cache control); manifests left out."""
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", ()):
            if obj["Key"].startswith("."):
                continue
            answer = client.get_object(Bucket=bucket, Key=obj["Key"])
            found[obj["Key"]] = (answer["Body"].read(), answer["Metadata"].get("sha256", ""),
                                 answer["ContentType"], answer.get("CacheControl", ""))
    return found


def manifests(client, bucket: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=".portal-")
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", ()))


def nightly(template, tmp_path: Path, server: SeaweedS3, bucket: str, database_url: str,
            export: Path) -> Nightly:
    return Nightly(
        template,
        parameters={"ShardCount": SHARDS, "SiteUrl": SITE_URL, "TaskTimeoutSeconds": 600,
                    "SecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:portal-AbCdEf",
                    "TaskSubnetIds": ["subnet-0a", "subnet-0b"], "TaskSecurityGroupIds": ["sg-0a"],
                    "ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/ar-portal:test",
                    "ExportFileSystemId": "fs-0123", "ExportAccessPointId": "fsap-0123"},
        names={"SiteBucket": bucket},
        secrets={"PORTAL_DATABASE_URL": database_url, "PORTAL_SECRET_KEY": TEST_SECRET,
                 "STRIPE_SECRET_KEY": "sk_test_nightly"},
        mounts={"export": export},
        environment={**{k: v for k, v in os.environ.items() if not k.startswith(("PORTAL_", "STRIPE_"))},
                     **server.env(), "PATH": venv_path()},
        work=tmp_path / "tasks")


def portal(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run([str(Path(sys.executable).parent / "portal"), *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_the_nightly_state_machine_publishes_what_one_unsharded_build_publishes(
        template, export_dir: Path, tmp_path: Path, postgres, aws_env: SeaweedS3):
    database = postgres.create_database(f"nightly_{os.getpid()}")
    sharded, single = (aws_env.create_bucket(f"{name}-{os.getpid()}") for name in ("nightly", "single"))
    before = tree_state(export_dir)

    machine = nightly(template, tmp_path, aws_env, sharded, database, export_dir)
    machine.run()

    # The order of the definition: one import, N shard tasks (started together, each its own shard and its own
    # empty folder), one reconcile told the same N.
    kinds = [run.task_definition for run in machine.runs]
    assert kinds == ["ImportTaskDefinition", *["ShardTaskDefinition"] * SHARDS, "ReconcileTaskDefinition"]
    shard_runs = machine.runs[1:-1]
    assert sorted(run.environment["SHARD"] for run in shard_runs) == [f"{i}/{SHARDS}" for i in range(SHARDS)]
    assert len({run.command[-1] for run in shard_runs}) == 1  # the same command; only SHARD differs
    assert machine.runs[-1].environment["SHARD_COUNT"] == str(SHARDS)
    assert all(run.ended <= later.started for run in shard_runs for later in machine.runs[-1:])
    assert all(machine.runs[0].ended <= run.started for run in shard_runs)
    assert "imported 6 customers" in machine.runs[0].output
    assert tree_state(export_dir) == before  # the export is mounted read-only: nothing may write to it

    # The reference: one unsharded build and publish of the same export, same database, same settings.
    env = {**machine.environment, "PORTAL_DATABASE_URL": database, "PORTAL_SECRET_KEY": TEST_SECRET,
           "STRIPE_SECRET_KEY": "sk_test_nightly", "PORTAL_SITE_URL": SITE_URL,
           "PORTAL_TARGET": f"s3://{single}", "PORTAL_BUILD_DIR": str(tmp_path / "single")}
    portal("build", str(export_dir), env=env, cwd=tmp_path)
    portal("publish", env=env, cwd=tmp_path)

    client = aws_env.client()
    ours, theirs = bucket_objects(client, sharded), bucket_objects(client, single)
    assert ours and any(key.startswith("docs/") for key in ours) and any(key.startswith("c/") for key in ours)
    assert set(ours) == set(theirs)
    for key in theirs:
        assert ours[key] == theirs[key], f"{key} differs"  # bytes, sha256, content type, cache headers
    remote = [decode_manifest(client.get_object(Bucket=b, Key=REMOTE_MANIFEST)["Body"].read())
              for b in (sharded, single)]
    assert remote[0] == remote[1]
    assert manifests(client, sharded) == [REMOTE_MANIFEST]  # shard manifests and journals are gone


def test_a_shard_task_that_fails_to_build_publishes_nothing_and_fails_the_run(
        template, export_dir: Path, tmp_path: Path, postgres, aws_env: SeaweedS3):
    database = postgres.create_database(f"nightly_fail_{os.getpid()}")
    bucket = aws_env.create_bucket(f"nightly-fail-{os.getpid()}")
    machine = nightly(template, tmp_path, aws_env, bucket, database, export_dir)
    machine.run_task("Import", {"LaunchType": "FARGATE", "Cluster": "arn:NightlyCluster",
                                "TaskDefinition": "ImportTaskDefinition"}, timeout=600)
    # A shard the build refuses (an index out of range), and a task started without the state machine's SHARD.
    for environment in ([{"Name": "SHARD", "Value": f"{SHARDS}/{SHARDS}"}], []):
        with pytest.raises(NightlyFailed, match="ShardTaskDefinition"):
            machine.run_task("BuildAndPublishShard", {
                "LaunchType": "FARGATE", "Cluster": "arn:NightlyCluster", "TaskDefinition": "ShardTaskDefinition",
                "Overrides": {"ContainerOverrides": [{"Name": "portal", "Environment": environment}]}}, timeout=600)
        assert "shard" in machine.runs[-1].output.lower()
    assert manifests(aws_env.client(), bucket) == [] and bucket_objects(aws_env.client(), bucket) == {}
    # Without every shard's manifest the reconcile refuses and changes nothing.
    with pytest.raises(NightlyFailed, match="not published"):
        machine.run_task("Reconcile", {
            "LaunchType": "FARGATE", "Cluster": "arn:NightlyCluster", "TaskDefinition": "ReconcileTaskDefinition",
            "Overrides": {"ContainerOverrides": [{"Name": "portal", "Environment": [
                {"Name": "SHARD_COUNT", "Value": str(SHARDS)}]}]}}, timeout=600)
    assert manifests(aws_env.client(), bucket) == []
