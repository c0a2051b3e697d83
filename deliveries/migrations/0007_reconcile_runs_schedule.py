"""The reconciler's django-q2 Schedule (DESIGN.md "Flows" 6), created once, by name.

Schedules live in the database whatever the broker (ORM or Redis): the qcluster's scheduler reads them and
queues the task on the broker in use. Operators may change the interval in the admin (Django Q > Scheduled tasks).
"""

from django.db import migrations

NAME = "Reconcile runs with Jenkins"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.get_or_create(
        name=NAME,
        defaults={"func": "deliveries.tasks.reconcile_runs", "schedule_type": "I", "minutes": 5, "repeats": -1},
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("deliveries", "0006_run_jenkins_checked_at"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
