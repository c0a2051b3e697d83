"""The availability checks' django-q2 Schedule (DESIGN.md "Flows" 6), created once, by name.

It runs every minute; the task probes only what has not been checked for AVAILABILITY_CHECK_INTERVAL_MINUTES, so the
setting alone decides how often a health URL is probed.
"""

from django.db import migrations

NAME = "Check availability"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.get_or_create(
        name=NAME,
        defaults={"func": "environments.tasks.check_availability_due", "schedule_type": "I", "minutes": 1,
                  "repeats": -1},
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("environments", "0005_operations_freeze_override_and_checks_per_project"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
