import os

from django.core.management.base import BaseCommand

from deliveries import demo
from deliveries.models import Project
from promotions.demo import request_waiting_promotions
from simulators import history


class Command(BaseCommand):
    help = ("Create a realistic delivery history (idempotent). --scale large adds 10,000 runs for benchmarks, "
            "--scale huge 100,000 runs over two years (into an empty database).")

    def add_arguments(self, parser):
        parser.add_argument("--scale", choices=list(demo.SCALE_PROJECTS), default="normal")

    def handle(self, *args, scale, **options):
        # The demo users' password comes from the environment so it is never on a command line.
        result = history.seed(scale=scale, password=os.environ.get("DEMO_PASSWORD") or None)
        slugs = [seeded.slug for seeded in demo.NORMAL_PROJECTS + (demo.LARGE_PROJECTS if scale == "large" else [])]
        waiting = request_waiting_promotions(projects=list(Project.objects.filter(slug__in=slugs).order_by("slug")))
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready: {result.projects} new project(s), {result.runs} new run(s), "
                f"{result.deployments} new deployment(s), {waiting} promotion(s) requested."
            )
        )
