"""The portal's one door to AWS: boto3 clients built from settings, and the CloudFormation and EC2 calls the
environment pages need, with AWS's refusals turned into sentences.

Clients come from AWS_REGION (or the environment's own region) and AWS_ENDPOINT_URL (moto's server in tests, empty
for AWS itself); credentials from boto3's usual chain (environment variables, shared files, the instance profile).
Pointing the portal at real AWS is a matter of settings. Nothing here touches the database.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import boto3
import yaml
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError
from django.conf import settings

TEMPLATES_DIR = Path(settings.BASE_DIR) / "deploy_assets" / "cloudformation"
# The templates create IAM roles (without fixed names): CloudFormation wants that acknowledged.
CAPABILITIES = ["CAPABILITY_IAM"]
EVENTS_KEPT = 100  # newest events read per refresh
CLIENT_CONFIG = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"})


class AwsError(Exception):
    """AWS refused or could not be reached; the message says what happened in words an operator can act on."""


class NoChanges(AwsError):
    """The stack already is what the template and parameters describe."""


@dataclass(frozen=True)
class Event:
    event_id: str
    timestamp: datetime
    logical_resource_id: str
    resource_type: str
    resource_status: str
    reason: str


@dataclass(frozen=True)
class StackState:
    stack_id: str
    status: str
    status_reason: str
    outputs: dict[str, str]
    events: list[Event]  # newest first
    instance_ids: list[str]  # the stack's EC2 instances


@dataclass(frozen=True)
class Instance:
    instance_id: str
    state: str  # pending, running, stopping, stopped, shutting-down, terminated
    name: str  # its Name tag
    address: str  # public DNS name, else public IP, else private IP


def template_names() -> list[str]:
    return sorted(p.name for p in TEMPLATES_DIR.glob("*.yaml"))


def client(service: str, *, region: str = ""):
    return boto3.session.Session().client(
        service, region_name=region or settings.AWS_REGION, endpoint_url=settings.AWS_ENDPOINT_URL,
        config=CLIENT_CONFIG,
    )


@contextmanager
def speaking(what: str) -> Iterator[None]:
    """AWS's errors as AwsError with a sentence that starts with what was being done."""
    try:
        yield
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", "") or str(error)
        if "No updates are to be performed" in message:
            raise NoChanges(f"{what}: nothing to change, the stack already matches its template and parameters.") \
                from error
        if code == "AlreadyExistsException":
            raise AwsError(f"{what}: a stack of that name already exists (created elsewhere?): {message}") from error
        if code == "ValidationError":
            raise AwsError(f"{what}: CloudFormation refused it: {message}") from error
        if code in ("InvalidClientTokenId", "UnrecognizedClientException", "AuthFailure", "AccessDenied",
                    "AccessDeniedException", "ExpiredToken", "SignatureDoesNotMatch"):
            raise AwsError(f"{what}: AWS refused the portal's credentials ({code}): {message}") from error
        raise AwsError(f"{what}: AWS answered {code or 'an error'}: {message}") from error
    except NoCredentialsError as error:
        raise AwsError(f"{what}: no AWS credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give "
                       "the portal's host an instance profile).") from error
    except EndpointConnectionError as error:
        raise AwsError(f"{what}: AWS is unreachable ({error}).") from error
    except BotoCoreError as error:
        raise AwsError(f"{what}: {error}") from error


def read_template(name: str) -> str:
    if name not in template_names():
        raise AwsError(f"No template {name!r} in deploy_assets/cloudformation.")
    return (TEMPLATES_DIR / name).read_text()


class TemplateLoader(yaml.SafeLoader):
    """Reads CloudFormation's short tags (!Ref, !Sub, ...) as plain values: only the Parameters section matters."""


TemplateLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def parameter_problems(body: str, parameters: dict) -> list[str]:
    """What CloudFormation would refuse in these parameters, checked before asking it: names the template does not
    declare, values outside AllowedValues or not matching AllowedPattern."""
    declared = (yaml.load(body, Loader=TemplateLoader) or {}).get("Parameters") or {}  # noqa: S506 (SafeLoader)
    problems = []
    for name, value in sorted(parameters.items()):
        spec = declared.get(name)
        if spec is None:
            problems.append(f"{name} is not a parameter of the template (it has {', '.join(sorted(declared))})")
            continue
        text = str(value)
        allowed = [str(v) for v in spec.get("AllowedValues") or []]
        if allowed and text not in allowed:
            problems.append(f"{name}={text} is not one of {', '.join(allowed)}")
        pattern = spec.get("AllowedPattern")
        if pattern and not re.fullmatch(pattern, text):
            problems.append(f"{name}={text}: {spec.get('ConstraintDescription') or 'does not match ' + pattern}")
    return problems


def as_parameters(values: dict) -> list[dict]:
    return [{"ParameterKey": key, "ParameterValue": str(value)} for key, value in sorted(values.items())]


def find_stack(cloudformation, stack_name: str) -> dict | None:
    try:
        return cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    except ClientError as error:
        if "does not exist" in error.response.get("Error", {}).get("Message", ""):
            return None
        raise


def apply_stack(*, region: str, stack_name: str, template_name: str, parameters: dict) -> tuple[str, str]:
    """Create the stack, or update it when it exists. Returns (operation, stack id). Raises NoChanges when the
    stack already has this template and these parameters, AwsError for anything AWS refuses."""
    body = read_template(template_name)
    problems = parameter_problems(body, parameters)
    if problems:
        raise AwsError(f"Stack {stack_name}: the parameters do not fit {template_name}: {'; '.join(problems)}.")
    with speaking(f"Stack {stack_name}"):
        cloudformation = client("cloudformation", region=region)
        existing = find_stack(cloudformation, stack_name)
        arguments = {"StackName": stack_name, "TemplateBody": body, "Parameters": as_parameters(parameters),
                     "Capabilities": CAPABILITIES}
        if existing is None:
            return "create", cloudformation.create_stack(**arguments)["StackId"]
        if existing["StackStatus"].endswith("_IN_PROGRESS"):
            raise AwsError(f"Stack {stack_name} is busy ({existing['StackStatus']}): try again once it settles.")
        current = cloudformation.get_template(StackName=stack_name)["TemplateBody"]
        given = {p["ParameterKey"]: p["ParameterValue"] for p in existing.get("Parameters", [])}
        wanted = {p["ParameterKey"]: p["ParameterValue"] for p in arguments["Parameters"]}
        # Parameters left out keep their defaults: compare only those given. (AWS says the same; moto does not.)
        if current == body and all(given.get(k) == v for k, v in wanted.items()):
            raise NoChanges(f"Stack {stack_name}: nothing to change, the stack already matches its template and "
                            "parameters.")
        return "update", cloudformation.update_stack(**arguments)["StackId"]


def describe_stack(*, region: str, stack_name: str) -> StackState:
    with speaking(f"Stack {stack_name}"):
        cloudformation = client("cloudformation", region=region)
        stack = find_stack(cloudformation, stack_name)
        if stack is None:
            raise AwsError(f"Stack {stack_name} does not exist in {region or settings.AWS_REGION}.")
        events = cloudformation.describe_stack_events(StackName=stack_name)["StackEvents"][:EVENTS_KEPT]
        resources = cloudformation.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
    return StackState(
        stack_id=stack["StackId"],
        status=stack["StackStatus"],
        status_reason=stack.get("StackStatusReason", "") or "",
        outputs={o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs", [])},
        events=[
            Event(event_id=e["EventId"], timestamp=e["Timestamp"], logical_resource_id=e["LogicalResourceId"],
                  resource_type=e.get("ResourceType", ""), resource_status=e.get("ResourceStatus", ""),
                  reason=e.get("ResourceStatusReason", "") or "")
            for e in events
        ],
        instance_ids=[r["PhysicalResourceId"] for r in resources
                      if r["ResourceType"] == "AWS::EC2::Instance" and r.get("PhysicalResourceId")],
    )


def describe_instances(*, region: str, instance_ids: list[str]) -> dict[str, Instance]:
    """The instances EC2 knows among these ids (an unknown id is simply absent)."""
    if not instance_ids:
        return {}
    found: dict[str, Instance] = {}
    with speaking("EC2 instances"):
        pages = client("ec2", region=region).get_paginator("describe_instances").paginate(
            Filters=[{"Name": "instance-id", "Values": sorted(set(instance_ids))}])
        for page in pages:
            for reservation in page["Reservations"]:
                for item in reservation["Instances"]:
                    tags = {t["Key"]: t["Value"] for t in item.get("Tags", [])}
                    found[item["InstanceId"]] = Instance(
                        instance_id=item["InstanceId"], state=item["State"]["Name"], name=tags.get("Name", ""),
                        address=item.get("PublicDnsName") or item.get("PublicIpAddress")
                        or item.get("PrivateIpAddress") or "",
                    )
    return found
