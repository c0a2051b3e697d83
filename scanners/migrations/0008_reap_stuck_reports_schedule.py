"""The reaper's django-q2 Schedule (DESIGN.md "Flows" 6), created once, by name.

It runs in the default cluster (not the ingestion one, which may be the one that died) on either broker, and
queues the stuck reports again on the ingestion cluster. Operators may change the interval in the admin.
"""

from django.db import migrations

NAME = "Reap reports stuck in parsing"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.get_or_create(
        name=NAME,
        defaults={"func": "scanners.tasks.reap_stuck_reports", "schedule_type": "I", "minutes": 2, "repeats": -1},
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("scanners", "0007_report_parse_attempts"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
