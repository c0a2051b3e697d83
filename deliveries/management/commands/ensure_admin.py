import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create the superuser named by --username if it is missing; the password comes from ADMIN_PASSWORD."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username, **options):
        password = os.environ.get("ADMIN_PASSWORD", "")
        if not password:
            raise CommandError("ADMIN_PASSWORD is not set.")
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            self.stdout.write(f"Superuser {username} already exists.")
            return
        User.objects.create_superuser(username=username, email=f"{username}@example.com", password=password)
        self.stdout.write(self.style.SUCCESS(f"Created superuser {username}."))
