"""Writes of an environment's CloudFormation stack: an operator's request (audited), the task that creates or updates
the stack, and the refresh that stores what AWS says (status, outputs, events) and links the stack's EC2 instances to
the environment's hosts with their state.

The refresh after an operation follows the stack until it settles: it never sleeps, it schedules itself again a few
seconds later, a bounded number of times (the operator's Refresh picks up anything slower)."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task, schedule

from deliveries.audit import audit
from environments import aws
from environments.models import Environment, Host, Stack, StackEvent

FOLLOW_SECONDS = 5
FOLLOW_ATTEMPTS = 60  # about five minutes of following; a stack that takes longer is refreshed by hand
NOT_FOUND = "not found"


class StackRefused(Exception):
    """The environment cannot have a stack operation now; the message says why."""


def configuration_problem(environment: Environment) -> str:
    """Why the environment cannot create or update its stack, or "" when it can."""
    missing = [label for label, value in (("stack name", environment.cloudformation_stack),
                                          ("template", environment.cloudformation_template)) if not value]
    if missing:
        return f"{environment} has no {' and no '.join(missing)}: an operator sets it in the admin."
    if environment.cloudformation_template not in aws.template_names():
        return f"{environment}'s template {environment.cloudformation_template} is not in deploy_assets/cloudformation."
    return ""


def request_stack_apply(*, environment: Environment, user) -> Stack:
    """An operator asks to create or update the environment's stack: recorded, audited, done by a task."""
    problem = configuration_problem(environment)
    if problem:
        raise StackRefused(problem)
    with transaction.atomic():
        stack, _ = Stack.objects.select_for_update().get_or_create(environment=environment)
        if stack.in_progress:
            raise StackRefused(f"Stack {environment.cloudformation_stack} is busy ({stack.status}): wait until it "
                               "settles, then try again.")
        stack.requested_by, stack.requested_at, stack.error = user, timezone.now(), ""
        stack.save(update_fields=["requested_by", "requested_at", "error"])
        audit(actor=user, action="stack.apply_requested", target=stack,
              data={"environment": environment.slug, "stack": environment.cloudformation_stack,
                    "template": environment.cloudformation_template,
                    "parameters": environment.cloudformation_parameters})
        transaction.on_commit(partial(async_task, "environments.tasks.apply_stack", environment.pk,
                                      task_name=f"stack of {environment.slug}"))
    return stack


def request_stack_refresh(*, environment: Environment) -> None:
    if not environment.cloudformation_stack:
        raise StackRefused(f"{environment} has no stack name: there is nothing to refresh.")
    async_task("environments.tasks.refresh_stack", environment.pk, task_name=f"refresh stack of {environment.slug}")


def apply_stack(environment_id: int) -> Stack:
    """Create or update the stack in AWS, then refresh what the portal knows of it. A refusal is stored on the stack
    in words and audited; it never raises."""
    environment = Environment.objects.get(pk=environment_id)
    stack, _ = Stack.objects.get_or_create(environment=environment)
    problem = configuration_problem(environment)
    try:
        if problem:
            raise aws.AwsError(problem)
        operation, stack_id = aws.apply_stack(
            region=environment.aws_region, stack_name=environment.cloudformation_stack,
            template_name=environment.cloudformation_template, parameters=environment.cloudformation_parameters,
        )
    except aws.AwsError as error:
        with transaction.atomic():
            stack.error = str(error)
            stack.save(update_fields=["error"])
            audit(actor=stack.requested_by, actor_label="" if stack.requested_by else "portal",
                  action="stack.no_changes" if isinstance(error, aws.NoChanges) else "stack.apply_failed",
                  target=stack, data={"environment": environment.slug, "error": str(error)})
        return stack
    with transaction.atomic():
        stack.stack_id, stack.operation, stack.error = stack_id, operation, ""
        stack.status = f"{operation.upper()}_IN_PROGRESS"
        stack.save(update_fields=["stack_id", "operation", "error", "status"])
        audit(actor=stack.requested_by, action=f"stack.{operation}_started", target=stack,
              data={"environment": environment.slug, "stack_id": stack_id})
    return refresh_stack(environment_id)


def refresh_stack(environment_id: int, attempt: int = 0) -> Stack:
    """Store the stack's status, outputs and new events, and its instances' states on the hosts; follow a stack
    still in progress. AWS being unreachable leaves the last snapshot and says so on the stack."""
    environment = Environment.objects.get(pk=environment_id)
    stack, _ = Stack.objects.get_or_create(environment=environment)
    try:
        state = aws.describe_stack(region=environment.aws_region, stack_name=environment.cloudformation_stack)
        linked = list(environment.hosts.exclude(ec2_instance_id="").values_list("ec2_instance_id", flat=True))
        instances = aws.describe_instances(region=environment.aws_region,
                                           instance_ids=[*state.instance_ids, *linked])
    except aws.AwsError as error:
        stack.error = f"Could not refresh: {error}"
        stack.save(update_fields=["error"])
        return stack
    now = timezone.now()
    with transaction.atomic():
        stack.stack_id, stack.status, stack.status_reason = state.stack_id, state.status, state.status_reason
        stack.outputs, stack.refreshed_at = state.outputs, now
        if not stack.status.endswith("_FAILED") and not stack.status.endswith("ROLLBACK_COMPLETE"):
            stack.error = ""
        stack.save()
        StackEvent.objects.bulk_create(
            [StackEvent(stack=stack, event_id=e.event_id, timestamp=e.timestamp,
                        logical_resource_id=e.logical_resource_id, resource_type=e.resource_type,
                        resource_status=e.resource_status, reason=e.reason) for e in state.events],
            ignore_conflicts=True,
        )
        link_hosts(environment, stack_instances=state.instance_ids, instances=instances, now=now)
        if stack.in_progress and attempt < FOLLOW_ATTEMPTS:
            transaction.on_commit(partial(
                schedule, "environments.tasks.refresh_stack", environment.pk, attempt + 1,
                next_run=now + timedelta(seconds=FOLLOW_SECONDS), repeats=1,
                name=f"Follow stack of {environment.slug}, attempt {attempt + 2}"))
    return stack


def link_hosts(environment: Environment, *, stack_instances: list[str], instances: dict[str, aws.Instance], now):
    """Every instance of the stack is a host of the environment (found by instance id, else by its Name tag, else
    created); every host with an instance id gets the instance's state, "not found" when EC2 no longer knows it."""
    hosts = {h.ec2_instance_id: h for h in environment.hosts.exclude(ec2_instance_id="")}
    by_name = {h.name: h for h in environment.hosts.all()}
    for instance_id in stack_instances:
        if instance_id in hosts:
            continue
        instance = instances.get(instance_id)
        name = (instance.name if instance and instance.name else instance_id)[:100]
        host = by_name.get(name)
        if host is None or host.ec2_instance_id:
            host = Host(environment=environment, name=name if host is None else f"{name[:80]} {instance_id}"[:100])
        host.ec2_instance_id = instance_id
        hosts[instance_id] = by_name[host.name] = host
    for instance_id, host in hosts.items():
        instance = instances.get(instance_id)
        host.ec2_state = instance.state if instance else NOT_FOUND
        if instance and instance.address:  # EC2's word: a stopped and started instance changes address
            host.address = instance.address[:255]
        host.ec2_state_checked_at = now
        host.save()
