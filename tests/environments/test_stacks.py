"""An environment's CloudFormation stack against moto's server over HTTP: created from the real template, updated,
its events and outputs shown, its EC2 instances linked to the hosts with their state, and AWS's refusals in words."""

from html import escape

import boto3
import pytest
from botocore.exceptions import ClientError
from django.core.exceptions import ValidationError
from django.urls import reverse

from deliveries.models import AuditEvent
from environments import aws, stacks
from environments.models import Host, Stack
from tests.factories import EnvironmentFactory

pytestmark = pytest.mark.django_db

TEMPLATE = "environment.yaml"


@pytest.fixture
def staging(moto_aws):
    return EnvironmentFactory(slug="staging", aws_region="eu-west-1", cloudformation_stack="portal-staging",
                              cloudformation_template=TEMPLATE,
                              cloudformation_parameters={"Tier": "staging", "EnvironmentName": "staging"})


def apply_through_the_page(client, user, environment, django_capture_on_commit_callbacks):
    client.force_login(user)
    url = reverse("environment-stack-apply", args=[environment.slug])
    confirmation = client.get(url)
    assert confirmation.status_code == 200 and b"portal-staging" in confirmation.content
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url)
    assert response.status_code == 302 and response.url == reverse("environment-stack", args=[environment.slug])
    return client.get(response.url)


def test_it_creates_the_stack_from_the_real_template_and_shows_its_events(
        client, users, staging, moto_aws, django_capture_on_commit_callbacks):
    page = apply_through_the_page(client, users.operator, staging, django_capture_on_commit_callbacks)

    stack = Stack.objects.get(environment=staging)
    assert (stack.operation, stack.status, stack.error) == ("create", "CREATE_COMPLETE", "")
    real = boto3.client("cloudformation", region_name="eu-west-1", endpoint_url=moto_aws).describe_stacks(
        StackName="portal-staging")["Stacks"][0]
    assert stack.stack_id == real["StackId"]
    assert set(stack.outputs) >= {"InstanceIds", "HealthUrl", "SecurityGroupId"}
    text = page.content.decode()
    # moto reports the stack's own events (AWS adds one per resource): each is stored once and shown
    assert list(stack.events.values_list("logical_resource_id", "resource_status")) == [
        ("portal-staging", "CREATE_COMPLETE"), ("portal-staging", "CREATE_IN_PROGRESS")]
    assert page.status_code == 200 and "CREATE_COMPLETE" in text and "AWS::CloudFormation::Stack" in text
    assert stack.outputs["InstanceIds"] in text
    (host,) = Host.objects.filter(environment=staging)
    assert (host.name, host.ec2_instance_id, host.ec2_state) == ("staging-web-1", stack.outputs["InstanceIds"],
                                                                 "running")
    actions = list(AuditEvent.objects.filter(target_type="stack").order_by("pk")
                   .values_list("action", "actor__username"))
    assert actions == [("stack.apply_requested", "ops"), ("stack.create_started", "ops")]


def test_it_updates_the_stack_and_keeps_the_earlier_events(
        client, users, staging, moto_aws, django_capture_on_commit_callbacks):
    apply_through_the_page(client, users.operator, staging, django_capture_on_commit_callbacks)
    created_events = Stack.objects.get(environment=staging).events.count()
    staging.cloudformation_parameters = {**staging.cloudformation_parameters, "HttpCidr": "10.0.0.0/8"}
    staging.save()

    page = apply_through_the_page(client, users.operator, staging, django_capture_on_commit_callbacks)

    stack = Stack.objects.get(environment=staging)
    assert (stack.operation, stack.status) == ("update", "UPDATE_COMPLETE")
    assert stack.events.count() > created_events
    assert stack.events.filter(resource_status="CREATE_COMPLETE").exists()
    assert "UPDATE_COMPLETE" in page.content.decode()
    assert Host.objects.filter(environment=staging).count() == 1
    real = boto3.client("cloudformation", region_name="eu-west-1", endpoint_url=moto_aws)
    parameters = real.describe_stacks(StackName="portal-staging")["Stacks"][0]["Parameters"]
    assert {"ParameterKey": "HttpCidr", "ParameterValue": "10.0.0.0/8"} in parameters


def test_it_says_when_there_is_nothing_to_change(client, users, staging, django_capture_on_commit_callbacks):
    apply_through_the_page(client, users.operator, staging, django_capture_on_commit_callbacks)
    page = apply_through_the_page(client, users.operator, staging, django_capture_on_commit_callbacks)

    stack = Stack.objects.get(environment=staging)
    assert stack.status == "CREATE_COMPLETE" and "nothing to change" in stack.error
    assert "nothing to change" in page.content.decode()
    assert AuditEvent.objects.filter(action="stack.no_changes").count() == 1


def test_it_says_which_parameters_cloudformation_would_refuse(client, users, staging, moto_aws,
                                                              django_capture_on_commit_callbacks):
    staging.cloudformation_parameters = {"Tier": "qa", "SshCidr": "everyone", "Colour": "blue"}
    staging.save()
    page = apply_through_the_page(client, users.operator, staging, django_capture_on_commit_callbacks)

    error = Stack.objects.get(environment=staging).error
    assert "Tier=qa is not one of staging, production" in error
    assert "SshCidr=everyone: an IPv4 CIDR block" in error and "Colour is not a parameter" in error
    assert "Colour is not a parameter" in page.content.decode()
    assert AuditEvent.objects.filter(action="stack.apply_failed").exists()
    cloudformation = boto3.client("cloudformation", region_name="eu-west-1", endpoint_url=moto_aws)
    assert cloudformation.describe_stacks()["Stacks"] == []


def test_it_passes_on_what_cloudformation_refuses(staging):
    staging.cloudformation_parameters = {"SshCidr": "999.1.1.1/99"}  # fits the pattern, not a network
    staging.save()
    stacks.request_stack_apply(environment=staging, user=None)
    stack = stacks.apply_stack(staging.pk)
    assert stack.error.startswith("Stack portal-staging: AWS answered InvalidParameterValue")


def test_it_says_when_aws_is_unreachable_and_keeps_the_page(client, users, staging, settings,
                                                            django_capture_on_commit_callbacks):
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        settings.AWS_ENDPOINT_URL = f"http://127.0.0.1:{closed.getsockname()[1]}"
        page = apply_through_the_page(client, users.operator, staging, django_capture_on_commit_callbacks)

    assert page.status_code == 200
    error = Stack.objects.get(environment=staging).error
    assert "AWS is unreachable" in error and escape(error) in page.content.decode()


def test_it_shows_the_instances_state_on_the_hosts(client, users, staging, moto_aws,
                                                    django_capture_on_commit_callbacks):
    named = Host.objects.create(environment=staging, name="staging-web-1", address="192.0.2.10")
    gone = Host.objects.create(environment=staging, name="old", ec2_instance_id="i-0123456789abcdef0")
    apply_through_the_page(client, users.operator, staging, django_capture_on_commit_callbacks)
    named.refresh_from_db()
    assert named.ec2_instance_id.startswith("i-") and named.ec2_state == "running"  # linked, not duplicated

    ec2 = boto3.client("ec2", region_name="eu-west-1", endpoint_url=moto_aws)
    ec2.stop_instances(InstanceIds=[named.ec2_instance_id])
    client.force_login(users.operator)
    response = client.post(reverse("environment-stack-refresh", args=[staging.slug]))
    assert response.status_code == 302

    named.refresh_from_db()
    gone.refresh_from_db()
    assert (named.ec2_state, gone.ec2_state) == ("stopped", "not found")
    page = client.get(reverse("environment-stack", args=[staging.slug])).content.decode()
    assert "stopped" in page and "not found" in page
    assert Host.objects.filter(environment=staging).count() == 2


def test_it_lets_every_role_read_and_only_operators_act(client, users, staging):
    page, apply = (reverse(name, args=[staging.slug]) for name in ("environment-stack", "environment-stack-apply"))
    client.force_login(users.developer)
    assert client.get(page).status_code == 200
    assert b"Create the stack" not in client.get(page).content
    assert client.get(apply).status_code == 403 and client.post(apply).status_code == 403
    assert client.post(reverse("environment-stack-refresh", args=[staging.slug])).status_code == 403
    client.force_login(users.outsider)
    assert client.get(page).status_code == 403
    assert not Stack.objects.exists()


def test_it_refuses_an_environment_without_a_stack_configured(client, users, moto_aws):
    bare = EnvironmentFactory(slug="qa")
    client.force_login(users.operator)
    response = client.post(reverse("environment-stack-apply", args=[bare.slug]))
    assert response.status_code == 409
    assert "qa has no stack name and no template: an operator sets it in the admin." in response.content.decode()
    assert not AuditEvent.objects.exists()


def test_it_shows_the_stack_page_in_a_fixed_number_of_queries(client, users, staging,
                                                               django_capture_on_commit_callbacks,
                                                               django_assert_max_num_queries):
    apply_through_the_page(client, users.operator, staging, django_capture_on_commit_callbacks)
    with django_assert_max_num_queries(8):
        assert client.get(reverse("environment-stack", args=[staging.slug])).status_code == 200


def test_it_refuses_templates_and_parameters_it_cannot_use():
    environment = EnvironmentFactory.build(slug="x", name="x", cloudformation_template="../../etc/passwd",
                                           cloudformation_parameters=["Tier"])
    with pytest.raises(ValidationError) as refused:
        environment.full_clean()
    assert set(refused.value.message_dict) == {"cloudformation_template", "cloudformation_parameters"}


def test_it_turns_aws_errors_into_sentences():
    def refused(code, message):
        return ClientError({"Error": {"Code": code, "Message": message}}, "CreateStack")

    cases = [
        (refused("AlreadyExistsException", "Stack s already exists"), "a stack of that name already exists"),
        (refused("ValidationError", "No updates are to be performed."), "nothing to change"),
        (refused("ValidationError", "Template format error"), "CloudFormation refused it: Template format error"),
        (refused("InvalidClientTokenId", "bad"), "AWS refused the portal's credentials"),
    ]
    for error, words in cases:
        with pytest.raises(aws.AwsError, match=words), aws.speaking("Stack s"):
            raise error


def test_it_follows_a_stack_in_progress_without_waiting_and_refuses_to_start_another(
        client, users, staging, monkeypatch, django_capture_on_commit_callbacks):
    """AWS takes minutes where moto answers at once: the refresh schedules itself again, a bounded number of times."""
    from django.utils import timezone
    from django_q.models import Schedule

    busy = aws.StackState(stack_id="arn:stack/portal-staging/1", status="UPDATE_IN_PROGRESS", status_reason="",
                          outputs={}, events=[aws.Event("e-1", timezone.now(), "WebInstance1", "AWS::EC2::Instance",
                                                        "UPDATE_IN_PROGRESS", "")], instance_ids=[])
    monkeypatch.setattr(aws, "describe_stack", lambda **kwargs: busy)
    with django_capture_on_commit_callbacks(execute=True):
        stacks.refresh_stack(staging.pk)
    (follow,) = Schedule.objects.filter(func="environments.tasks.refresh_stack")
    assert follow.args == f"({staging.pk}, 1)" and follow.repeats == 1 and follow.next_run > timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        stacks.refresh_stack(staging.pk, stacks.FOLLOW_ATTEMPTS)
    assert Schedule.objects.filter(func="environments.tasks.refresh_stack").count() == 1  # gives up, by hand now

    client.force_login(users.operator)
    response = client.post(reverse("environment-stack-apply", args=[staging.slug]))
    assert response.status_code == 409 and "is busy (UPDATE_IN_PROGRESS)" in response.content.decode()
    assert not AuditEvent.objects.filter(action="stack.apply_requested").exists()


def test_the_demos_stacks_fit_their_template():
    from deliveries.demo import ensure_environments

    configured = [e for e in ensure_environments().values() if e.cloudformation_template]
    assert sorted(e.slug for e in configured) == ["production", "staging"]
    for environment in configured:
        environment.full_clean()
        body = aws.read_template(environment.cloudformation_template)
        assert aws.parameter_problems(body, environment.cloudformation_parameters) == []
