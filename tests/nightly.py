"""Runs the nightly state machine of infra/template.yaml on this machine, as AWS would run it.

What runs is read from the template, not copied: the state machine's definition (Amazon States Language, with its
DefinitionSubstitutions) is walked from StartAt; each `ecs:runTask.sync` task runs its task definition's own
container command, with the container's environment, the keys its `Secrets` name (values supplied by the test,
as ECS would read them from Secrets Manager), and the state's container overrides. A Map state runs its
iterations at the same time, each in its own process, as the inline Map does.

A task's file system is simulated: its EFS mount points map to folders of this machine, and everything else under
/data (the image's WORKDIR and the user's home, where PORTAL_BUILD_DIR lives) maps to a new empty folder per task,
as a new Fargate task starts with empty ephemeral storage. Paths in commands and environment values are
translated accordingly; `sh` and `portal` are this machine's (the venv's `portal` first on PATH).

Supported, and refused loudly when the template uses anything else: Pass, Task (ecs:runTask.sync) and inline
Map states; JSONPath parameters with the intrinsics States.ArrayRange, States.StringSplit, States.Format and
States.StringToJson; CloudFormation's Ref, Fn::Sub, Fn::GetAtt, Fn::Join, Fn::Select, Fn::Split, Fn::FindInMap.
Retries are not simulated: a failed task fails the run (NightlyFailed).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RUN_TASK = "arn:aws:states:::ecs:runTask.sync"
TASK_ROOT = "/data"  # the image's WORKDIR and its user's home: the task's own (ephemeral) storage


class NightlyFailed(Exception):
    """A task exited non-zero (or timed out): the state machine's run fails here."""


# --- CloudFormation intrinsics -----------------------------------------------------------------------------------


class Resolver:
    """Resolves a template value: parameters (the test's, else their defaults), pseudo parameters, and physical
    names for resources (`names`, else the logical id; GetAtt X.Arn is `arn:X`)."""

    def __init__(self, template: dict[str, Any], parameters: dict[str, Any], names: dict[str, str]):
        self.template, self.names = template, names
        self.values: dict[str, Any] = {"AWS::Partition": "aws", "AWS::Region": "us-east-1",
                                       "AWS::AccountId": "123456789012", "AWS::StackName": "portal",
                                       "AWS::URLSuffix": "amazonaws.com"}
        for name, spec in template.get("Parameters", {}).items():
            if name in parameters:
                self.values[name] = parameters[name]
            elif "Default" in spec:
                self.values[name] = spec["Default"]

    def ref(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        if name in self.template["Resources"]:
            return self.names.get(name, name)
        raise KeyError(f"Ref {name}: no such parameter (give it a value) or resource")

    def attribute(self, name: str, attribute: str) -> str:
        if name not in self.template["Resources"]:
            raise KeyError(f"GetAtt {name}.{attribute}: no such resource")
        return f"arn:{self.names.get(name, name)}" if attribute == "Arn" else f"{name}.{attribute}"

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1 or not next(iter(value)).startswith(("Ref", "Fn::")):
            return {k: self(v) for k, v in value.items()}
        (function, argument), = value.items()
        if function == "Ref":
            return self.ref(argument)
        if function == "Fn::GetAtt":
            name, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            return self.attribute(name, attribute)
        if function == "Fn::Sub":
            text, local = (argument, {}) if isinstance(argument, str) else (argument[0], self(argument[1]))
            return re.sub(r"\$\{([^}!]+)\}", lambda m: str(self._sub_variable(m.group(1), local)), text)
        if function == "Fn::Join":
            return argument[0].join(str(v) for v in self(argument[1]))
        if function == "Fn::Select":
            return self(argument[1])[int(self(argument[0]))]
        if function == "Fn::Split":
            return self(argument[1]).split(argument[0])
        if function == "Fn::FindInMap":
            table, key, attribute = (self(a) for a in argument)
            return self.template["Mappings"][table][str(key)][attribute]
        raise NotImplementedError(f"{function} is not supported by tests/nightly.py")

    def _sub_variable(self, name: str, local: dict[str, Any]) -> Any:
        if name in local:
            return local[name]
        if "." in name and name.split(".", 1)[0] in self.template["Resources"]:
            return self.attribute(*name.split(".", 1))
        if isinstance(self.ref(name), list):
            raise ValueError(f"${{{name}}} is a list: Fn::Sub needs a string")
        return self.ref(name)


# --- Amazon States Language: paths and intrinsic functions -----------------------------------------------------

_TOKEN = re.compile(r"\s*(?:(?P<string>'(?:[^'\\]|\\.)*')|(?P<number>-?\d+(?:\.\d+)?)|(?P<function>States\.\w+)\("
                    r"|(?P<path>\$\$?(?:\.[\w]+)*)|(?P<punct>[,)]))")


def path_value(path: str, data: Any, context: dict[str, Any]) -> Any:
    """`$`, `$.a.b` (the state's input) or `$$.Map.Item.Index` (the context object)."""
    value, keys = (context, path[3:]) if path.startswith("$$.") else (data, path[2:])
    for key in filter(None, keys.split(".")):
        value = value[key]
    return value


def evaluate(expression: str, data: Any, context: dict[str, Any]) -> Any:
    """The value of a `.$` field: a path, or an intrinsic function call (nested calls included)."""
    tokens, position = [], 0
    while position < len(expression.rstrip()):
        match = _TOKEN.match(expression, position)
        if match is None:
            raise ValueError(f"cannot parse {expression!r} at {expression[position:]!r}")
        tokens.append((match.lastgroup, match.group(match.lastgroup)))
        position = match.end()
    value, rest = _expression(tokens, data, context)
    if rest:
        raise ValueError(f"trailing {rest} in {expression!r}")
    return value


def _expression(tokens: list, data: Any, context: dict[str, Any]) -> tuple[Any, list]:
    kind, text = tokens[0]
    if kind == "string":
        return re.sub(r"\\(.)", r"\1", text[1:-1]), tokens[1:]
    if kind == "number":
        return (float(text) if "." in text else int(text)), tokens[1:]
    if kind == "path":
        return path_value(text, data, context), tokens[1:]
    if kind != "function":
        raise ValueError(f"unexpected {text!r}")
    arguments, rest = [], tokens[1:]
    while rest[0] != ("punct", ")"):
        argument, rest = _expression(rest, data, context)
        arguments.append(argument)
        if rest[0] == ("punct", ","):
            rest = rest[1:]
    return _call(text, arguments), rest[1:]


def _call(function: str, arguments: list[Any]) -> Any:
    if function == "States.ArrayRange":
        first, last, step = arguments
        return list(range(first, last + 1, step))
    if function == "States.StringSplit":
        text, separators = arguments
        return [part for part in re.split("|".join(map(re.escape, separators)), text) if part]
    if function == "States.Format":
        template, *values = arguments
        parts = template.split("{}")
        if len(parts) != len(values) + 1:
            raise ValueError(f"States.Format: {len(parts) - 1} placeholders, {len(values)} values")
        return "".join(p + (str(v) if i < len(values) else "")
                       for i, (p, v) in enumerate(zip(parts, [*values, ""], strict=True)))
    if function == "States.StringToJson":
        return json.loads(arguments[0])
    raise NotImplementedError(f"{function} is not supported by tests/nightly.py")


def selected(spec: Any, data: Any, context: dict[str, Any]) -> Any:
    """Parameters / ItemSelector: fields ending in `.$` are evaluated, the others taken as written."""
    if isinstance(spec, list):
        return [selected(v, data, context) for v in spec]
    if not isinstance(spec, dict):
        return spec
    return {(k[:-2] if k.endswith(".$") else k): (evaluate(v, data, context) if k.endswith(".$")
                                                  else selected(v, data, context)) for k, v in spec.items()}


def substituted(value: Any, substitutions: dict[str, str]) -> Any:
    """DefinitionSubstitutions: `${Name}` in every string of the definition."""
    if isinstance(value, dict):
        return {k: substituted(v, substitutions) for k, v in value.items()}
    if isinstance(value, list):
        return [substituted(v, substitutions) for v in value]
    if isinstance(value, str):
        return re.sub(r"\$\{(\w+)\}", lambda m: substitutions[m.group(1)], value)
    return value


# --- the run -------------------------------------------------------------------------------------------------------


@dataclass
class TaskRun:
    """One ECS task as it ran here."""

    state: str
    task_definition: str
    command: list[str]
    environment: dict[str, str]
    returncode: int
    output: str
    started: float
    ended: float


@dataclass
class Nightly:
    """The template's state machine, ready to run against this machine's servers.

    `parameters`: template parameters (ShardCount...); `names`: physical names of resources (SiteBucket -> a
    SeaweedFS bucket); `secrets`: the secret's JSON keys; `mounts`: EFS volume name -> local folder;
    `environment`: what every task process gets besides its container's (AWS_* for SeaweedFS, PATH...).
    """

    template: dict[str, Any]
    parameters: dict[str, Any]
    names: dict[str, str]
    secrets: dict[str, str]
    mounts: dict[str, Path]
    environment: dict[str, str]
    work: Path
    runs: list[TaskRun] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.resolve = Resolver(self.template, self.parameters, self.names)
        (self.machine_name,) = [n for n, r in self.template["Resources"].items()
                                if r["Type"] == "AWS::StepFunctions::StateMachine"]
        props = self.template["Resources"][self.machine_name]["Properties"]
        substitutions = {k: str(self.resolve(v)) for k, v in props.get("DefinitionSubstitutions", {}).items()}
        self.definition = substituted(props["Definition"], substitutions)
        self._counter = 0

    def run(self, execution_input: Any = None) -> Any:
        deadline = time.monotonic() + self.definition["TimeoutSeconds"]
        return self._states(self.definition, {} if execution_input is None else execution_input, {}, deadline)

    def _states(self, machine: dict[str, Any], data: Any, context: dict[str, Any], deadline: float) -> Any:
        name = machine["StartAt"]
        while True:
            state = machine["States"][name]
            kind = state["Type"]
            if kind == "Pass":
                result = selected(state["Parameters"], data, context) if "Parameters" in state else data
            elif kind == "Task":
                result = self._task(name, state, data, context, deadline)
            elif kind == "Map":
                result = self._map(state, data, context, deadline)
            else:
                raise NotImplementedError(f"state {name}: {kind} states are not supported by tests/nightly.py")
            data = _with_result(data, result, state.get("ResultPath", "$"))
            if state.get("End"):
                return data
            name = state["Next"]

    def _map(self, state: dict[str, Any], data: Any, context: dict[str, Any], deadline: float) -> list[Any]:
        processor = state["ItemProcessor"]
        if processor.get("ProcessorConfig", {}).get("Mode", "INLINE") != "INLINE":
            raise NotImplementedError("only inline Map states are supported by tests/nightly.py")
        items = path_value(state["ItemsPath"], data, context)

        def iteration(index: int) -> Any:
            inner = {**context, "Map": {"Item": {"Index": index, "Value": items[index]}}}
            selector = state.get("ItemSelector")
            return self._states(processor, selected(selector, data, inner) if selector else items[index], inner,
                                deadline)

        width = state.get("MaxConcurrency", 0) or len(items)
        with ThreadPoolExecutor(max_workers=max(1, min(width, 40))) as pool:
            return list(pool.map(iteration, range(len(items))))

    def _task(self, name: str, state: dict[str, Any], data: Any, context: dict[str, Any], deadline: float) -> Any:
        if state["Resource"] != RUN_TASK:
            raise NotImplementedError(f"state {name}: only {RUN_TASK} tasks are supported by tests/nightly.py")
        parameters = selected(state["Parameters"], data, context)
        timeout = state.get("TimeoutSeconds") or path_value(state["TimeoutSecondsPath"], data, context)
        if not isinstance(timeout, int) or timeout <= 0:
            raise ValueError(f"state {name}: timeout {timeout!r} is not a positive number of seconds")
        return self.run_task(name, parameters, min(timeout, max(1.0, deadline - time.monotonic())))

    def run_task(self, state: str, parameters: dict[str, Any], timeout: float) -> dict[str, Any]:
        """RunTask and wait for it (.sync): the task definition's container, as ECS would start it."""
        if parameters.get("LaunchType") != "FARGATE":
            raise ValueError(f"state {state}: LaunchType must be FARGATE")
        if parameters.get("Cluster") != self.resolve({"Fn::GetAtt": ["NightlyCluster", "Arn"]}):
            raise ValueError(f"state {state}: runs in {parameters.get('Cluster')}, not the stack's cluster")
        definition_name = parameters["TaskDefinition"]
        task = self.template["Resources"][definition_name]
        assert task["Type"] == "AWS::ECS::TaskDefinition", definition_name
        props = task["Properties"]
        (container,) = props["ContainerDefinitions"]
        overrides = {o["Name"]: o for o in parameters.get("Overrides", {}).get("ContainerOverrides", [])}
        if set(overrides) - {container["Name"]}:
            raise ValueError(f"state {state}: overrides name no container of {definition_name}")
        self._counter += 1
        root = self.work / f"task-{self._counter}-{definition_name}"
        root.mkdir(parents=True)
        volumes = {v["Name"]: v for v in props.get("Volumes", [])}
        paths = {TASK_ROOT: root}
        for mount in container.get("MountPoints", []):
            assert mount["SourceVolume"] in volumes, mount
            paths[mount["ContainerPath"]] = self.mounts[mount["SourceVolume"]]
        translate = _translator(paths)

        environment = {v["Name"]: str(self.resolve(v["Value"])) for v in container.get("Environment", [])}
        for secret in container.get("Secrets", []):
            arn, key = _secret_key(self.resolve(secret["ValueFrom"]))
            if arn != self.resolve({"Ref": "SecretArn"}):
                raise ValueError(f"{definition_name}: secret {secret['Name']} comes from {arn}, not SecretArn")
            environment[secret["Name"]] = self.secrets[key]
        override = overrides.get(container["Name"], {})
        environment.update({v["Name"]: v["Value"] for v in override.get("Environment", [])})
        command = [translate(part) for part in override.get("Command") or container["Command"]]
        process_env = {**self.environment, **{k: translate(v) for k, v in environment.items()},
                       "HOME": str(root)}
        started = time.monotonic()
        try:
            done = subprocess.run(command, cwd=root, env=process_env, capture_output=True, text=True,
                                  timeout=timeout)
            returncode, output = done.returncode, done.stdout + done.stderr
        except subprocess.TimeoutExpired as exc:
            returncode, output = -1, f"timed out after {timeout:.0f} s: {exc.stdout or ''}{exc.stderr or ''}"
        run = TaskRun(state, definition_name, command, environment, returncode, output, started, time.monotonic())
        self.runs.append(run)
        if returncode != 0:
            raise NightlyFailed(f"state {state} ({definition_name}) exited {returncode}:\n{output}")
        return {"Containers": [{"Name": container["Name"], "ExitCode": 0}]}


def _with_result(data: Any, result: Any, result_path: str | None) -> Any:
    if result_path is None:
        return data
    if result_path == "$":
        return result
    raise NotImplementedError(f"ResultPath {result_path} is not supported by tests/nightly.py")


def _secret_key(value_from: str) -> tuple[str, str]:
    """`<secret arn>:<json key>::` (ECS's form for one key of a JSON secret) -> (arn, key)."""
    match = re.fullmatch(r"(.+):([A-Za-z_][A-Za-z0-9_]*)::", value_from)
    if match is None:
        raise ValueError(f"{value_from!r} does not name one key of the secret (<arn>:<KEY>::)")
    return match.group(1), match.group(2)


def _translator(paths: dict[str, Path]):
    """Rewrites the task's paths (/data/export, /data/build...) to this machine's, longest first."""
    pattern = re.compile(r"(?<![\w./-])(" + "|".join(re.escape(p) for p in sorted(paths, key=len, reverse=True))
                         + r")(?=[/\s\"']|$)")
    return lambda text: pattern.sub(lambda m: str(paths[m.group(1)]), text)


def venv_path() -> str:
    """PATH with this interpreter's bin folder first: `portal` there, as it is on the image's PATH."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "/usr/bin:/bin")])
