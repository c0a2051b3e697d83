import time

from django.core.management.base import BaseCommand, CommandError
from django_q.models import Success
from django_q.tasks import async_task, result


class Command(BaseCommand):
    help = "Queue a diagnostic task and wait for a qcluster worker to run it (its result shows in the admin)."

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=float, default=60.0, help="Seconds to wait for the worker")
        parser.add_argument("--cluster", default="", help="A named cluster, e.g. ingest (default: the default one)")

    def handle(self, *args, timeout, cluster, **options):
        task_id = async_task("portal.tasks.diagnostic_ping", "check_worker", task_name="diagnostic ping",
                             cluster=cluster or None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = result(task_id)
            if answer is not None:
                self.stdout.write(self.style.SUCCESS(f"Worker ran the diagnostic task {task_id}: {answer}"))
                self.stdout.write(f"The admin lists it under Django Q › {Success._meta.verbose_name_plural}.")
                return
            time.sleep(0.5)
        command = f"Q_CLUSTER_NAME={cluster} manage.py qcluster" if cluster else "manage.py qcluster"
        raise CommandError(f"No worker ran task {task_id} within {timeout:g}s: is `{command}` running?")
