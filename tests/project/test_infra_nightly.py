"""infra/template.yaml's nightly job: its shape, its limits and its alarms, read from the template.

tests/publish/test_nightly.py runs the same state machine against PostgreSQL and SeaweedFS; these tests check what a
local run cannot show: the schedule, the retries and timeouts, the alarms, and that the state machine may start
exactly the tasks its definition names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from cfnlint.decode import decode

from tests.nightly import Nightly, Resolver, evaluate, selected

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"
PARAMETERS = {"ShardCount": 4, "SiteUrl": "https://portal.example.com",
              "SecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:portal-AbCdEf",
              "TaskSubnetIds": ["subnet-0a", "subnet-0b"], "TaskSecurityGroupIds": ["sg-0a"],
              "ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/ar-portal:1.0",
              "ExportFileSystemId": "fs-0123", "ExportAccessPointId": "fsap-0123"}
DAY = 24 * 3600


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    decoded, matches = decode(str(TEMPLATE))
    assert not matches, matches
    return json.loads(json.dumps(decoded))


def machine(template: dict[str, Any], **parameters: Any) -> Nightly:
    return Nightly(template, {**PARAMETERS, **parameters}, names={}, secrets={}, mounts={}, environment={},
                   work=Path("/nonexistent"))


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def tasks(states: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every Task state, Map iterations included."""
    found = {}
    for name, state in states.items():
        if state["Type"] == "Task":
            found[name] = state
        if state["Type"] == "Map":
            found.update(tasks(state["ItemProcessor"]["States"]))
    return found


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for policy in role["Properties"]["Policies"] for s in policy["PolicyDocument"]["Statement"]]


@pytest.mark.parametrize("count", [1, 4, 40])
def test_one_import_then_every_shard_once_then_the_reconcile(template, count: int):
    run = machine(template, ShardCount=count)
    states = run.definition["States"]
    order, name = [], run.definition["StartAt"]
    while name:
        order.append(name)
        name = states[name].get("Next")
    assert order == ["Plan", "Import", "Shards", "Reconcile"] and states["Reconcile"].get("End")
    assert states["Import"]["Parameters"]["TaskDefinition"] == "ImportTaskDefinition"
    assert states["Reconcile"]["Parameters"]["TaskDefinition"] == "ReconcileTaskDefinition"

    plan = selected(states["Plan"]["Parameters"], {}, {})
    shards = states["Shards"]
    assert shards["ItemProcessor"]["ProcessorConfig"]["Mode"] == "INLINE"
    (shard_task,) = tasks(shards["ItemProcessor"]["States"]).values()
    assert shard_task["Parameters"]["TaskDefinition"] == "ShardTaskDefinition"
    items = evaluate(shards["ItemsPath"], plan, {})
    given = [selected(shards["ItemSelector"], plan, {"Map": {"Item": {"Index": i, "Value": v}}})["shard"]
             for i, v in enumerate(items)]
    assert given == [f"{i}/{count}" for i in range(count)]  # every shard exactly once, of the same N
    (reconcile_env,) = states["Reconcile"]["Parameters"]["Overrides"]["ContainerOverrides"][0]["Environment"]
    assert reconcile_env == {"Name": "SHARD_COUNT", "Value": str(count)}
    # All at once: an inline Map runs up to 40 iterations in parallel, and ShardCount allows no more.
    assert shards.get("MaxConcurrency", 0) == 0 and template["Parameters"]["ShardCount"]["MaxValue"] <= 40
    assert plan["network"]["AwsvpcConfiguration"] == {"Subnets": ["subnet-0a", "subnet-0b"],
                                                      "SecurityGroups": ["sg-0a"], "AssignPublicIp": "DISABLED"}


def test_every_task_is_timed_and_retried_with_backoff_and_the_run_ends_before_the_next_night(template):
    run = machine(template, TaskTimeoutSeconds=5400)
    plan = selected(run.definition["States"]["Plan"]["Parameters"], {}, {})
    whole = run.definition["TimeoutSeconds"]
    assert 0 < whole < DAY  # a daily schedule never starts a run while the previous one still runs
    for name, state in tasks(run.definition["States"]).items():
        timeout = state.get("TimeoutSeconds") or evaluate(state["TimeoutSecondsPath"], plan, {})
        assert timeout == 5400 and timeout < whole, name
        retriers = state["Retry"]
        # A timeout is final (a retry would run out of time again); anything else is retried, with backoff.
        assert retriers[0]["ErrorEquals"] == ["States.Timeout"] and retriers[0]["MaxAttempts"] == 0, name
        (other,) = [r for r in retriers if r["ErrorEquals"] == ["States.ALL"]]
        assert other["MaxAttempts"] >= 1 and other["IntervalSeconds"] >= 30 and other["BackoffRate"] > 1, name
        assert state.get("ResultPath", "$") is None, name  # the plan travels on to the next step


def test_a_failed_timed_out_or_late_run_raises_an_alarm(template):
    machine_ref = {"Ref": "NightlyStateMachine"}
    metrics: dict[str, dict[str, Any]] = {}
    for alarm in resources(template, "AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        stats = [m["MetricStat"]["Metric"] for m in props.get("Metrics", []) if "MetricStat" in m]
        for metric in stats or [props]:
            if metric.get("Namespace") == "AWS/States":
                assert metric["Dimensions"] == [{"Name": "StateMachineArn", "Value": machine_ref}]
                metrics[metric["MetricName"]] = props
    assert {"ExecutionsFailed", "ExecutionsAborted", "ExecutionsTimedOut", "ExecutionsSucceeded"} <= set(metrics)
    for name in ("ExecutionsFailed", "ExecutionsTimedOut"):
        assert metrics[name]["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert metrics[name]["Threshold"] == 1
    late = metrics["ExecutionsSucceeded"]
    # No success for LateAfterHours hours, counting hours without any execution (no data) as "not succeeded".
    assert late["ComparisonOperator"] == "LessThanThreshold" and late["Threshold"] == 1
    assert late["TreatMissingData"] == "breaching" and late["Period"] == 3600
    assert late["EvaluationPeriods"] == late["DatapointsToAlarm"] == {"Ref": "LateAfterHours"}
    for props in metrics.values():
        assert props["AlarmActions"] == {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}],
                                                    {"Ref": "AWS::NoValue"}]}


def test_the_schedule_starts_the_state_machine_and_may_do_nothing_else(template):
    schedule = template["Resources"]["NightlySchedule"]  # the other schedule is the refresh queue's sweep
    target = schedule["Properties"]["Target"]
    assert target["Arn"] == {"Ref": "NightlyStateMachine"}
    assert schedule["Properties"]["ScheduleExpression"] == {"Ref": "NightlyScheduleExpression"}
    role = template["Resources"][target["RoleArn"]["Fn::GetAtt"][0]]
    assert [(s["Action"], s["Resource"]) for s in statements(role)] == [("states:StartExecution", target["Arn"])]


def test_the_state_machine_may_start_exactly_the_tasks_it_names_with_their_roles(template):
    run = machine(template)
    named = {state["Parameters"]["TaskDefinition"] for state in tasks(run.definition["States"]).values()}
    assert named == {"ImportTaskDefinition", "ShardTaskDefinition", "ReconcileTaskDefinition"}
    props = template["Resources"]["NightlyStateMachine"]["Properties"]
    role = template["Resources"][props["RoleArn"]["Fn::GetAtt"][0]]
    by_sid = {s["Sid"]: s for s in statements(role)}
    assert {r["Ref"] for r in by_sid["RunTasks"]["Resource"]} == named
    assert by_sid["RunTasks"]["Condition"] == {"ArnEquals": {"ecs:cluster": {"Fn::GetAtt": ["NightlyCluster", "Arn"]}}}
    roles = {template["Resources"][t]["Properties"][key]["Fn::GetAtt"][0]
             for t in named for key in ("TaskRoleArn", "ExecutionRoleArn")}
    assert {r["Fn::GetAtt"][0] for r in by_sid["PassTaskRoles"]["Resource"]} == roles
    assert len(roles) == 4  # one execution role, and a task role per step: each with only its step's rights
    assert by_sid["PassTaskRoles"]["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}


def test_the_tasks_render_with_the_webhooks_settings_and_take_secrets_only_from_the_secret(template):
    resolve = Resolver(template, PARAMETERS, names={"SiteBucket": "site-bucket"})
    function = template["Resources"]["WebhookFunction"]["Properties"]["Environment"]["Variables"]
    for name, task in resources(template, "AWS::ECS::TaskDefinition").items():
        props = task["Properties"]
        assert props["RequiresCompatibilities"] == ["FARGATE"] and props["NetworkMode"] == "awsvpc", name
        (container,) = props["ContainerDefinitions"]
        assert container["Image"] == {"Ref": "ImageUri"}, name
        environment = {v["Name"]: resolve(v["Value"]) for v in container.get("Environment", [])}
        # A page rendered tonight must equal the webhook's re-render of it after a payment.
        for key in ("PORTAL_SITE_URL", "PORTAL_TARGET", "PORTAL_WEBHOOK_URL"):
            if key in environment:
                assert environment.get(key) == resolve(function.get(key)), f"{name}: {key}"
        assert not any(k.startswith(("STRIPE_", "PORTAL_SECRET")) or k == "PORTAL_DATABASE_URL"
                       for k in environment), f"{name}: a secret in plain environment"
        for secret in container.get("Secrets", []):
            assert resolve(secret["ValueFrom"]) == f"{PARAMETERS['SecretArn']}:{secret['Name']}::", name
    shard = template["Resources"]["ShardTaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    assert {"PORTAL_SITE_URL", "PORTAL_TARGET"} <= {v["Name"] for v in shard["Environment"]}


def test_every_log_group_is_kept_for_a_while_and_encrypted_with_the_stacks_key(template):
    resolve = Resolver(template, PARAMETERS, names={})
    groups = resources(template, "AWS::Logs::LogGroup")
    assert len(groups) == 4  # the webhook's, the refresh worker's, the nightly tasks', the state machine's
    key = template["Resources"]["LogsKey"]["Properties"]
    (logs_grant,) = [s for s in key["KeyPolicy"]["Statement"] if s["Sid"] == "LogsEncryptsTheseLogGroups"]
    allowed = set(resolve(logs_grant["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"]))
    for name, group in groups.items():
        props = group["Properties"]
        assert 30 <= props["RetentionInDays"] <= 3653, name
        assert props["KmsKeyId"] == {"Fn::GetAtt": ["LogsKey", "Arn"]}, name
        arn = f"arn:aws:logs:us-east-1:123456789012:log-group:{resolve(props['LogGroupName'])}"
        assert arn in allowed, f"{name}: the key does not let CloudWatch Logs encrypt {arn}"
    assert key["EnableKeyRotation"] is True


def test_the_template_uses_no_yaml_aliases_which_cloudformation_refuses():
    class Loader(yaml.SafeLoader):
        pass

    for tag in ("!Ref", "!Sub", "!GetAtt", "!If", "!Not", "!Equals", "!Join", "!Select", "!Split", "!FindInMap"):
        Loader.add_constructor(tag, lambda loader, node: None)
    events = list(yaml.parse(TEMPLATE.read_text(), Loader=Loader))
    assert not [e for e in events if isinstance(e, yaml.AliasEvent | yaml.events.NodeEvent) and
                getattr(e, "anchor", None)]


@pytest.mark.parametrize("uri, repository", [
    ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/ar-portal:1.4.0",
     "arn:aws:ecr:eu-west-1:123456789012:repository/ar-portal"),
    ("123456789012.dkr.ecr.us-east-1.amazonaws.com/team/ar-portal@sha256:" + "a" * 64,
     "arn:aws:ecr:us-east-1:123456789012:repository/team/ar-portal"),
    ("210987654321.dkr.ecr.ap-southeast-2.amazonaws.com/portal:latest",
     "arn:aws:ecr:ap-southeast-2:210987654321:repository/portal"),
])
def test_the_execution_role_may_pull_only_the_images_repository(template, uri: str, repository: str):
    import re

    assert re.fullmatch(template["Parameters"]["ImageUri"]["AllowedPattern"], uri)
    role = template["Resources"]["NightlyExecutionRole"]
    (pull,) = [s for s in statements(role) if s["Sid"] == "PullImage"]
    assert Resolver(template, {**PARAMETERS, "ImageUri": uri}, names={})(pull["Resource"]) == repository
