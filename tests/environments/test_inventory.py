"""manage.py ansible_inventory: the inventory deploy_assets/ansible/deploy.yml plays on, from the environment's
hosts and its stack's outputs."""

import io
import subprocess

import pytest
import yaml
from django.core.management import CommandError, call_command

from environments import stacks
from environments.models import Host
from tests.deploy_assets.conftest import ASSETS, tool
from tests.factories import EnvironmentFactory

pytestmark = pytest.mark.django_db


def inventory(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("ansible_inventory", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_it_prints_the_stacks_instances_as_the_plays_group(moto_aws):
    environment = EnvironmentFactory(slug="production", cloudformation_stack="portal-production",
                                     cloudformation_template="environment.yaml",
                                     cloudformation_parameters={"Tier": "production", "EnvironmentName": "production"})
    stack = stacks.apply_stack(environment.pk)
    assert stack.status == "CREATE_COMPLETE", stack.error

    text, _ = inventory("--environment", "production")

    group = yaml.safe_load(text)["all"]["children"]["app_servers"]
    instance_ids = stack.outputs["InstanceIds"].split(",")
    assert sorted(group["hosts"]) == ["production-web-1", "production-web-2"]
    assert sorted(h["ec2_instance_id"] for h in group["hosts"].values()) == sorted(instance_ids)
    assert all(h["ansible_host"] for h in group["hosts"].values())
    assert group["vars"]["health_url"] == stack.outputs["HealthUrl"]
    assert group["vars"]["ansible_user"] == "ec2-user" and group["vars"]["environment_name"] == "production"


def test_ansible_reads_what_it_prints(tmp_path):
    environment = EnvironmentFactory(slug="staging")
    Host.objects.create(environment=environment, name="staging-web-1", address="192.0.2.10",
                        ec2_instance_id="i-0aaa", ec2_state="running")
    ansible_inventory = tool("ansible-inventory")
    assert ansible_inventory, "ansible-inventory comes with the `ansible` package of requirements-dev.txt"
    for form in ("yaml", "ini"):
        path = tmp_path / (f"staging.{'yml' if form == 'yaml' else 'ini'}")
        path.write_text(inventory("--environment", "staging", "--format", form)[0])
        done = subprocess.run([ansible_inventory, "-i", str(path), "--list"], capture_output=True, text=True,
                              timeout=120, check=False, cwd=ASSETS / "ansible")
        assert done.returncode == 0, done.stderr
        listed = yaml.safe_load(done.stdout)
        assert listed["app_servers"]["hosts"] == ["staging-web-1"], form
        assert listed["_meta"]["hostvars"]["staging-web-1"]["ansible_host"] == "192.0.2.10"


def test_it_leaves_out_hosts_ansible_cannot_reach_and_says_why():
    environment = EnvironmentFactory(slug="staging")
    Host.objects.create(environment=environment, name="web-1", address="192.0.2.10")
    Host.objects.create(environment=environment, name="web-2", address="192.0.2.11", ec2_instance_id="i-0bbb",
                        ec2_state="terminated")
    Host.objects.create(environment=environment, name="web-3")

    text, said = inventory("--environment", "staging")

    assert list(yaml.safe_load(text)["all"]["children"]["app_servers"]["hosts"]) == ["web-1"]
    assert said.splitlines() == ["left out web-2: instance i-0bbb is terminated", "left out web-3: no address"]


def test_it_refuses_an_unknown_environment_or_one_without_hosts():
    EnvironmentFactory(slug="staging")
    with pytest.raises(CommandError, match=r"No environment 'prod' \(there are: staging\)"):
        inventory("--environment", "prod")
    with pytest.raises(CommandError, match="staging has no host Ansible can reach"):
        inventory("--environment", "staging")
