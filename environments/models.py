from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone

from environments.aws import template_names
from portal.formats import moment
from portal.newest import newest_per_key


class Tier(models.TextChoices):
    DEVELOPMENT = "development", "Development"
    STAGING = "staging", "Staging"
    PRODUCTION = "production", "Production"


def validate_template_name(value: str) -> None:
    """A file name of deploy_assets/cloudformation (no path: the portal reads nothing else)."""
    if value not in template_names():
        raise ValidationError(f"No template {value!r} in deploy_assets/cloudformation; there are: "
                              f"{', '.join(template_names()) or 'none'}.", code="unknown_template")


def validate_stack_parameters(value) -> None:
    """CloudFormation parameters: names to text (numbers are sent as text, as CloudFormation takes them)."""
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str | int | float) and not isinstance(v, bool) for k, v in value.items()
    ):
        raise ValidationError('Give the parameters as {"Name": "value", ...}.', code="invalid_parameters")


PROJECT_PLACEHOLDER = "{project}"


def validate_health_url(value: str) -> None:
    """An http(s) URL, in which {project} may stand for the project's slug (one service per project)."""
    try:
        URLValidator(schemes=["http", "https"])(value.replace(PROJECT_PLACEHOLDER, "project"))
    except ValidationError:
        raise ValidationError("Enter an http or https URL; {project} may stand for the project's slug.",
                              code="invalid_health_url") from None


class EnvironmentQuerySet(models.QuerySet):
    def production(self):
        return self.filter(tier=Tier.PRODUCTION)


class Environment(models.Model):
    """A place the application runs. Shared by all projects; ordered along the promotion path."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    tier = models.CharField(max_length=16, choices=Tier.choices)
    order = models.PositiveSmallIntegerField(default=0, help_text="Position on the promotion path")
    health_url = models.CharField(
        max_length=500, blank=True, validators=[validate_health_url],
        help_text="Probed by availability checks and deployments. With {project} in it (e.g. "
                  "https://{project}.staging.example.com/healthz), each project has its own.",
    )
    docker_host_url = models.CharField(max_length=255, blank=True, help_text="unix://, tcp:// or ssh:// URL")
    registry = models.CharField(max_length=255, blank=True)
    # The portal's deployer pulls with these. Empty: pull without credentials.
    registry_username = models.CharField(max_length=150, blank=True)
    registry_password = models.CharField(max_length=255, blank=True)
    aws_region = models.CharField(max_length=32, blank=True)
    cloudformation_stack = models.CharField(max_length=128, blank=True, help_text="Name of the stack in AWS")
    cloudformation_template = models.CharField(
        max_length=100, blank=True, validators=[validate_template_name],
        help_text="Template file in deploy_assets/cloudformation the stack is made from, e.g. environment.yaml",
    )
    cloudformation_parameters = models.JSONField(
        default=dict, blank=True, validators=[validate_stack_parameters],
        help_text='The template\'s parameters, e.g. {"Tier": "staging", "EnvironmentName": "staging"}',
    )
    requires_approval = models.BooleanField(default=False)

    objects = EnvironmentQuerySet.as_manager()

    class Meta:
        ordering = ["order", "name"]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("environment-detail", args=[self.slug])

    @property
    def health_url_per_project(self) -> bool:
        return PROJECT_PLACEHOLDER in self.health_url

    def health_url_for(self, project) -> str:
        return self.health_url.replace(PROJECT_PLACEHOLDER, project.slug)


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
    # As EC2 last described the instance (running, stopped, ..., or "not found"); the stack's refresh writes it.
    ec2_state = models.CharField(max_length=32, blank=True)
    ec2_state_checked_at = models.DateTimeField(null=True, blank=True)

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
    def current_per_environment(self, project=None):
        """The newest successful deployment (highest id) of every (project, environment): what runs there now.
        One index probe per pair (deploy_current), whatever the history's length; the given project's only, when
        one is."""
        newest = newest_per_key(Deployment, "environment", where="r.status = %s", params=(DeploymentStatus.SUCCESS,),
                                project_id=project.pk if project else None)
        return self.filter(newest)


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
    freeze_override_reason = models.CharField(
        max_length=300, blank=True, help_text="Why an operator deployed during a freeze window",
    )
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
            # what runs where (current_per_environment): one probe per (project, environment)
            models.Index(fields=["project", "status", "environment", "-id"], name="deploy_current"),
            # DORA's window: deployments that finished in it (or never did), not every one started before its end
            models.Index(fields=["project", "environment", "finished_at"], name="deploy_project_env_finished"),
            # the home page's newest rule-breaking deployments: few among many, so an index of those only
            models.Index(fields=["-started_at", "-id"], condition=~models.Q(rule_violations=[]),
                         name="deploy_rule_breaking"),
        ]

    def __str__(self):
        return f"{self.project} → {self.environment} ({self.kind}, {self.status})"

    def get_absolute_url(self):
        return reverse("deployment-detail", args=[self.pk])

    @property
    def deployer(self) -> str:
        return self.deployed_by.get_username() if self.deployed_by else self.deployed_by_label

    @property
    def is_finished(self) -> bool:
        return self.status not in (DeploymentStatus.PENDING, DeploymentStatus.RUNNING)

    @property
    def is_automatic_rollback(self) -> bool:
        return self.kind == DeploymentKind.ROLLBACK and self.deployed_by_label == AUTOMATIC_ROLLBACK_LABEL


AUTOMATIC_ROLLBACK_LABEL = "portal (automatic rollback)"


class CheckSource(models.TextChoices):
    SCHEDULE = "schedule", "Schedule"
    DEPLOYMENT = "deployment", "After a deployment"
    OPERATOR = "operator", "Check now"
    JENKINS = "jenkins", "Jenkins"


class AvailabilityCheck(models.Model):
    # Indexed by check_env_checked, which starts with it.
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="checks", db_index=False)
    # The project whose service was probed; empty for an environment-wide health URL nobody is deployed behind.
    # Indexed by check_project_env_checked, which starts with it.
    project = models.ForeignKey(
        "deliveries.Project", null=True, blank=True, on_delete=models.CASCADE, related_name="checks", db_index=False,
    )
    deployment = models.ForeignKey(
        Deployment, null=True, blank=True, on_delete=models.SET_NULL, related_name="checks"
    )
    url = models.URLField(max_length=500)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    ok = models.BooleanField()
    error = models.CharField(max_length=500, blank=True)
    checked_at = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=16, choices=CheckSource.choices, default=CheckSource.SCHEDULE)
    # Failing checks in a row for this project and environment, this one included (0 when it passed): kept on
    # write so that the board reads one row per cell.
    failures_in_a_row = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-checked_at"]
        indexes = [
            models.Index(fields=["environment", "-checked_at"], name="check_env_checked"),
            models.Index(fields=["project", "environment", "-checked_at"], name="check_project_env_checked"),
        ]

    def __str__(self):
        return f"{self.url} {'ok' if self.ok else 'failing'} at {moment(self.checked_at)}"


class Stack(models.Model):
    """What the portal last saw of an environment's CloudFormation stack, and the operation it last asked for.

    A snapshot, refreshed by tasks after each operation (until the stack settles) and on an operator's request:
    pages never wait on AWS, still show the last known state when AWS is unreachable, and keep the events."""

    environment = models.OneToOneField(Environment, on_delete=models.CASCADE, related_name="stack")
    stack_id = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=64, blank=True, help_text="CloudFormation's, e.g. UPDATE_COMPLETE")
    status_reason = models.TextField(blank=True)
    outputs = models.JSONField(default=dict, blank=True)
    operation = models.CharField(max_length=16, blank=True, help_text="create or update: the last one started")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_at = models.DateTimeField(null=True, blank=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    # Why the last operation or refresh failed, in words; empty once one succeeds.
    error = models.TextField(blank=True)

    def __str__(self):
        return f"stack {self.environment.cloudformation_stack} of {self.environment}"

    @property
    def in_progress(self) -> bool:
        return self.status.endswith("_IN_PROGRESS")


class StackEvent(models.Model):
    # Indexed by stack_event_unique, which starts with it.
    stack = models.ForeignKey(Stack, on_delete=models.CASCADE, related_name="events", db_index=False)
    event_id = models.CharField(max_length=128)
    timestamp = models.DateTimeField()
    logical_resource_id = models.CharField(max_length=255)
    resource_type = models.CharField(max_length=255)
    resource_status = models.CharField(max_length=64)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-timestamp", "-id"]
        constraints = [models.UniqueConstraint(fields=["stack", "event_id"], name="stack_event_unique")]

    def __str__(self):
        return f"{self.logical_resource_id} {self.resource_status}"
