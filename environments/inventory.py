"""The Ansible inventory of an environment, built from what the portal knows: its hosts (linked to the stack's EC2
instances by the stack's refresh) and the stack's outputs. Pure: rows in, text out."""

from __future__ import annotations

from dataclasses import dataclass

import yaml

GROUP = "app_servers"  # the group deploy_assets/ansible/deploy.yml plays on
# Variables of deploy_assets/ansible/inventory/*.yml that do not depend on the environment.
GROUP_VARS = {"ansible_user": "ec2-user", "ansible_python_interpreter": "/usr/bin/python3", "app_name": "webapp",
              "http_port": 80}
# Instances Ansible cannot reach, ever again: left out, and said so.
GONE = {"shutting-down", "terminated", "not found"}


@dataclass(frozen=True)
class InventoryHost:
    name: str
    address: str
    ec2_instance_id: str = ""
    ec2_state: str = ""


def build_inventory(*, environment: str, hosts: list[InventoryHost], outputs: dict) -> tuple[dict, list[str]]:
    """The inventory as Ansible's YAML structure, and the hosts left out with why."""
    kept, left_out = {}, []
    for host in sorted(hosts, key=lambda h: h.name):
        if not host.address:
            left_out.append(f"{host.name}: no address")
        elif host.ec2_state in GONE:
            left_out.append(f"{host.name}: instance {host.ec2_instance_id} is {host.ec2_state}")
        else:
            kept[host.name] = {"ansible_host": host.address}
            if host.ec2_instance_id:
                kept[host.name]["ec2_instance_id"] = host.ec2_instance_id
    group_vars = {**GROUP_VARS, "environment_name": environment}
    if outputs.get("HealthUrl"):
        group_vars["health_url"] = outputs["HealthUrl"]
    return {"all": {"children": {GROUP: {"hosts": kept, "vars": group_vars}}}}, left_out


def as_yaml(inventory: dict) -> str:
    return "---\n" + yaml.safe_dump(inventory, sort_keys=False, default_flow_style=False)


def as_ini(inventory: dict) -> str:
    group = inventory["all"]["children"][GROUP]
    lines = [f"[{GROUP}]"]
    lines += [" ".join([name, *(f"{k}={v}" for k, v in values.items())]) for name, values in group["hosts"].items()]
    lines += ["", f"[{GROUP}:vars]", *(f"{k}={v}" for k, v in group["vars"].items())]
    return "\n".join(lines) + "\n"
