"""What infra/template.yaml must keep, as checks over the decoded template: documents stay private, the bucket
stays closed, each role gets only what its commands need, the refresh queue is wired so that a failed job is
retried, then parked and alarmed on; and checkov's report read as a list of problems.

A support module (tests/project/test_infra.py runs the checks on the real template and on mutations of it that
they must catch): the checks return problems rather than assert, so a mutation can show that they find one.
"""

from __future__ import annotations

import fnmatch
import json
import subprocess
from pathlib import Path
from typing import Any

from cfnlint.decode import decode

from tests.tools import need

TEMPLATE = Path(__file__).resolve().parent.parent / "infra" / "template.yaml"
# What CloudFront may serve from the bucket; everything else (docs/*, manifests) only through the webhook.
PUBLIC_PATTERNS = {"/c/*", "c/*", "/assets/*", "assets/*"}
PUBLIC_PREFIXES = ("c/", "assets/")
PRIVATE_SAMPLES = ("/docs/K3Y/0123abcd.pdf", "/.portal-manifest.json.gz", "/docs/x", "/disputes/3/1-scan.pdf")


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    decoded, matches = decode(str(path))
    assert not matches, matches
    return json.loads(json.dumps(decoded))  # plain dicts and strings: the tests mutate copies


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r.get("Type") == kind}


def text(value: Any) -> str:
    """A resource ARN as written (`!Sub "${SiteBucket.Arn}/c/*"` -> its string); other intrinsics as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
        return value["Fn::Sub"]
    return json.dumps(value, sort_keys=True)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def bucket_origins(distribution: dict[str, Any]) -> set[str]:
    """Ids of origins that are S3 buckets (an S3OriginConfig, an OAC or an S3 domain name)."""
    ids = set()
    for origin in distribution["Origins"]:
        domain = text(origin.get("DomainName", ""))
        if "S3OriginConfig" in origin or "OriginAccessControlId" in origin or "Bucket" in domain or ".s3." in domain:
            ids.add(origin["Id"])
    return ids


def distribution_problems(template: dict[str, Any]) -> list[str]:
    found = []
    for name, resource in resources(template, "AWS::CloudFront::Distribution").items():
        config = resource["Properties"]["DistributionConfig"]
        s3 = bucket_origins(config)
        default = config["DefaultCacheBehavior"]
        if default["TargetOriginId"] in s3:
            found.append(f"{name}: the default behaviour serves the bucket root (docs/* included)")
        for behaviour in config.get("CacheBehaviors", []):
            pattern = behaviour["PathPattern"]
            if behaviour["TargetOriginId"] not in s3:
                continue
            if pattern not in PUBLIC_PATTERNS:
                found.append(f"{name}: {pattern} reaches the bucket (only c/* and assets/* may)")
            for sample in PRIVATE_SAMPLES:
                if fnmatch.fnmatchcase(sample, pattern) or fnmatch.fnmatchcase(sample.lstrip("/"), pattern):
                    found.append(f"{name}: {pattern} makes {sample} reachable")
        for origin in config["Origins"]:
            if origin["Id"] in s3 and not origin.get("OriginAccessControlId"):
                found.append(f"{name}: bucket origin {origin['Id']} without Origin Access Control")
    return found


def bucket_problems(template: dict[str, Any]) -> list[str]:
    found = []
    for name, bucket in resources(template, "AWS::S3::Bucket").items():
        props = bucket.get("Properties", {})
        block = props.get("PublicAccessBlockConfiguration", {})
        for flag in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"):
            if block.get(flag) is not True:
                found.append(f"{name}: {flag} is not true")
        if props.get("VersioningConfiguration", {}).get("Status") != "Enabled":
            found.append(f"{name}: versioning is off")
        if not props.get("BucketEncryption"):
            found.append(f"{name}: no default encryption")
        if "AccessControl" in props or "WebsiteConfiguration" in props:
            found.append(f"{name}: ACLs or website hosting make it public")
    for name, policy in resources(template, "AWS::S3::BucketPolicy").items():
        statements = as_list(policy["Properties"]["PolicyDocument"]["Statement"])
        if not any(s.get("Effect") == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport")
                   in ("false", False) for s in statements):
            found.append(f"{name}: no TLS-only statement")
        for statement in statements:
            if statement.get("Effect") != "Allow":
                continue
            sid = statement.get("Sid", "?")
            principal = statement.get("Principal")
            condition = json.dumps(statement.get("Condition", {}))
            if "NotPrincipal" in statement or "NotResource" in statement or "NotAction" in statement:
                found.append(f"{name}/{sid}: Not* elements")
            everyone = principal == "*" or (isinstance(principal, dict) and "*" in as_list(principal.get("AWS", [])))
            if everyone and "AWS:SourceArn" not in condition and "aws:SourceArn" not in condition:
                found.append(f"{name}/{sid}: allows everyone without the CloudFront SourceArn condition")
            cloudfront = isinstance(principal, dict) and principal.get("Service") == "cloudfront.amazonaws.com"
            if cloudfront or everyone:
                if as_list(statement.get("Action")) != ["s3:GetObject"]:
                    found.append(f"{name}/{sid}: CloudFront may do more than s3:GetObject")
                if "AWS:SourceArn" not in condition:
                    found.append(f"{name}/{sid}: CloudFront grant without an AWS:SourceArn condition")
                for resource in as_list(statement.get("Resource")):
                    arn = text(resource)
                    if not any(arn.endswith(f"/{prefix}*") for prefix in PUBLIC_PREFIXES):
                        found.append(f"{name}/{sid}: CloudFront may read {arn} (only c/* and assets/*)")
    return found


def branches(statements: list[Any]) -> list[dict[str, Any]]:
    """Statements with both sides of a conditional one (`!If [Cond, {...}, !Ref AWS::NoValue]`) checked."""
    flat = []
    for statement in statements:
        if isinstance(statement, dict) and "Fn::If" in statement:
            flat.extend(branches([s for s in statement["Fn::If"][1:] if s != {"Ref": "AWS::NoValue"}]))
        else:
            flat.append(statement)
    return flat


# Resources a role may name with a wildcard, and why: nothing narrower exists for these actions.
ALLOWED_WILDCARDS = {
    ("NightlyExecutionRole", "RegistryLogin"): "ecr:GetAuthorizationToken is account-wide: AWS documents Resource *",
    ("NightlyStateMachineRole", "LogDelivery"): "CloudWatch Logs' log-delivery APIs take no resource: AWS documents *",
    ("NightlyStateMachineRole", "TrackTasks"): "task ids exist only at run time: narrowed to the cluster's tasks",
}
SITE_PREFIXES = ("c/", "assets/", "docs/")
# Which roles may do what to the site (tests/publish/test_nightly.py runs the commands these rights are for).
# presigned URLs; a shard HEADs objects it is unsure of; the refresh worker republishes a customer's documents
MAY_READ_DOCUMENTS = {"WebhookRole", "ShardTaskRole", "RefreshWorkerRole"}
# a re-render after a payment (the refresh worker's: the webhook publishes nothing); the reconcile, once
MAY_DELETE_SITE = {"ReconcileTaskRole", "RefreshWorkerRole"}
MAY_WRITE_MAIN_MANIFEST = {"ReconcileTaskRole"}
NO_S3 = {"ImportTaskRole", "NightlyExecutionRole", "NightlyStateMachineRole", "NightlySchedulerRole",
         "RefreshSweepRole"}
BUCKET = '{"Fn::GetAtt": ["SiteBucket", "Arn"]}'  # text() of the bucket's own ARN (s3:ListBucket's resource)
# Roles confined to a few of the site's keys, action by action (lower case: IAM ignores the case of actions): the
# refresh worker republishes one customer, so it never deletes assets/* (the nightly build's; it may add one its
# pages link to, named by its content) nor touches the main manifest (a nightly publish owns it). Anything else in
# the bucket, or another bucket, is a problem.
SITE_KEYS_ONLY = {"RefreshWorkerRole": {
    "s3:getobject": {"c/*", "docs/*", ".portal-customers/*", "assets/*"},
    "s3:putobject": {"c/*", "docs/*", ".portal-customers/*", "assets/*"},
    "s3:deleteobject": {"c/*", "docs/*"},
    "s3:listbucket": {BUCKET},
}}
# The refresh queue: the webhook sends one wake-up per job, the worker's event source mapping (its role) receives
# them. Nobody else may touch the queue, and these two only with these actions, on this queue.
QUEUE = '{"Fn::GetAtt": ["RefreshQueue", "Arn"]}'
QUEUE_RIGHTS = {
    "WebhookRole": {"sqs:sendmessage"},
    "RefreshWorkerRole": {"sqs:receivemessage", "sqs:deletemessage", "sqs:changemessagevisibility",
                          "sqs:getqueueattributes"},
}
# The one managed policy a role may have: network interfaces cannot be named in a policy of our own.
MANAGED_POLICIES = {"arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"}


def role_statements(role: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(policy name, statement) for every statement of a role's inline policies, both sides of conditionals."""
    return [(policy["PolicyName"], statement) for policy in role["Properties"].get("Policies", [])
            for statement in branches(as_list(policy["PolicyDocument"]["Statement"]))]


def grants(role: dict[str, Any]) -> set[tuple[str, str]]:
    """Every (action, resource as written) an Allow statement of the role grants."""
    return {(action, text(resource)) for _policy, statement in role_statements(role)
            if statement.get("Effect") == "Allow"
            for action in as_list(statement.get("Action", [])) for resource in as_list(statement.get("Resource", []))}


def site_key(resource: str) -> str | None:
    """The key pattern inside the site bucket an ARN names (`${SiteBucket.Arn}/c/*` -> `c/*`), else None."""
    for prefix in ("${SiteBucket.Arn}/", "arn:aws:s3:::${SiteBucket}/", "${SiteBucket}/"):
        if prefix in resource:
            return resource.split(prefix, 1)[1]
    return None


def role_problems(template: dict[str, Any]) -> list[str]:
    found = []
    for name, role in resources(template, "AWS::IAM::Role").items():
        for policy, statement in role_statements(role):
            sid = f"{name}/{policy}/{statement.get('Sid', '?')}"
            if {"NotAction", "NotResource"} & set(statement):
                found.append(f"{sid}: NotAction/NotResource")
            for action in as_list(statement.get("Action", [])):
                if "*" in action:
                    found.append(f"{sid}: wildcard action {action}")
            for resource in as_list(statement.get("Resource", [])):
                arn = text(resource)
                if arn == "*" or arn.endswith("}/*") or arn.endswith(":*:*") or arn.endswith(":*"):
                    # A log group's streams (`<log group arn>:*`) are the one accepted trailing wildcard.
                    if arn.endswith("LogGroup.Arn}:*") and statement.get("Sid") == "Logs":
                        continue
                    if (name, statement.get("Sid")) not in ALLOWED_WILDCARDS:
                        found.append(f"{sid}: wildcard resource {arn}")
            if "iam:PassRole" in as_list(statement.get("Action", [])):
                passed = statement.get("Condition", {}).get("StringEquals", {}).get("iam:PassedToService")
                if not passed:
                    found.append(f"{sid}: iam:PassRole to any service")
        for managed in branches(as_list(role["Properties"].get("ManagedPolicyArns", []))):
            for arn in as_list(managed):
                if text(arn) not in MANAGED_POLICIES:
                    found.append(f"{name}: managed policy {text(arn)} (its rights name no resource of ours)")
        found += site_problems(name, grants(role)) + confined_problems(name, grants(role))
        found += queue_right_problems(name, grants(role))
    return found


def confined_problems(name: str, granted: set[tuple[str, str]]) -> list[str]:
    """A role of SITE_KEYS_ONLY with an S3 right outside its table (another key, another bucket, another action)."""
    if name not in SITE_KEYS_ONLY:
        return []
    allowed = SITE_KEYS_ONLY[name]
    found = []
    for action, resource in granted:
        if not action.lower().startswith("s3:"):
            continue
        key = resource if resource == BUCKET else site_key(resource)
        if key not in allowed.get(action.lower(), set()):
            found.append(f"{name}: {action} on {resource}: it may touch only {sorted(allowed)} as listed")
    return found


def queue_right_problems(name: str, granted: set[tuple[str, str]]) -> list[str]:
    found = []
    for action, resource in granted:
        if not action.lower().startswith("sqs:"):
            continue
        if action.lower() not in QUEUE_RIGHTS.get(name, set()):
            found.append(f"{name}: {action}: only the webhook sends wake-ups and only the worker receives them")
        elif resource != QUEUE:
            found.append(f"{name}: {action} on {resource}: the refresh queue only")
    return found


def site_problems(name: str, granted: set[tuple[str, str]]) -> list[str]:
    found = []
    for action, resource in granted:
        key = site_key(resource)
        if not action.startswith("s3:"):
            continue
        if name in NO_S3:
            found.append(f"{name}: {action} on {resource}: this role needs no S3 at all")
        if key is None:
            continue
        if action == "s3:GetObject" and key.startswith("docs/") and name not in MAY_READ_DOCUMENTS:
            found.append(f"{name}: may read private documents ({key})")
        if action == "s3:DeleteObject" and key.startswith(SITE_PREFIXES) and name not in MAY_DELETE_SITE:
            found.append(f"{name}: may delete site objects ({key})")
        if action in ("s3:PutObject", "s3:DeleteObject") and key == ".portal-manifest.json.gz" \
                and name not in MAY_WRITE_MAIN_MANIFEST:
            found.append(f"{name}: may replace the main manifest")
    return found


def queue_problems(template: dict[str, Any]) -> list[str]:
    """The refresh queue: encrypted, a failed job retried then parked in the dead-letter queue, which an alarm
    watches; the worker reports failures per message; the sweep may only invoke the worker."""
    res = template["Resources"]
    found = []
    for name, queue in resources(template, "AWS::SQS::Queue").items():
        props = queue.get("Properties", {})
        if props.get("SqsManagedSseEnabled") is not True and not props.get("KmsMasterKeyId"):
            found.append(f"{name}: not encrypted at rest")
    for kind in ("AWS::SQS::QueuePolicy", "AWS::SQS::QueueInlinePolicy"):
        for name in resources(template, kind):
            found.append(f"{name}: a queue policy (the roles' own policies say who may send and receive)")
    queue = res.get("RefreshQueue", {}).get("Properties", {})
    dead = res.get("RefreshDeadLetterQueue", {}).get("Properties", {})
    worker = res.get("RefreshWorkerFunction", {}).get("Properties", {})
    redrive = queue.get("RedrivePolicy", {})
    if redrive.get("deadLetterTargetArn") != {"Fn::GetAtt": ["RefreshDeadLetterQueue", "Arn"]} \
            or not 1 <= int(redrive.get("maxReceiveCount", 0)) <= 10:
        found.append("RefreshQueue: no redrive to RefreshDeadLetterQueue after a few receives")
    if int(queue.get("VisibilityTimeout", 30)) < 6 * int(worker.get("Timeout", 3)):
        found.append("RefreshQueue: VisibilityTimeout under six times the worker's Timeout")
    if int(dead.get("MessageRetentionPeriod", 0)) < 14 * 24 * 3600:
        found.append("RefreshDeadLetterQueue: dead letters kept under 14 days")
    sources = [m["Properties"] for m in resources(template, "AWS::Lambda::EventSourceMapping").values()
               if m["Properties"].get("EventSourceArn") == {"Fn::GetAtt": ["RefreshQueue", "Arn"]}]
    if [s.get("FunctionName") for s in sources] != [{"Ref": "RefreshWorkerFunction"}]:
        found.append("RefreshQueue: not read by exactly one event source mapping, into RefreshWorkerFunction")
    for source in sources:
        if "ReportBatchItemFailures" not in source.get("FunctionResponseTypes", []):
            found.append("RefreshEventSource: without ReportBatchItemFailures one failed job retries its whole batch")
    found += dead_letter_alarm_problems(template) + sweep_problems(template)
    return found


def dead_letter_alarm_problems(template: dict[str, Any]) -> list[str]:
    dead = {"Fn::GetAtt": ["RefreshDeadLetterQueue", "QueueName"]}
    for alarm in resources(template, "AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        if props.get("Namespace") == "AWS/SQS" and props.get("MetricName") == "ApproximateNumberOfMessagesVisible" \
                and props.get("Dimensions") == [{"Name": "QueueName", "Value": dead}] \
                and props.get("ComparisonOperator") == "GreaterThanOrEqualToThreshold" and props.get("Threshold") == 1 \
                and props.get("AlarmActions") == {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}],
                                                             {"Ref": "AWS::NoValue"}]}:
            return []
    return ["RefreshDeadLetterQueue: no alarm on its first message (ApproximateNumberOfMessagesVisible >= 1)"]


def sweep_problems(template: dict[str, Any]) -> list[str]:
    worker = {"Fn::GetAtt": ["RefreshWorkerFunction", "Arn"]}
    sweeps = [s["Properties"] for s in resources(template, "AWS::Scheduler::Schedule").values()
              if s["Properties"]["Target"]["Arn"] == worker]
    if len(sweeps) != 1 or sweeps[0]["ScheduleExpression"] != "rate(1 minute)" \
            or json.loads(sweeps[0]["Target"]["Input"]) != {"sweep": True}:
        return ["RefreshWorkerFunction: no sweep ({\"sweep\": true}) every minute"]
    role = template["Resources"][sweeps[0]["Target"]["RoleArn"]["Fn::GetAtt"][0]]
    if grants(role) != {("lambda:InvokeFunction", text(worker))} or role["Properties"].get("ManagedPolicyArns"):
        return ["the sweep's role may do more than invoke the refresh worker"]
    return []


def problems(template: dict[str, Any]) -> list[str]:
    return (distribution_problems(template) + bucket_problems(template) + role_problems(template)
            + queue_problems(template))


def checkov(template: Path) -> dict[str, Any]:
    """checkov's JSON report of one template. --skip-download: no network, only the checks that ship with it."""
    done = subprocess.run([str(need("checkov")), "--file", str(template), "--framework", "cloudformation",
                           "--output", "json", "--skip-download", "--compact"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]  # 1: failed checks, reported below
    report = json.loads(done.stdout)
    return report[0] if isinstance(report, list) else report


def checkov_problems(report: dict[str, Any]) -> list[str]:
    """Failed checks, parsing errors, and checks skipped without a reason (checkov says 'No comment provided')."""
    summary, results = report["summary"], report["results"]
    found = [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in results.get("failed_checks", [])]
    if summary["parsing_errors"]:
        found.append(f"{summary['parsing_errors']} parsing error(s)")
    skipped = results.get("skipped_checks", [])
    assert len(skipped) == summary["skipped"]  # the report lists what it skipped
    for check in skipped:
        reason = (check.get("check_result") or {}).get("suppress_comment", "")
        if len(reason) < 60:
            found.append(f"{check['check_id']} on {check['resource']} is skipped without a reason: {reason!r}")
    return found
