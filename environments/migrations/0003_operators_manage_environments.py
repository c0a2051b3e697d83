"""Operators manage environments in the admin: environments, hosts and freeze windows; deployments and availability
checks are history, which they may read but not rewrite."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

OPERATOR_PERMISSIONS = {
    "environment": ("view", "add", "change", "delete"),
    "host": ("view", "add", "change", "delete"),
    "freezewindow": ("view", "add", "change", "delete"),
    "deployment": ("view",),
    "availabilitycheck": ("view",),
}


def codenames():
    return [f"{action}_{model}" for model, actions in OPERATOR_PERMISSIONS.items() for action in actions]


def grant(apps, schema_editor):
    # Permissions are made after all migrations on a fresh database: make this app's now.
    app_config = apps.get_app_config("environments")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    operator, _ = Group.objects.get_or_create(name="operator")
    operator.permissions.add(
        *Permission.objects.filter(content_type__app_label="environments", codename__in=codenames())
    )


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for operator in Group.objects.filter(name="operator"):
        operator.permissions.remove(
            *Permission.objects.filter(content_type__app_label="environments", codename__in=codenames())
        )


class Migration(migrations.Migration):
    dependencies = [
        ("environments", "0002_foreign_keys_covered_by_composite_indexes"),
        ("portal", "0001_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
