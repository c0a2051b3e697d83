from django.conf import settings
from django.db import models
from django.utils import timezone

from portal.formats import moment


class Tier(models.TextChoices):
    DEVELOPMENT = "development", "Development"
    STAGING = "staging", "Staging"
    PRODUCTION = "production", "Production"


class EnvironmentQuerySet(models.QuerySet):
    def production(self):
        return self.filter(tier=Tier.PRODUCTION)


class Environment(models.Model):
    """A place the application runs. Shared by all projects; ordered along the promotion path."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    tier = models.CharField(max_length=16, choices=Tier.choices)
    order = models.PositiveSmallIntegerField(default=0, help_text="Position on the promotion path")
    health_url = models.URLField(max_length=500, blank=True)
    docker_host_url = models.CharField(max_length=255, blank=True, help_text="unix://, tcp:// or ssh:// URL")
    registry = models.CharField(max_length=255, blank=True)
    # The portal's deployer pulls with these. Empty: pull without credentials.
    registry_username = models.CharField(max_length=150, blank=True)
    registry_password = models.CharField(max_length=255, blank=True)
    aws_region = models.CharField(max_length=32, blank=True)
    cloudformation_stack = models.CharField(max_length=128, blank=True)
    requires_approval = models.BooleanField(default=False)

    objects = EnvironmentQuerySet.as_manager()

    class Meta:
        ordering = ["order", "name"]

    def __str__(self):
        return self.name


class FreezeWindow(models.Model):
    """A period when nothing may be deployed to an environment."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="freeze_windows")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=255)

    class Meta:
        ordering = ["starts_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")), name="freeze_ends_after_start"
            ),
        ]

    def __str__(self):
        return f"{self.environment} frozen {moment(self.starts_at)} – {moment(self.ends_at)}"


class Host(models.Model):
    # Indexed by host_unique_name_per_env, which starts with it.
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="hosts", db_index=False)
    name = models.CharField(max_length=100)
    address = models.CharField(max_length=255, blank=True)
    ec2_instance_id = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["environment", "name"], name="host_unique_name_per_env")]

    def __str__(self):
        return f"{self.name} ({self.environment})"


class DeploymentKind(models.TextChoices):
    DEPLOY = "deploy", "Deploy"
    REDEPLOY = "redeploy", "Redeploy"
    ROLLBACK = "rollback", "Rollback"


class DeploymentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCESS = "success", "Success"
    FAILED = "failed", "Failed"
    ROLLED_BACK = "rolled_back", "Rolled back"


class DeploymentQuerySet(models.QuerySet):
    def current_per_environment(self):
        """The newest successful deployment of every (project, environment): what runs there now."""
        newest = (
            self.filter(status=DeploymentStatus.SUCCESS)
            .values("project", "environment")
            .annotate(newest_id=models.Max("id"))
            .values("newest_id")
        )
        return self.filter(id__in=models.Subquery(newest))


class Deployment(models.Model):
    # Indexed by deploy_project_env_started, which starts with it.
    project = models.ForeignKey(
        "deliveries.Project", on_delete=models.CASCADE, related_name="deployments", db_index=False
    )
    # Indexed by deploy_env_started, which starts with it.
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="deployments", db_index=False)
    source_run = models.ForeignKey(
        "deliveries.PipelineRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="deployments"
    )
    artifacts = models.ManyToManyField("deliveries.Artifact", blank=True, related_name="deployments")
    image_digests = models.JSONField(default=list, blank=True, help_text="Digests deployed, kept even if runs go")
    kind = models.CharField(max_length=16, choices=DeploymentKind.choices, default=DeploymentKind.DEPLOY)
    status = models.CharField(max_length=16, choices=DeploymentStatus.choices, default=DeploymentStatus.PENDING)
    deployed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    deployed_by_label = models.CharField(max_length=150, blank=True, help_text="Jenkins, when no user")
    replaced = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replaced_by",
        help_text="The deployment this one took over from",
    )
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    step_log = models.TextField(blank=True)
    rule_violations = models.JSONField(
        default=list, blank=True,
        help_text="The deploy rules this deployment broke, in words (no approved promotion, a freeze, foreign images)",
    )

    objects = DeploymentQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["project", "environment", "-started_at"], name="deploy_project_env_started"),
            models.Index(fields=["environment", "-started_at"], name="deploy_env_started"),
        ]

    def __str__(self):
        return f"{self.project} → {self.environment} ({self.kind}, {self.status})"

    @property
    def deployer(self) -> str:
        return self.deployed_by.get_username() if self.deployed_by else self.deployed_by_label


class AvailabilityCheck(models.Model):
    # Indexed by check_env_checked, which starts with it.
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="checks", db_index=False)
    deployment = models.ForeignKey(
        Deployment, null=True, blank=True, on_delete=models.SET_NULL, related_name="checks"
    )
    url = models.URLField(max_length=500)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    ok = models.BooleanField()
    error = models.CharField(max_length=500, blank=True)
    checked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-checked_at"]
        indexes = [models.Index(fields=["environment", "-checked_at"], name="check_env_checked")]

    def __str__(self):
        return f"{self.url} {'ok' if self.ok else 'failing'} at {moment(self.checked_at)}"
