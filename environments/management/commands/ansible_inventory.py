"""manage.py ansible_inventory --environment staging [--format yaml|ini]: the environment's Ansible inventory, from
its hosts and its stack's stored outputs (refresh the stack first for the newest)."""

from django.core.management.base import BaseCommand, CommandError

from environments.inventory import InventoryHost, as_ini, as_yaml, build_inventory
from environments.models import Environment, Stack


class Command(BaseCommand):
    help = "Print the Ansible inventory of an environment, built from its hosts and its CloudFormation outputs."

    def add_arguments(self, parser):
        parser.add_argument("--environment", required=True, help="the environment's slug")
        parser.add_argument("--format", choices=["yaml", "ini"], default="yaml")

    def handle(self, *args, environment, format, **options):
        found = Environment.objects.filter(slug=environment).first()
        if found is None:
            known = ", ".join(Environment.objects.values_list("slug", flat=True)) or "none"
            raise CommandError(f"No environment {environment!r} (there are: {known}).")
        stack = Stack.objects.filter(environment=found).first()
        hosts = [InventoryHost(name=h.name, address=h.address, ec2_instance_id=h.ec2_instance_id,
                               ec2_state=h.ec2_state) for h in found.hosts.all()]
        inventory, left_out = build_inventory(environment=found.slug, hosts=hosts,
                                              outputs=stack.outputs if stack else {})
        for reason in left_out:
            self.stderr.write(f"left out {reason}")
        if not inventory["all"]["children"]["app_servers"]["hosts"]:
            raise CommandError(f"{found} has no host Ansible can reach: refresh its stack, or add hosts in the admin.")
        self.stdout.write(as_yaml(inventory) if format == "yaml" else as_ini(inventory), ending="")
