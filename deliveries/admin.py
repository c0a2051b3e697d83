from urllib.parse import urlsplit

from django import forms
from django.contrib import admin
from django.db import transaction
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers

from deliveries import gitlab_hooks, services
from deliveries.audit import audit
from deliveries.models import (
    Artifact,
    AuditEvent,
    GateCondition,
    GitLabHookDelivery,
    PipelineRun,
    Project,
    ProjectToken,
    Promotion,
    QualityGate,
    Stage,
    Waiver,
)
from portal.admin_lists import GarbageTolerantChangeList
from portal.pagination import CappedCountPaginator


class ReadOnlyAdmin(GarbageTolerantChangeList, admin.ModelAdmin):
    """Rows that only the portal's services write (each change audited): the admin shows them, nothing more."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ProjectTokenInline(admin.TabularInline):
    model = ProjectToken
    extra = 0
    fields = ["name", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]  # revoked by the action: audited
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False  # tokens are made by the "issue a new API token" action, which shows them once


def masked_url(url: str) -> str:
    """A webhook URL's scheme and host only: its path is the secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}/…" if parts.hostname else "…"


class ProjectAdminForm(forms.ModelForm):
    # No Meta: the admin builds it with every field of Project. The Slack webhook URL (its path is the secret) is
    # never rendered back, as environments' registry password: the field starts empty, and empty keeps it.
    slack_webhook_url = forms.URLField(
        required=False, max_length=500, assume_scheme="https", widget=forms.PasswordInput(render_value=False),
        label="Slack webhook URL", help_text="A Slack-compatible incoming webhook told of promotions. Leave empty "
                                             "to keep the stored one.",
    )
    remove_slack_webhook_url = forms.BooleanField(required=False, label="Remove the Slack webhook URL")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.slack_webhook_url:
            self.fields["slack_webhook_url"].help_text += f" Set: {masked_url(self.instance.slack_webhook_url)}"

    def clean_slack_webhook_url(self):
        if self.data.get("remove_slack_webhook_url"):
            return ""
        return self.cleaned_data["slack_webhook_url"] or self.instance.slack_webhook_url


@admin.register(Project)
class ProjectAdmin(GarbageTolerantChangeList, admin.ModelAdmin):
    form = ProjectAdminForm
    list_display = ["name", "slug", "gitlab_project_path", "jenkins_job_path", "dev_branch", "release_branch",
                    "runs_on_push", "has_gitlab_webhook_secret"]
    search_fields = ["name", "slug", "gitlab_project_path"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [ProjectTokenInline]
    actions = ["issue_token", "issue_gitlab_webhook_secret"]

    @admin.display(boolean=True, description="GitLab webhook secret")
    def has_gitlab_webhook_secret(self, project):
        return bool(project.gitlab_webhook_secret_hash)

    @admin.action(description="Issue a new GitLab webhook secret (shown once; the old one stops working)")
    def issue_gitlab_webhook_secret(self, request, queryset):
        issued = [(project, gitlab_hooks.issue_webhook_secret(project=project, user=request.user))
                  for project in queryset]
        hook_url = request.build_absolute_uri("/api/v1/hooks/gitlab/")
        return self.show_once(request, issued, title="New GitLab webhook secrets", kind="webhook secret",
                              usage=f"Set it as the Secret token of the project's webhook to {hook_url} in GitLab.")

    @admin.action(description="Issue a new API token (shown once)")
    def issue_token(self, request, queryset):
        issued = []
        for project in queryset:
            with transaction.atomic():
                row, token = ProjectToken.issue(project=project)
                audit(project=project, actor=request.user, action="token.issued", target=row,
                      data={"name": row.name, "prefix": row.prefix})
            issued.append((project, token))
        return self.show_once(request, issued, title="New API tokens", kind="token",
                              usage="Give it to Jenkins as a secret credential; prefer the Authorization: Bearer "
                                    "header to a ?token= in a URL.")

    def show_once(self, request, issued, *, title: str, kind: str, usage: str):
        """New secrets go on the page that answers the POST, and nowhere else: a message would travel in the
        (signed, not encrypted) messages cookie, and the session is stored."""
        context = {**self.admin_site.each_context(request), "title": title, "issued": issued, "opts": self.model._meta,
                   "kind": kind, "usage": usage}
        response = TemplateResponse(request, "admin/deliveries/project/secrets_issued.html", context)
        add_never_cache_headers(response)  # no copy of the page in the browser's cache either
        return response


@admin.register(ProjectToken)
class ProjectTokenAdmin(GarbageTolerantChangeList, admin.ModelAdmin):
    list_display = ["project", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["project"]
    # Revoked by the action only, which audits it; a revoked token stays (deleting it would hide who held it).
    readonly_fields = ["project", "prefix", "created_at", "last_used_at", "revoked_at"]
    fields = ["project", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        count = services.revoke_tokens(queryset, actor=request.user)
        self.message_user(request, f"Revoked {count} token(s).")


class StageInline(admin.TabularInline):
    model = Stage
    extra = 0
    fields = ["order", "name", "status", "started_at", "finished_at"]


class ArtifactInline(admin.TabularInline):
    model = Artifact
    extra = 0
    fields = ["repository", "tag", "digest", "registry"]


class BranchListFilter(admin.AllValuesFieldListFilter):
    """The branches to filter runs by, read from the newest run of each (one index probe per branch), not by a
    DISTINCT over every run."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        newest = PipelineRun.objects.latest_per_branch().order_by("branch")
        self.lookup_choices = newest.values_list("branch", flat=True).distinct()


@admin.register(PipelineRun)
class PipelineRunAdmin(GarbageTolerantChangeList, admin.ModelAdmin):
    list_display = ["__str__", "project", "branch", "short_sha", "status", "trigger", "started_at", "finished_at"]
    # each read through an index (run_status_created, ...). Dates by a filter, not a date hierarchy: the hierarchy lists
    # the months (or years) that hold runs, a DISTINCT over the whole table on every page.
    list_filter = ["status", "trigger", "project", ("branch", BranchListFilter), "created_at"]
    search_fields = ["commit_sha", "commit_title", "commit_author", "build_number"]
    list_select_related = ["project"]
    # The runs table only grows: no page of the list counts all of it.
    show_full_result_count = False
    paginator = CappedCountPaginator
    raw_id_fields = ["triggered_by"]
    inlines = [StageInline, ArtifactInline]


@admin.register(Stage)
class StageAdmin(GarbageTolerantChangeList, admin.ModelAdmin):
    list_display = ["name", "run", "order", "status", "started_at", "finished_at"]
    list_filter = ["status", "name"]
    search_fields = ["name", "log_excerpt"]
    list_select_related = ["run__project"]
    raw_id_fields = ["run"]


@admin.register(Artifact)
class ArtifactAdmin(GarbageTolerantChangeList, admin.ModelAdmin):
    list_display = ["repository", "tag", "digest", "run"]
    search_fields = ["repository", "tag", "digest"]
    list_select_related = ["run__project"]
    raw_id_fields = ["run"]


class GateConditionInline(admin.TabularInline):
    model = GateCondition
    extra = 1


@admin.register(QualityGate)
class QualityGateAdmin(GarbageTolerantChangeList, admin.ModelAdmin):
    list_display = ["project", "is_active"]
    list_select_related = ["project"]
    inlines = [GateConditionInline]

    def has_add_permission(self, request):
        return False  # every project has its gate from the start

    def has_delete_permission(self, request, obj=None):
        return False  # a gate gone would ask nothing of a promotion; switch it off (audited) instead

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        gate = form.instance
        audit(project=gate.project, actor=request.user, action="gate.changed", target=gate,
              data={"active": gate.is_active, "conditions": [str(c) for c in gate.conditions.order_by("pk")],
                    "via": "admin"})


@admin.register(GateCondition)
class GateConditionAdmin(ReadOnlyAdmin):
    """Edited with their gate (audited there)."""

    list_display = ["gate", "metric", "comparator", "threshold", "relative_to_production"]
    list_select_related = ["gate__project"]


@admin.register(Waiver)
class WaiverAdmin(ReadOnlyAdmin):
    """Waivers are granted by tech leads on the project's waiver page, audited."""

    list_display = ["identifier", "kind", "project", "owner", "expires_at"]
    list_filter = ["kind", "project"]
    search_fields = ["identifier", "reason"]
    list_select_related = ["project", "owner"]


@admin.register(Promotion)
class PromotionAdmin(ReadOnlyAdmin):
    """Read-only: no one sets approved_by or the state by hand; the promotion pages and the API decide, through
    promotions.services, which refuses the requester's own approval."""

    list_display = ["project", "source_run", "state", "requested_by", "approved_by", "mr_iid", "created_at"]
    list_filter = ["state", "project"]
    list_select_related = ["project", "source_run__project", "requested_by", "approved_by"]


@admin.register(GitLabHookDelivery)
class GitLabHookDeliveryAdmin(GarbageTolerantChangeList, admin.ModelAdmin):
    """What GitLab delivered and what the portal did with it: written by the webhook only."""

    list_display = ["received_at", "project", "event", "key", "outcome"]
    list_filter = ["event", "project"]
    search_fields = ["key", "outcome"]
    list_select_related = ["project"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "actor", "actor_label", "project", "action", "target_type", "target_id"]
    list_filter = ["action", "project"]
    search_fields = ["action", "actor_label", "target_id"]
