"""infra/template.yaml: cfn-lint and checkov pass, and the properties that keep customers' data private hold.

The checks live in tests/infra_checks.py (`problems(template)`), and each test of the real template is paired with
mutations of it (a docs/* behaviour, a public bucket, a wildcard grant...) that the checker must catch: a checker
that passes everything would otherwise go unnoticed.
"""

from __future__ import annotations

import copy
import fnmatch
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from portal.core.config import load_settings
from portal.disputes.attachments import PRIVATE_PREFIX
from tests.infra_checks import (
    TEMPLATE,
    as_list,
    branches,
    bucket_origins,
    checkov,
    checkov_problems,
    grants,
    load_template,
    problems,
    queue_problems,
    resources,
    role_problems,
    site_key,
    text,
)
from tests.tools import need


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


# --- the real template -----------------------------------------------------------------------------------------


def test_cfn_lint_passes():
    done = subprocess.run([str(need("cfn-lint")), str(TEMPLATE)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_checkov_finds_nothing_and_every_skipped_check_says_why():
    report = checkov(TEMPLATE)
    assert checkov_problems(report) == []
    assert report["summary"]["passed"] >= 80  # the template was scanned: dozens of checks apply to its resources


@pytest.mark.parametrize("weaken, expected", [
    (lambda t: t.replace("      KmsKeyId: !GetAtt LogsKey.Arn\n", "", 1), "CKV_AWS_158"),  # a plain log group
    (lambda t: re.sub(r"(- id: CKV_AWS_18\n)            comment: >-\n(?:              .*\n)+", r"\1", t, count=1),
     "CKV_AWS_18 on AWS::S3::Bucket.SiteBucket is skipped without a reason"),
], ids=["unencrypted-log-group", "skip-without-reason"])
def test_the_scan_fails_on_a_weakness_or_a_skip_without_reason(tmp_path: Path, weaken, expected):
    weak = tmp_path / "template.yaml"
    weak.write_text(weaken(TEMPLATE.read_text()))
    assert weak.read_text() != TEMPLATE.read_text()
    assert any(expected in problem for problem in checkov_problems(checkov(weak)))


def test_the_template_keeps_documents_private_and_the_bucket_closed(template):
    assert problems(template) == []


def test_pages_and_assets_come_from_the_bucket_and_everything_else_from_the_webhook(template):
    (config,) = [d["Properties"]["DistributionConfig"]
                 for d in resources(template, "AWS::CloudFront::Distribution").values()]
    s3 = bucket_origins(config)
    assert {b["PathPattern"] for b in config["CacheBehaviors"] if b["TargetOriginId"] in s3} == {"/c/*", "/assets/*"}
    assert config["DefaultCacheBehavior"]["TargetOriginId"] not in s3
    assert "POST" in config["DefaultCacheBehavior"]["AllowedMethods"]  # /pay, /stripe/events, forms
    headers = next(iter(resources(template, "AWS::CloudFront::ResponseHeadersPolicy").values()))
    security = headers["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    assert security["ReferrerPolicy"]["ReferrerPolicy"] == "no-referrer"
    assert security["FrameOptions"]["FrameOption"] == "DENY"
    assert "frame-ancestors 'none'" in security["ContentSecurityPolicy"]["ContentSecurityPolicy"]
    assert security["StrictTransportSecurity"]["AccessControlMaxAgeSec"] >= 31536000
    custom = headers["Properties"]["ResponseHeadersPolicyConfig"]["CustomHeadersConfig"]["Items"]
    assert any(h["Header"] == "X-Robots-Tag" and "noindex" in h["Value"] for h in custom)
    for behaviour in [config["DefaultCacheBehavior"], *config["CacheBehaviors"]]:
        assert behaviour.get("ResponseHeadersPolicyId")


def test_every_webhook_route_goes_to_the_webhook(template, tmp_path: Path, monkeypatch):
    """No S3 behaviour shadows a webhook route (a new route such as /question or /staff needs no change here)."""
    from tests.conftest import make_settings
    from webhook import create_app

    monkeypatch.chdir(tmp_path)
    app = create_app(make_settings(f"sqlite:///{tmp_path / 'portal.db'}"))
    config = _distribution(template)
    s3 = bucket_origins(config)
    patterns = [b["PathPattern"] for b in config["CacheBehaviors"] if b["TargetOriginId"] in s3]
    routes = {rule.rule: rule.endpoint for rule in app.url_map.iter_rules()}
    assert "/stripe/events" in routes and "/l/<token>" in routes
    for rule, endpoint in routes.items():
        if endpoint.startswith("site."):
            continue  # /c/ and /assets/ served by `portal serve` in development: S3 serves them in production
        sample = rule.replace("<path:", "<").replace("<", "x").replace(">", "")
        assert not any(fnmatch.fnmatchcase(sample, p) for p in patterns), f"{rule} is shadowed by the bucket"


def test_the_function_is_wired_as_documented(template):
    props = template["Resources"]["WebhookFunction"]["Properties"]
    assert props["Handler"] == "infra/lambda_handler.handler"
    assert props["ReservedConcurrentExecutions"] == {"Ref": "ReservedConcurrency"}
    env = props["Environment"]["Variables"]
    assert env["PORTAL_DATABASE_URL"] == {"Ref": "DatabaseUrl"}
    # The work after an event runs in the refresh worker: nothing in a thread Lambda freezes after the response.
    assert env["PORTAL_JOB_RUNNER"] == "external" and env["PORTAL_JOB_QUEUE_URL"] == {"Ref": "RefreshQueue"}
    # Instances share no memory: rate limits must be counted where all of them see the counts.
    assert env["WEBHOOK_RATE_LIMIT_BACKEND"] == "database"
    # No secret values in the template: only the secret's ARN.
    assert not {"PORTAL_SECRET_KEY", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"} & set(env)
    assert "ReservedConcurrency" in template["Parameters"]
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    filters = resources(template, "AWS::Logs::MetricFilter")
    assert len(alarms) >= 3 and any("stripe" in f["Properties"]["FilterPattern"] for f in filters.values())


def _grants(template: dict[str, Any], role: str) -> dict[str, set[str]]:
    """action -> the resources the role's policies allow it on (both sides of conditions)."""
    granted: dict[str, set[str]] = {}
    for policy in template["Resources"][role]["Properties"]["Policies"]:
        for statement in branches(as_list(policy["PolicyDocument"]["Statement"])):
            if statement.get("Effect") == "Allow":
                for action in as_list(statement["Action"]):
                    granted.setdefault(action, set()).update(text(r) for r in as_list(statement["Resource"]))
    return granted


def test_the_webhook_role_can_store_read_and_remove_dispute_attachments_where_the_code_puts_them(template):
    """Every dispute with an attachment failed on the documented deployment: the role had no access to the
    attachments' prefix. They go where the function's settings say (its target's disputes/ prefix by default),
    and CloudFront never reads them."""
    function = template["Resources"]["WebhookFunction"]
    env = function["Properties"]["Environment"]["Variables"]
    assert text(env["PORTAL_TARGET"]) == "s3://${SiteBucket}" and "PORTAL_PRIVATE_TARGET" not in env
    settings = load_settings(env={}, config_file=None, secret_key="t" * 32, target="s3://bucket-name")
    assert settings.effective_private_target == "s3://bucket-name"  # the key is disputes/<id>/<n>-<name>
    attachments = "${SiteBucket.Arn}/" + PRIVATE_PREFIX + "*"
    grants = _grants(template, function["Properties"]["Role"]["Fn::GetAtt"][0])
    for action in ("s3:PutObject", "s3:GetObject", "s3:DeleteObject"):
        assert attachments in grants.get(action, set()), action
    assert not any(attachments in resources for action, resources in grants.items()
                   if action not in ("s3:PutObject", "s3:GetObject", "s3:DeleteObject"))
    assert role_problems(template) == []  # named resources, no wildcard
    reads = [text(r) for s in _policy_statements(template) if s.get("Effect") == "Allow"
             for r in as_list(s["Resource"])]
    assert reads and not any("disputes" in arn or arn.endswith("}/*") for arn in reads)


def test_the_refresh_worker_runs_the_webhooks_code_with_the_webhooks_settings(template):
    """The worker re-renders the pages the webhook would have: same package, runtime, network, store, target, mail
    and secret; its concurrency leaves the sweep a slot the queue cannot take."""
    res = template["Resources"]
    webhook, worker = res["WebhookFunction"]["Properties"], res["RefreshWorkerFunction"]["Properties"]
    assert worker["Handler"] == "infra/worker_handler.handler"
    assert worker["Role"] == {"Fn::GetAtt": ["RefreshWorkerRole", "Arn"]}
    for key in ("Code", "Runtime", "Architectures", "VpcConfig"):
        assert worker[key] == webhook[key], key

    def portal(function: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in function["Environment"]["Variables"].items() if k.startswith("PORTAL_")}
    assert portal(worker) == portal(webhook) and portal(worker)["PORTAL_JOB_RUNNER"] == "external"
    (source,) = resources(template, "AWS::Lambda::EventSourceMapping").values()
    source = source["Properties"]
    assert source["FunctionName"] == {"Ref": "RefreshWorkerFunction"}
    assert source["BatchSize"] <= 10 and source["MaximumBatchingWindowInSeconds"] <= 1  # a payment shows in ~1 s
    # The queue may use every reserved slot but one: a throttled batch would count as a receive (DLQ after five).
    param = {"Ref": "WorkerReservedConcurrency"}
    assert worker["ReservedConcurrentExecutions"] == {"Fn::FindInMap": ["WorkerConcurrency", param, "Reserved"]}
    assert source["ScalingConfig"]["MaximumConcurrency"] == {"Fn::FindInMap": ["WorkerConcurrency", param, "Queue"]}
    table = template["Mappings"]["WorkerConcurrency"]
    assert set(template["Parameters"]["WorkerReservedConcurrency"]["AllowedValues"]) == set(table)
    assert all(row["Reserved"] == int(key) and 2 <= row["Queue"] == row["Reserved"] - 1 for key, row in table.items())


def test_only_the_worker_receives_wake_ups_and_only_the_webhook_sends_them(template):
    queue_rights = {name: {action for action, resource in grants(role) if action.startswith("sqs:")}
                    for name, role in resources(template, "AWS::IAM::Role").items()}
    assert {name: rights for name, rights in queue_rights.items() if rights} == {
        "WebhookRole": {"sqs:SendMessage"},
        "RefreshWorkerRole": {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
                              "sqs:GetQueueAttributes"}}
    assert role_problems(template) == []  # ...on RefreshQueue only


def test_the_refresh_worker_publishes_one_customer_adds_assets_and_never_touches_the_main_manifest(template):
    s3 = {(action, site_key(resource) or resource) for action, resource in grants(template["Resources"][
        "RefreshWorkerRole"]) if action.startswith("s3:")}
    assert s3 == {("s3:GetObject", "c/*"), ("s3:GetObject", "docs/*"), ("s3:GetObject", ".portal-customers/*"),
                  ("s3:GetObject", "assets/*"), ("s3:PutObject", "assets/*"),
                  ("s3:PutObject", "c/*"), ("s3:PutObject", "docs/*"), ("s3:PutObject", ".portal-customers/*"),
                  ("s3:DeleteObject", "c/*"), ("s3:DeleteObject", "docs/*"),
                  ("s3:ListBucket", '{"Fn::GetAtt": ["SiteBucket", "Arn"]}')}


def test_a_job_that_keeps_failing_is_retried_then_parked_and_alarmed_on(template):
    res = template["Resources"]
    queue, dead = res["RefreshQueue"]["Properties"], res["RefreshDeadLetterQueue"]["Properties"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] == 5 and dead["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert queue["VisibilityTimeout"] >= 6 * res["RefreshWorkerFunction"]["Properties"]["Timeout"]
    assert queue["SqsManagedSseEnabled"] is True and dead["SqsManagedSseEnabled"] is True
    assert queue_problems(template) == []  # the batch item failures, the dead-letter alarm, the sweep


# --- the checker catches what it must ----------------------------------------------------------------------------


def _distribution(t: dict[str, Any]) -> dict[str, Any]:
    return next(iter(resources(t, "AWS::CloudFront::Distribution").values()))["Properties"]["DistributionConfig"]


def _policy_statements(t: dict[str, Any]) -> list[dict[str, Any]]:
    return next(iter(resources(t, "AWS::S3::BucketPolicy").values()))["Properties"]["PolicyDocument"]["Statement"]


def _role_statements(t: dict[str, Any]) -> list[dict[str, Any]]:
    return next(iter(resources(t, "AWS::IAM::Role").values()))["Properties"]["Policies"][0]["PolicyDocument"][
        "Statement"]


def _docs_behaviour(t: dict[str, Any]) -> None:
    behaviour = copy.deepcopy(_distribution(t)["CacheBehaviors"][0])
    _distribution(t)["CacheBehaviors"].append({**behaviour, "PathPattern": "/docs/*"})


def _catch_all_behaviour(t: dict[str, Any]) -> None:
    behaviour = copy.deepcopy(_distribution(t)["CacheBehaviors"][0])
    _distribution(t)["CacheBehaviors"].insert(0, {**behaviour, "PathPattern": "*.pdf"})


def _default_to_bucket(t: dict[str, Any]) -> None:
    _distribution(t)["DefaultCacheBehavior"]["TargetOriginId"] = _distribution(t)["CacheBehaviors"][0][
        "TargetOriginId"]


def _public_block_off(t: dict[str, Any]) -> None:
    bucket = next(iter(resources(t, "AWS::S3::Bucket").values()))
    bucket["Properties"]["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] = False


def _public_read(t: dict[str, Any]) -> None:
    _policy_statements(t).append({"Sid": "Public", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                  "Resource": {"Fn::Sub": "${SiteBucket.Arn}/*"}})


def _cloudfront_reads_everything(t: dict[str, Any]) -> None:
    grant = next(s for s in _policy_statements(t) if s.get("Sid") == "CloudFrontReadsPagesAndAssets")
    grant["Resource"].append({"Fn::Sub": "${SiteBucket.Arn}/docs/*"})


def _cloudfront_without_source(t: dict[str, Any]) -> None:
    grant = next(s for s in _policy_statements(t) if s.get("Sid") == "CloudFrontReadsPagesAndAssets")
    del grant["Condition"]


def _wildcard_action(t: dict[str, Any]) -> None:
    _role_statements(t).append({"Effect": "Allow", "Action": "s3:*",
                                "Resource": {"Fn::Sub": "${SiteBucket.Arn}/c/*"}})


def _wildcard_resource(t: dict[str, Any]) -> None:
    _role_statements(t).append({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})


def _conditional_wildcard(t: dict[str, Any]) -> None:
    _role_statements(t).append({"Fn::If": ["HasVpc", {"Effect": "Allow", "Action": "ses:*", "Resource": "*"},
                                           {"Ref": "AWS::NoValue"}]})


def _whole_bucket(t: dict[str, Any]) -> None:
    _role_statements(t).append({"Effect": "Allow", "Action": "s3:PutObject",
                                "Resource": {"Fn::Sub": "${SiteBucket.Arn}/*"}})


@pytest.mark.parametrize("mutate", [_docs_behaviour, _catch_all_behaviour, _default_to_bucket, _public_block_off,
                                    _public_read, _cloudfront_reads_everything, _cloudfront_without_source,
                                    _wildcard_action, _wildcard_resource, _whole_bucket, _conditional_wildcard])
def test_the_checker_fails_when_documents_become_reachable_or_the_bucket_public(template, mutate):
    mutated = copy.deepcopy(template)
    mutate(mutated)
    assert problems(mutated), f"{mutate.__name__} went unnoticed"


def _statements_of(t: dict[str, Any], role: str) -> list[dict[str, Any]]:
    return t["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]


def _grant(role: str, action: str, resource: Any):
    def mutate(t: dict[str, Any]) -> None:
        _statements_of(t, role).append({"Effect": "Allow", "Action": action, "Resource": resource})
    mutate.__name__ = f"{role}+{action}"
    return mutate


def _pass_role_anywhere(t: dict[str, Any]) -> None:
    grant = next(s for s in _statements_of(t, "NightlyStateMachineRole") if s.get("Sid") == "PassTaskRoles")
    del grant["Condition"]


@pytest.mark.parametrize("mutate", [
    _grant("ReconcileTaskRole", "s3:GetObject", {"Fn::Sub": "${SiteBucket.Arn}/docs/*"}),
    _grant("ShardTaskRole", "s3:DeleteObject", {"Fn::Sub": "${SiteBucket.Arn}/c/*"}),
    _grant("ShardTaskRole", "s3:PutObject", {"Fn::Sub": "${SiteBucket.Arn}/.portal-manifest.json.gz"}),
    _grant("ImportTaskRole", "s3:ListBucket", {"Fn::GetAtt": ["SiteBucket", "Arn"]}),
    _grant("NightlyStateMachineRole", "s3:GetObject", {"Fn::Sub": "${SiteBucket.Arn}/c/*"}),
    _grant("ShardTaskRole", "logs:PutLogEvents", "*"),
    _grant("NightlyExecutionRole", "secretsmanager:GetSecretValue",
           {"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:*"}),
    _pass_role_anywhere,
], ids=lambda m: m.__name__)
def test_the_checker_fails_when_a_role_gets_more_than_its_commands_need(template, mutate):
    mutated = copy.deepcopy(template)
    mutate(mutated)
    assert problems(mutated), f"{mutate.__name__} went unnoticed"


def _queue_props(name: str, **changes: Any):
    def mutate(t: dict[str, Any]) -> None:
        t["Resources"][name]["Properties"].update(changes)
    mutate.__name__ = f"{name}+{','.join(changes)}"
    return mutate


def _no_batch_item_failures(t: dict[str, Any]) -> None:
    t["Resources"]["RefreshEventSource"]["Properties"]["FunctionResponseTypes"] = []


def _alarm_on_the_live_queue(t: dict[str, Any]) -> None:
    t["Resources"]["RefreshDeadLetterAlarm"]["Properties"]["Dimensions"][0]["Value"] = {
        "Fn::GetAtt": ["RefreshQueue", "QueueName"]}


def _without(name: str):
    def mutate(t: dict[str, Any]) -> None:
        del t["Resources"][name]
    mutate.__name__ = f"-{name}"
    return mutate


def _anyone_may_send(t: dict[str, Any]) -> None:
    t["Resources"]["OpenQueue"] = {"Type": "AWS::SQS::QueuePolicy", "Properties": {
        "Queues": [{"Ref": "RefreshQueue"}], "PolicyDocument": {"Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage", "Resource": "*"}]}}}


def _managed_sqs(t: dict[str, Any]) -> None:
    t["Resources"]["RefreshWorkerRole"]["Properties"]["ManagedPolicyArns"] = [
        "arn:aws:iam::aws:policy/AmazonSQSFullAccess"]


QUEUE = {"Fn::GetAtt": ["RefreshQueue", "Arn"]}
# Outside one customer's re-render: deleting the shared assets, the whole site's manifest, dispute attachments,
# deleting the customer manifests.
NOT_THE_WORKERS = [("s3:DeleteObject", "assets/*"), ("s3:GetObject", "disputes/*"),
                   ("s3:GetObject", ".portal-manifest.json.gz"), ("s3:PutObject", ".portal-manifest.json.gz"),
                   ("s3:DeleteObject", ".portal-customers/*")]


@pytest.mark.parametrize("mutate, expected", [
    (_grant("RefreshWorkerRole", "s3:*", "*"), "RefreshWorkerRole: s3:* on *: it may touch only"),
    (_grant("RefreshWorkerRole", "sqs:*", "*"), "RefreshWorkerRole: sqs:*: only the webhook sends"),
    *[(_grant("RefreshWorkerRole", action, {"Fn::Sub": "${SiteBucket.Arn}/" + key}), f"{action} on ${{SiteBucket.Arn}}/"
       f"{key}: it may touch only") for action, key in NOT_THE_WORKERS],
    (_grant("RefreshWorkerRole", "sqs:SendMessage", QUEUE), "RefreshWorkerRole: sqs:SendMessage: only the webhook"),
    (_grant("WebhookRole", "sqs:ReceiveMessage", QUEUE), "WebhookRole: sqs:ReceiveMessage: only the webhook"),
    (_grant("ShardTaskRole", "sqs:SendMessage", QUEUE), "ShardTaskRole: sqs:SendMessage: only the webhook"),
    (_grant("WebhookRole", "sqs:SendMessage", {"Fn::GetAtt": ["RefreshDeadLetterQueue", "Arn"]}),
     "the refresh queue only"),
    (_grant("RefreshSweepRole", "lambda:InvokeFunction", {"Fn::GetAtt": ["WebhookFunction", "Arn"]}),
     "the sweep's role may do more"),
    (_managed_sqs, "managed policy arn:aws:iam::aws:policy/AmazonSQSFullAccess"),
    (_anyone_may_send, "OpenQueue: a queue policy"),
    (_no_batch_item_failures, "without ReportBatchItemFailures"),
    (_alarm_on_the_live_queue, "RefreshDeadLetterQueue: no alarm"),
    (_without("RefreshDeadLetterAlarm"), "RefreshDeadLetterQueue: no alarm"),
    (_queue_props("RefreshDeadLetterAlarm", Threshold=5), "RefreshDeadLetterQueue: no alarm"),
    (_queue_props("RefreshQueue", VisibilityTimeout=60), "under six times the worker's Timeout"),
    (_queue_props("RefreshQueue", RedrivePolicy={}), "no redrive to RefreshDeadLetterQueue"),
    (_queue_props("RefreshDeadLetterQueue", MessageRetentionPeriod=345600), "kept under 14 days"),
    (_queue_props("RefreshQueue", SqsManagedSseEnabled=False), "RefreshQueue: not encrypted"),
    (_queue_props("RefreshEventSource", FunctionName={"Ref": "WebhookFunction"}), "exactly one event source"),
    (_without("RefreshSweepSchedule"), "no sweep"),
], ids=lambda m: getattr(m, "__name__", None))
def test_the_checker_keeps_the_worker_to_one_customer_and_the_queue_to_its_two_roles(template, mutate, expected):
    mutated = copy.deepcopy(template)
    mutate(mutated)
    found = problems(mutated)
    assert any(expected in problem for problem in found), f"{mutate.__name__} went unnoticed: {found}"


# --- the container's gunicorn settings -----------------------------------------------------------------------------


def test_gunicorn_config_serves_the_webhook(tmp_path: Path):
    """infra/gunicorn.conf.py as the Dockerfile uses it: the app loads (preloaded) and answers /healthz."""
    import os
    import signal
    import time
    import urllib.request

    from tests.gunicorn_server import REPO
    from tests.ports import free_port

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": "1",
           "GUNICORN_THREADS": "2", "PORTAL_SECRET_KEY": "gunicorn-config-test-secret-0123",
           "PORTAL_DATABASE_URL": f"sqlite:///{tmp_path / 'portal.db'}"}
    log = open(tmp_path / "gunicorn.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "--config", str(REPO / "infra" / "gunicorn.conf.py"),
                                "webhook:create_app()"], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (tmp_path / "gunicorn.log").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
                    assert answer.status == 200 and answer.read() == b"ok\n"
                    break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not answer"
                time.sleep(0.1)
        assert b"GET /healthz" not in (tmp_path / "gunicorn.log").read_bytes()  # no access log (tokens)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()
