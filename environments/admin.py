from django import forms
from django.contrib import admin
from django.db.models import Prefetch
from django.utils import timezone
from django.utils.html import format_html

from environments import selectors
from environments.models import AvailabilityCheck, Deployment, Environment, FreezeWindow, Host, Stack, StackEvent
from portal.admin_lists import GarbageTolerantChangeList
from portal.formats import moment


class HostInline(admin.TabularInline):
    model = Host
    extra = 0


class FreezeWindowInline(admin.TabularInline):
    model = FreezeWindow
    extra = 0


class EnvironmentForm(forms.ModelForm):
    # No Meta: the admin builds it with every field of Environment. A secret is never rendered back: the field
    # starts empty, and empty keeps the stored password.
    registry_password = forms.CharField(
        required=False, strip=False, widget=forms.PasswordInput(render_value=False),
        help_text="Password or token of the registry user. Leave empty to keep the stored one.",
    )

    def clean_registry_password(self):
        return self.cleaned_data["registry_password"] or self.instance.registry_password


@admin.register(Environment)
class EnvironmentAdmin(GarbageTolerantChangeList, admin.ModelAdmin):
    """The operators' screen: every environment, its health and what runs on it."""

    form = EnvironmentForm

    list_display = ["name", "tier", "order", "health", "deployed_now", "frozen", "requires_approval"]
    list_filter = ["tier", "requires_approval"]
    search_fields = ["name", "slug", "health_url", "docker_host_url", "hosts__name", "hosts__address"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [HostInline, FreezeWindowInline]

    def get_queryset(self, request):
        now = timezone.now()
        current = Deployment.objects.current_per_environment().select_related("project", "source_run")
        return (
            selectors.environments_with_health()
            .prefetch_related(
                Prefetch("deployments", queryset=current, to_attr="current_deployments"),
                Prefetch(
                    "freeze_windows",
                    queryset=FreezeWindow.objects.filter(starts_at__lte=now, ends_at__gt=now),
                    to_attr="active_freezes",
                ),
            )
        )

    @admin.display(description="Health")
    def health(self, obj):
        if obj.health_ok is None:
            return "—"
        label = selectors.health_state(obj.health_ok, obj.health_checked_at)  # stale: unknown, never healthy
        code = obj.health_code or "no answer"
        return format_html('<span title="{}">{} ({})</span>', moment(obj.health_checked_at), label, code)

    @admin.display(description="Deployed now")
    def deployed_now(self, obj):
        items = [
            f"{d.project.slug} {d.source_run.short_sha if d.source_run else ''}".strip()
            for d in obj.current_deployments
        ]
        return ", ".join(items) or "—"

    @admin.display(description="Frozen", boolean=True)
    def frozen(self, obj):
        return bool(obj.active_freezes)


@admin.register(Host)
class HostAdmin(GarbageTolerantChangeList, admin.ModelAdmin):
    list_display = ["name", "environment", "address", "ec2_instance_id", "ec2_state"]
    list_filter = ["environment"]
    search_fields = ["name", "address", "ec2_instance_id"]
    list_select_related = ["environment"]


@admin.register(FreezeWindow)
class FreezeWindowAdmin(GarbageTolerantChangeList, admin.ModelAdmin):
    list_display = ["environment", "starts_at", "ends_at", "reason"]
    list_filter = ["environment"]
    list_select_related = ["environment"]


@admin.register(Deployment)
class DeploymentAdmin(GarbageTolerantChangeList, admin.ModelAdmin):
    list_display = ["project", "environment", "kind", "status", "source_run", "deployer", "started_at", "finished_at"]
    list_filter = ["environment", "kind", "status", "project"]
    search_fields = ["image_digests", "step_log", "deployed_by_label"]
    date_hierarchy = "started_at"
    list_select_related = ["project", "environment", "source_run__project", "deployed_by"]
    raw_id_fields = ["source_run", "replaced", "deployed_by"]
    filter_horizontal = ["artifacts"]


@admin.register(AvailabilityCheck)
class AvailabilityCheckAdmin(GarbageTolerantChangeList, admin.ModelAdmin):
    list_display = ["environment", "project", "url", "ok", "status_code", "latency_ms", "failures_in_a_row",
                    "source", "checked_at"]
    list_filter = ["environment", "ok", "source"]
    list_select_related = ["environment", "project"]
    raw_id_fields = ["deployment", "project"]



class ReadOnlyAdmin(admin.ModelAdmin):
    """What the portal read from AWS: written by the stack's refresh, never by hand."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Stack)
class StackAdmin(ReadOnlyAdmin):
    list_display = ["environment", "status", "operation", "requested_by", "requested_at", "refreshed_at"]
    list_select_related = ["environment", "requested_by"]


@admin.register(StackEvent)
class StackEventAdmin(ReadOnlyAdmin):
    list_display = ["timestamp", "stack", "logical_resource_id", "resource_type", "resource_status"]
    list_filter = ["resource_status"]
    list_select_related = ["stack__environment"]
