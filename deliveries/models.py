import functools
import hashlib
import hmac
import secrets

from django.conf import settings
from django.db import connection, models
from django.urls import reverse
from django.utils import timezone

from portal.formats import moment
from portal.newest import newest_per_key


class Project(models.Model):
    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    gitlab_project_path = models.CharField(max_length=255, blank=True, help_text="group/project on GitLab")
    repository_url = models.URLField(blank=True)
    jenkins_job_path = models.CharField(max_length=255, blank=True, help_text="folder/job on Jenkins")
    dev_branch = models.CharField(max_length=100, default="dev")
    release_branch = models.CharField(max_length=100, default="master")
    runs_on_push = models.BooleanField(
        default=False, help_text="A GitLab push to the dev or release branch starts a run (GitLab webhook)"
    )
    # Where promotion news is posted (a Slack-compatible incoming webhook). Its path is the secret: never rendered.
    slack_webhook_url = models.URLField(
        max_length=500, blank=True,
        help_text="Slack-compatible incoming webhook told of promotion requests and decisions",
    )
    # A SHA-256 of the secret GitLab sends in X-Gitlab-Token; the secret is shown once, when the admin issues it.
    gitlab_webhook_secret_hash = models.CharField(max_length=64, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("project-detail", args=[self.slug])

    def issue_gitlab_webhook_secret(self) -> str:
        """Set a new webhook secret; returns it in clear, once (only its hash is stored)."""
        secret = secrets.token_urlsafe(32)
        self.gitlab_webhook_secret_hash = hashlib.sha256(secret.encode()).hexdigest()
        self.save(update_fields=["gitlab_webhook_secret_hash"])
        return secret

    def gitlab_webhook_secret_matches(self, secret: str) -> bool:
        if not self.gitlab_webhook_secret_hash or not secret:
            return False
        return hmac.compare_digest(self.gitlab_webhook_secret_hash, hashlib.sha256(secret.encode()).hexdigest())


class ProjectToken(models.Model):
    """An API token of a project, for Jenkins callbacks.

    Only a SHA-256 of the token is stored; the token is shown once when it is made. The
    prefix is not secret: it finds the row, then the hash is compared in constant time.
    """

    PREFIX_LENGTH = 8
    LIVE = models.Q(revoked_at__isnull=True)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField(max_length=100, default="jenkins")
    prefix = models.CharField(max_length=PREFIX_LENGTH, unique=True, editable=False)
    token_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.project} · {self.name} · dp_{self.prefix}…"

    @staticmethod
    def hash_token(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    @classmethod
    def issue(cls, *, project: Project, name: str = "jenkins") -> tuple["ProjectToken", str]:
        """Make a token; returns the row and the clear token, which is never stored."""
        prefix = secrets.token_hex(cls.PREFIX_LENGTH // 2)
        token = f"dp_{prefix}_{secrets.token_urlsafe(32)}"
        row = cls.objects.create(project=project, name=name, prefix=prefix, token_hash=cls.hash_token(token))
        return row, token

    @classmethod
    def prefix_of(cls, token: str) -> str | None:
        """The non-secret prefix of a well-formed token (`dp_<prefix>_<secret>`), or None."""
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != "dp" or len(parts[1]) != cls.PREFIX_LENGTH:
            return None
        # Only what `issue` makes reaches the database: a NUL in a query parameter is a 500 on PostgreSQL.
        if any(char not in "0123456789abcdef" for char in parts[1]):
            return None
        return parts[1]

    def matches(self, token: str) -> bool:
        return hmac.compare_digest(self.token_hash, self.hash_token(token))

    @classmethod
    def find(cls, token: str) -> "ProjectToken | None":
        """The live token row matching a clear token, with its project, or None: the one token look-up (the
        API remembers what it finds for a few seconds: deliveries.services.verified_token)."""
        prefix = cls.prefix_of(token)
        if prefix is None:
            return None
        row = cls.objects.select_related("project").filter(cls.LIVE, prefix=prefix).first()
        return row if row is not None and row.matches(token) else None

    @classmethod
    def is_live(cls, pk: int) -> bool:
        """Whether the token of this id is live now (neither revoked nor deleted): one read by primary key, on
        every API call, through the same LIVE condition as the lookup (the rule is written once)."""
        with connection.cursor() as cursor:
            cursor.execute(live_token_sql(connection.vendor), [pk])
            return cursor.fetchone() is not None


@functools.cache
def live_token_sql(vendor: str) -> str:
    """The statement the ORM writes for "this token id, if LIVE", written once per process and database backend:
    Django building it on each call cost a tenth of a stage callback's CPU. Its one parameter is the id."""
    probe = 0
    sql, params = ProjectToken.objects.filter(ProjectToken.LIVE, pk=probe).values("pk").query.sql_with_params()
    if list(params) != [probe]:
        # A LIVE condition with values of its own (a moment, say) would be frozen in the statement at its first use.
        raise TypeError(f"ProjectToken.LIVE must not bind values of its own, it binds {list(params)[:-1]!r}")
    return sql


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCESS = "success", "Success"
    FAILED = "failed", "Failed"
    UNSTABLE = "unstable", "Unstable"
    ABORTED = "aborted", "Aborted"
    TRIGGER_FAILED = "trigger_failed", "Trigger failed"


FINISHED_RUN_STATUSES = {
    RunStatus.SUCCESS,
    RunStatus.FAILED,
    RunStatus.UNSTABLE,
    RunStatus.ABORTED,
    RunStatus.TRIGGER_FAILED,
}


class RunTrigger(models.TextChoices):
    PORTAL = "portal", "Portal"
    WEBHOOK = "webhook", "GitLab webhook"
    JENKINS = "jenkins", "Jenkins"


def run_label(*, build_number: int | None, pk: int) -> str:
    """How the portal names a run everywhere: its Jenkins build number, or "run <id>" until Jenkins gives one."""
    return f"#{build_number}" if build_number is not None else f"run {pk}"


class PipelineRunQuerySet(models.QuerySet):
    def latest_per_branch(self, project=None):
        """The newest run (highest id) of every (project, branch), one index probe per branch (run_project_branch_id);
        the given project's only, when one is."""
        return self.filter(newest_per_key(PipelineRun, "branch", project_id=project.pk if project else None))


class PipelineRun(models.Model):
    # Indexed by run_project_created, which starts with it.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="runs", db_index=False)
    branch = models.CharField(max_length=255)
    commit_sha = models.CharField(max_length=64, blank=True)
    commit_title = models.CharField(max_length=500, blank=True)
    commit_author = models.CharField(max_length=255, blank=True)
    committed_at = models.DateTimeField(null=True, blank=True, help_text="When the commit was made (lead time)")
    trigger = models.CharField(max_length=16, choices=RunTrigger.choices, default=RunTrigger.JENKINS)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    queue_id = models.PositiveBigIntegerField(null=True, blank=True)
    build_number = models.PositiveIntegerField(null=True, blank=True)
    build_url = models.URLField(max_length=500, blank=True)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    status_reason = models.CharField(max_length=500, blank=True, help_text="Why it failed to trigger, for example")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    jenkins_checked_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When the reconciler last asked Jenkins about this run"
    )

    objects = PipelineRunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "build_number"],
                condition=models.Q(build_number__isnull=False),
                name="run_unique_build_number_per_project",
            ),
        ]
        indexes = [
            models.Index(fields=["project", "-created_at"], name="run_project_created"),
            models.Index(fields=["project", "branch", "-created_at"], name="run_project_branch_created"),
            # the branches of a project and the newest run of each (latest_per_branch)
            models.Index(fields=["project", "branch", "-id"], name="run_project_branch_id"),
            models.Index(fields=["-started_at"], name="run_started"),
            models.Index(fields=["-created_at"], name="run_created"),
            # newest first within a status: the admin's filter, and the newest green runs a deploy may pick
            models.Index(fields=["status", "-created_at"], name="run_status_created"),
            # the admin's filters of runs (its list of branches too), newest first
            models.Index(fields=["trigger", "-created_at"], name="run_trigger_created"),
            models.Index(fields=["branch", "-created_at"], name="run_branch_created"),
        ]

    def __str__(self):
        return f"{self.project} {self.label} ({self.branch})"

    def get_absolute_url(self):
        return reverse("run-detail", args=[self.project.slug, self.pk])

    @property
    def label(self) -> str:
        return run_label(build_number=self.build_number, pk=self.pk)

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_RUN_STATUSES

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None

    @property
    def short_sha(self) -> str:
        return self.commit_sha[:8]


# The delivery chain as deploy_assets/jenkins/Jenkinsfile runs it: its stages in order, with how long each typically
# takes, in seconds. The last runs on the release branch only. The demo data and the imitation Jenkins play this
# chain; a test holds the Jenkinsfile to it, so that what the demo shows is what a real pipeline reports.
DELIVERY_CHAIN = {
    "Checkout": 8,
    "App checks": 95,
    "Infrastructure checks": 40,
    "Build images": 180,
    "Trivy scan": 75,
    "Push images": 35,
    "Deploy staging": 50,
    "Availability test": 15,
    "Gauntlt attacks": 140,
    "Load test": 300,
    "Deploy production": 60,
}


class StageStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCESS = "success", "Success"
    FAILED = "failed", "Failed"
    UNSTABLE = "unstable", "Unstable"
    ABORTED = "aborted", "Aborted"
    SKIPPED = "skipped", "Skipped"


class Stage(models.Model):
    # Indexed by stage_unique_name_per_run, which starts with it.
    run = models.ForeignKey(PipelineRun, on_delete=models.CASCADE, related_name="stages", db_index=False)
    name = models.CharField(max_length=200)
    order = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=16, choices=StageStatus.choices, default=StageStatus.PENDING)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    log_excerpt = models.TextField(blank=True)

    class Meta:
        ordering = ["order", "id"]
        constraints = [models.UniqueConstraint(fields=["run", "name"], name="stage_unique_name_per_run")]

    def __str__(self):
        return f"{self.run} · {self.name}"

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None


class Artifact(models.Model):
    # Indexed by artifact_unique_image_per_run, which starts with it.
    run = models.ForeignKey(PipelineRun, on_delete=models.CASCADE, related_name="artifacts", db_index=False)
    repository = models.CharField(max_length=255, help_text="Image repository, e.g. registry.gitlab.com/group/app")
    tag = models.CharField(max_length=128)
    digest = models.CharField(max_length=100, blank=True, help_text="sha256:…")
    registry = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["repository", "tag"]
        constraints = [
            models.UniqueConstraint(fields=["run", "repository", "tag"], name="artifact_unique_image_per_run"),
        ]
        # images without a digest, which no deploy may pick: PostgreSQL reads this (mostly empty) index instead of
        # every artifact when it excludes the runs that have one (two columns: not taken for the key's own index)
        indexes = [models.Index(fields=["run", "digest"], condition=models.Q(digest=""), name="artifact_undigested")]

    def __str__(self):
        return f"{self.repository}:{self.tag}"

    @property
    def short_digest(self) -> str:
        return self.digest.removeprefix("sha256:")[:12]


class GateMetric(models.TextChoices):
    CRITICAL_VULNERABILITIES = "critical_vulnerabilities", "Critical vulnerabilities"
    HIGH_VULNERABILITIES = "high_vulnerabilities", "High vulnerabilities"
    NEW_CRITICAL_VULNERABILITIES = "new_critical_vulnerabilities", "New critical vulnerabilities vs production"
    NEW_HIGH_VULNERABILITIES = "new_high_vulnerabilities", "New high vulnerabilities vs production"
    FIXABLE_VULNERABILITIES = "fixable_vulnerabilities", "High or critical vulnerabilities with a fix"
    SECRETS = "secrets", "Secrets found"
    FAILED_SCENARIOS = "failed_scenarios", "Failed attack scenarios"
    ERROR_PERCENT = "error_percent", "Load test error % per label"
    P95_MS = "p95_ms", "Load test p95 (ms) per label"
    STAGING_AVAILABILITY = "staging_availability", "Last staging availability check passed"


class Comparator(models.TextChoices):
    LT = "lt", "<"
    LTE = "lte", "≤"
    GT = "gt", ">"
    GTE = "gte", "≥"
    EQ = "eq", "="


class QualityGate(models.Model):
    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="quality_gate")
    is_active = models.BooleanField(default=True)

    def __str__(self):
        return f"Quality gate of {self.project}"


class GateCondition(models.Model):
    gate = models.ForeignKey(QualityGate, on_delete=models.CASCADE, related_name="conditions")
    metric = models.CharField(max_length=40, choices=GateMetric.choices)
    comparator = models.CharField(max_length=4, choices=Comparator.choices, default=Comparator.LTE)
    threshold = models.FloatField()
    relative_to_production = models.BooleanField(
        default=False, help_text="Compare with the run in production rather than with an absolute value"
    )

    def __str__(self):
        rel = " vs production" if self.relative_to_production else ""
        return f"{self.get_metric_display()} {self.get_comparator_display()} {self.threshold:g}{rel}"


class WaiverKind(models.TextChoices):
    VULNERABILITY = "vulnerability", "Vulnerability"
    SCENARIO = "scenario", "Attack scenario"


class Waiver(models.Model):
    # Indexed by waiver_lookup, which starts with it.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="waivers", db_index=False)
    kind = models.CharField(max_length=16, choices=WaiverKind.choices)
    identifier = models.CharField(max_length=255, help_text="CVE/AVD id or scenario name")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField()
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["project", "kind", "identifier"], name="waiver_lookup")]

    def __str__(self):
        return f"{self.identifier} waived until {self.expires_at:%Y-%m-%d}"


class PromotionState(models.TextChoices):
    REQUESTED = "requested", "Requested"
    APPROVED = "approved", "Approved"
    MERGING = "merging", "Merging"
    MERGED = "merged", "Merged"
    RELEASED = "released", "Released"
    REJECTED = "rejected", "Rejected"
    FAILED = "failed", "Failed"


# A project has at most one promotion in these states: waiting for a decision, or approved and not merged yet.
OPEN_PROMOTION_STATES = [PromotionState.REQUESTED, PromotionState.APPROVED, PromotionState.MERGING]


class MergeRequestState(models.TextChoices):
    OPENED = "opened", "Open"
    CLOSED = "closed", "Closed"
    LOCKED = "locked", "Locked"
    MERGED = "merged", "Merged"


class Promotion(models.Model):
    # Indexed by promotion_project_created, which starts with it.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="promotions", db_index=False)
    source_run = models.ForeignKey(PipelineRun, on_delete=models.PROTECT, related_name="promotions")
    state = models.CharField(max_length=16, choices=PromotionState.choices, default=PromotionState.REQUESTED)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    mr_iid = models.PositiveIntegerField(null=True, blank=True)
    mr_url = models.URLField(max_length=500, blank=True)
    mr_state = models.CharField(
        max_length=16, choices=MergeRequestState.choices, blank=True,
        help_text="The merge request's state in GitLab, kept in sync by its webhook",
    )
    gate_snapshot = models.JSONField(default=dict, blank=True)
    master_run = models.ForeignKey(
        PipelineRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="promoted_from"
    )
    production_deployment = models.ForeignKey(
        "environments.Deployment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decision_comment = models.TextField(blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_gate = models.JSONField(
        default=dict, blank=True, help_text="The frozen gate with the waivers in force at the decision"
    )
    state_reason = models.CharField(max_length=500, blank=True, help_text="Why it failed, or why the merge waits")
    merge_attempts = models.PositiveSmallIntegerField(default=0)
    next_merge_attempt_at = models.DateTimeField(null=True, blank=True)
    merge_commit_sha = models.CharField(max_length=64, blank=True)
    merged_at = models.DateTimeField(null=True, blank=True)
    released_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["state", "-created_at"], name="promotion_state_created"),
            models.Index(fields=["project", "-created_at"], name="promotion_project_created"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["project"], condition=models.Q(state__in=OPEN_PROMOTION_STATES),
                name="promotion_one_open_per_project",
            ),
        ]

    def __str__(self):
        return f"Promotion of {self.source_run} ({self.state})"

    def get_absolute_url(self):
        return reverse("promotion-detail", args=[self.project.slug, self.pk])

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_PROMOTION_STATES

    @property
    def merge_pending(self) -> bool:
        return self.state == PromotionState.APPROVED and self.merge_attempts > 0


class GitLabHookDelivery(models.Model):
    """A GitLab webhook delivery already handled, by its Idempotency-Key (or X-Gitlab-Event-UUID): a replay
    is answered "duplicate" and changes nothing."""

    # Indexed by gitlab_delivery_unique_key, which starts with it.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    key = models.CharField(max_length=255)
    event = models.CharField(max_length=100)
    outcome = models.CharField(max_length=500, blank=True)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "GitLab hook delivery"
        verbose_name_plural = "GitLab hook deliveries"
        constraints = [models.UniqueConstraint(fields=["project", "key"], name="gitlab_delivery_unique_key")]

    def __str__(self):
        return f"{self.event} {self.key}"


class AuditEvent(models.Model):
    """Append-only record of who did what and when."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=150, blank=True, help_text="Who acted when not a user: a token, Jenkins")
    # Indexed by audit_project_created, which starts with it.
    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events", db_index=False
    )
    action = models.CharField(max_length=100)
    target_type = models.CharField(max_length=50, blank=True)
    target_id = models.CharField(max_length=50, blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["project", "-created_at"], name="audit_project_created"),
            # one object's events (a promotion's decisions on its evidence), without reading the whole log
            models.Index(fields=["target_type", "target_id", "created_at"], name="audit_target"),
        ]

    def __str__(self):
        return f"{moment(self.created_at)} {self.actor or self.actor_label} {self.action}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Audit events are append-only.")
