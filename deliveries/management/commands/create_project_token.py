from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from deliveries.audit import audit
from deliveries.models import Project, ProjectToken


class Command(BaseCommand):
    help = (
        "Issue an API token for a project and print it once, alone on stdout, for scripted setups "
        "(e.g. TOKEN=$(manage.py create_project_token shop)). Only its hash is stored."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", help="The project's slug")
        parser.add_argument("--name", default="jenkins", help="What the token is for (default: jenkins)")

    def handle(self, *args, slug, name, **options):
        name = name.strip()
        if not name or len(name) > 100:
            raise CommandError("--name must be 1 to 100 characters.")
        project = Project.objects.filter(slug=slug).first()
        if project is None:
            known = ", ".join(Project.objects.order_by("slug").values_list("slug", flat=True)[:20]) or "none"
            raise CommandError(f"No project with slug {slug!r} (known: {known}).")
        with transaction.atomic():
            row, token = ProjectToken.issue(project=project, name=name)
            audit(project=project, actor_label="manage.py create_project_token", action="token.issued", target=row,
                  data={"name": name, "prefix": row.prefix})
        self.stdout.write(token)
        self.stderr.write(f"Token dp_{row.prefix}… issued for {project.slug} ({name}); it will not be shown again.")
