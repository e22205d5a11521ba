"""infra/template.yaml: cfn-lint passes, and the properties that keep customers' data private hold.

The checks live in `problems(template)`, and each test of the real template is paired with mutations of it
(a docs/* behaviour, a public bucket, a wildcard grant...) that the checker must catch: a checker that
passes everything would otherwise go unnoticed.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode

from portal.config import load_settings
from portal.disputes import PRIVATE_PREFIX
from tests.tools import need

TEMPLATE = Path(__file__).resolve().parent.parent / "infra" / "template.yaml"
# What CloudFront may serve from the bucket; everything else (docs/*, manifests) only through the webhook.
PUBLIC_PATTERNS = {"/c/*", "c/*", "/assets/*", "assets/*"}
PUBLIC_PREFIXES = ("c/", "assets/")
PRIVATE_SAMPLES = ("/docs/K3Y/0123abcd.pdf", "/.portal-manifest.json.gz", "/docs/x", "/disputes/3/1-scan.pdf")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    decoded, matches = decode(str(TEMPLATE))
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


def role_problems(template: dict[str, Any]) -> list[str]:
    found = []
    for name, role in resources(template, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for statement in branches(as_list(policy["PolicyDocument"]["Statement"])):
                sid = f"{name}/{policy['PolicyName']}/{statement.get('Sid', '?')}"
                if {"NotAction", "NotResource"} & set(statement):
                    found.append(f"{sid}: NotAction/NotResource")
                for action in as_list(statement.get("Action", [])):
                    if "*" in action:
                        found.append(f"{sid}: wildcard action {action}")
                for resource in as_list(statement.get("Resource", [])):
                    arn = text(resource)
                    if arn == "*" or arn.endswith("}/*") or arn.endswith(":*:*") or arn.endswith(":*"):
                        # A log group's streams (`<log group arn>:*`) are the one accepted trailing wildcard.
                        if not (arn.endswith("LogGroup.Arn}:*") and statement.get("Sid") == "Logs"):
                            found.append(f"{sid}: wildcard resource {arn}")
    return found


def problems(template: dict[str, Any]) -> list[str]:
    return distribution_problems(template) + bucket_problems(template) + role_problems(template)


# --- the real template -----------------------------------------------------------------------------------------


def test_cfn_lint_passes():
    done = subprocess.run([str(need("cfn-lint")), str(TEMPLATE)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


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
    (function,) = resources(template, "AWS::Lambda::Function").values()
    props = function["Properties"]
    assert props["Handler"] == "infra/lambda_handler.handler"
    assert props["ReservedConcurrentExecutions"] == {"Ref": "ReservedConcurrency"}
    env = props["Environment"]["Variables"]
    assert env["PORTAL_DATABASE_URL"] == {"Ref": "DatabaseUrl"}
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
    (function,) = resources(template, "AWS::Lambda::Function").values()
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
