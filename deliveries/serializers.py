"""What the REST API (Jenkins callbacks) accepts and answers.

Input serializers are plain `Serializer`s: they validate, they never touch the database, and they refuse
keys they do not know so that a typo in a Jenkinsfile (`stauts`) is a 400 naming it, not a silent no-op.
Output is built as plain dicts by the `*_payload` functions (the output serializers only document them
in the OpenAPI schema): the stage callback is the hot path and answers without serializer machinery.
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from deliveries.models import RunStatus, StageStatus
from environments.models import DeploymentStatus, Environment
from portal import inputs
from scanners.models import ReportKind

# Limits of the columns the values go to: refused with a 400 rather than a database error (PostgreSQL).
MAX_INT = 2_147_483_647  # PositiveIntegerField
MAX_BIGINT = 9_223_372_036_854_775_807  # PositiveBigIntegerField, BigAutoField
MAX_SMALLINT = 32_767  # PositiveSmallIntegerField
LOG_EXCERPT_CHARS = 10_000
DEPLOYMENT_LOG_CHARS = 100_000
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")

# Jenkins' words (Result, and the stage statuses of the pipeline graph API), lower-cased, to the portal's.
JENKINS_WORDS = {
    "failure": "failed",
    "not_built": "aborted",
    "in_progress": "running",
    "not_executed": "skipped",
}
RUN_STATUSES = [s for s in RunStatus.values if s != RunStatus.TRIGGER_FAILED]


class StatusField(serializers.ChoiceField):
    """A status in the portal's words or Jenkins' (SUCCESS, FAILURE, UNSTABLE, ABORTED, NOT_BUILT), any case."""

    def __init__(self, *, choices, aliases=None, **kwargs):
        self.aliases = JENKINS_WORDS if aliases is None else aliases
        super().__init__(choices=choices, **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str):
            word = data.strip().lower()
            data = self.aliases.get(word, word)
        return super().to_internal_value(data)


def status_field(*, choices, aliases=None, **kwargs) -> StatusField:
    """A StatusField documented as a string naming its values (an enum would refuse Jenkins' words)."""
    values = [choice[0] if isinstance(choice, tuple) else choice for choice in choices]
    schema = {"type": "string", "example": values[0], "description": (
        f"One of {', '.join(values)}. Jenkins' words are accepted too, in any case: SUCCESS, FAILURE, UNSTABLE, "
        "ABORTED, NOT_BUILT."
    )}
    field_class = extend_schema_field(schema)(type("StatusField", (StatusField,), {}))
    return field_class(choices=choices, aliases=aliases, **kwargs)


def choice_out(choices, **kwargs) -> serializers.ChoiceField:
    """An output choice, documented as an inline enum. Wrapped in allOf so that drf-spectacular does not lift
    it into a named component: the API has several `status` choice sets, which would collide by name."""
    values = [choice[0] if isinstance(choice, tuple) else choice for choice in choices]
    schema = {"allOf": [{"type": "string", "enum": values}], "description": kwargs.get("help_text") or "A status"}
    field_class = extend_schema_field(schema)(type("ChoiceOutField", (serializers.ChoiceField,), {}))
    return field_class(choices=choices, **kwargs)


class IntegerField(serializers.IntegerField):
    """DRF's, taking ASCII digits only when given text (DRF's would take "٣" as 3): portal.inputs' rule."""

    def to_internal_value(self, data):
        if isinstance(data, str) and not inputs.is_ascii_number(data):
            self.fail("invalid")
        return super().to_internal_value(data)


class MillisecondsField(IntegerField):
    """Milliseconds, at most portal.inputs.LONGEST_DURATION_MS (a longer one would overflow a moment)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        super().__init__(min_value=0, max_value=inputs.LONGEST_DURATION_MS, **kwargs)


class TimestampField(serializers.DateTimeField):
    """An ISO 8601 date-time; also an integer of milliseconds since the epoch (Jenkins' `startTimeInMillis`).
    Between 1970 and 2999 (portal.inputs)."""

    default_error_messages = {"out_of_range": f"Must be {inputs.MOMENT_RANGE}."}

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_internal_value(self, value):
        if isinstance(value, int) and not isinstance(value, bool):
            moment = millis_to_datetime(value, self)
        else:
            moment = super().to_internal_value(value)
        if not inputs.moment_in_range(moment):
            self.fail("out_of_range")
        return moment


def millis_to_datetime(value: int, field: serializers.Field | None = None) -> datetime:
    try:
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        if field is not None:
            field.fail("invalid", format="ISO 8601 or milliseconds since the epoch")
        raise


class TruncatedCharField(serializers.CharField):
    """Free text that is cut to the column's size rather than refused (commit titles can be long)."""

    def __init__(self, *, keep: int, tail: bool = False, **kwargs):
        self.keep, self.tail = keep, tail
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_blank", True)
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if len(value) > self.keep:
            value = value[-self.keep:] if self.tail else value[: self.keep]
        return value


def shallow_copy(field):
    """`copy.copy` of a field without the pickle protocol's detour (a fifth of a small body's validation)."""
    clone = object.__new__(field.__class__)
    clone.__dict__.update(field.__dict__)
    return clone


class StrictSerializer(serializers.Serializer):
    """Refuses keys it does not declare, naming each one."""

    def get_fields(self):
        # DRF deep-copies every declared field for every serializer made, which costs more than the stage
        # callback's database work. A shallow copy is enough for plain fields (binding sets attributes on the
        # copy; validation keeps no state on the field); nested serializers are still deep-copied.
        return {
            name: copy.deepcopy(field) if isinstance(field, serializers.BaseSerializer) else shallow_copy(field)
            for name, field in self._declared_fields.items()
        }

    def to_internal_value(self, data):
        unknown = {}
        if isinstance(data, dict):
            unknown = {key: ["Unknown field."] for key in data if key not in self.fields}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if unknown and isinstance(exc.detail, dict):
                raise serializers.ValidationError({**unknown, **exc.detail}) from None
            raise
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


def text(max_length: int, **kwargs) -> serializers.CharField:
    kwargs.setdefault("required", False)
    kwargs.setdefault("allow_blank", True)
    return serializers.CharField(max_length=max_length, **kwargs)


# --- Input -----------------------------------------------------------------------------------------


class RunInSerializer(StrictSerializer):
    build_number = IntegerField(min_value=1, max_value=MAX_INT)
    branch = text(255)
    commit_sha = text(64)
    commit_title = TruncatedCharField(keep=500)
    commit_author = TruncatedCharField(keep=255)
    committed_at = serializers.DateTimeField(
        required=False, allow_null=True, input_formats=["iso-8601"],
        help_text="When the commit was made, ISO 8601 (`git log -1 --format=%cI`): lead time starts there",
    )
    status = status_field(choices=RUN_STATUSES, required=False)
    started_at = TimestampField()
    finished_at = TimestampField()
    build_url = serializers.URLField(max_length=500, required=False, allow_blank=True)
    queue_id = IntegerField(min_value=0, max_value=MAX_BIGINT, required=False, allow_null=True)
    portal_run_id = IntegerField(
        min_value=1, max_value=MAX_BIGINT, required=False, allow_null=True,
        help_text="Id of the run the portal triggered (Jenkins parameter PORTAL_RUN_ID): this build is attached to it",
    )


class StageInSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    status = status_field(choices=StageStatus.choices)
    order = IntegerField(min_value=0, max_value=MAX_SMALLINT, required=False)
    started_at = TimestampField()
    finished_at = TimestampField()
    duration_ms = MillisecondsField()
    log_excerpt = TruncatedCharField(
        keep=LOG_EXCERPT_CHARS, tail=True, help_text="Only the last 10,000 characters are kept"
    )


class ArtifactInSerializer(StrictSerializer):
    repository = serializers.CharField(max_length=255)
    tag = serializers.CharField(max_length=128)
    digest = text(100, help_text="sha256: and 64 hexadecimal digits")
    registry = text(255)

    def validate_digest(self, value):
        if value and not DIGEST_RE.match(value):
            raise serializers.ValidationError("Use sha256: followed by 64 lower-case hexadecimal digits.")
        return value


class ReportInSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=False)
    kind = serializers.ChoiceField(
        choices=ReportKind.choices, required=False, allow_blank=True, help_text="Detected from the content when absent"
    )


class ImageSerializer(StrictSerializer):
    repository = serializers.CharField(max_length=255)
    tag = serializers.CharField(max_length=128)
    digest = text(100)

    def validate_digest(self, value):
        if value and not DIGEST_RE.match(value):
            raise serializers.ValidationError("Use sha256: followed by 64 lower-case hexadecimal digits.")
        return value


DEPLOYMENT_STATUSES = [DeploymentStatus.RUNNING, DeploymentStatus.SUCCESS, DeploymentStatus.FAILED]


class DeploymentInSerializer(StrictSerializer):
    environment = serializers.SlugRelatedField(slug_field="slug", queryset=Environment.objects.all())
    status = status_field(
        choices=[(s.value, s.label) for s in DEPLOYMENT_STATUSES],
        aliases={**JENKINS_WORDS, "aborted": "failed", "not_built": "failed"},
    )
    images = ImageSerializer(many=True, required=False)
    started_at = TimestampField()
    finished_at = TimestampField()
    log = TruncatedCharField(keep=DEPLOYMENT_LOG_CHARS, tail=True)

    def validate(self, attrs):
        started, finished = attrs.get("started_at"), attrs.get("finished_at")
        if started and finished and finished < started:
            raise serializers.ValidationError({"finished_at": ["Earlier than started_at."]})
        return attrs


class CheckInSerializer(StrictSerializer):
    environment = serializers.SlugRelatedField(slug_field="slug", queryset=Environment.objects.all())
    url = serializers.URLField(max_length=500, help_text="The URL that was probed")
    ok = serializers.BooleanField(help_text="Whether the service was available")
    status_code = serializers.IntegerField(min_value=100, max_value=599, required=False, allow_null=True)
    latency_ms = serializers.FloatField(min_value=0, required=False, allow_null=True)
    error = TruncatedCharField(keep=500, help_text="Why it was not available; cut to 500 characters")


class NotificationScmSerializer(serializers.Serializer):
    url = serializers.CharField(required=False)
    branch = serializers.CharField(required=False, help_text="origin/dev or refs/heads/dev: recorded as dev")
    commit = serializers.CharField(required=False)
    changes = serializers.ListField(child=serializers.CharField(), required=False)
    culprits = serializers.ListField(child=serializers.CharField(), required=False)


class NotificationBuildSerializer(serializers.Serializer):
    full_url = serializers.URLField(required=False)
    number = IntegerField(min_value=1)
    queue_id = IntegerField(required=False)
    timestamp = IntegerField(required=False, help_text="Milliseconds since the epoch")
    duration = IntegerField(required=False, help_text="Milliseconds")
    phase = serializers.ChoiceField(choices=["QUEUED", "STARTED", "COMPLETED", "FINALIZED", "NONE"])
    status = choice_out(
        ["SUCCESS", "FAILURE", "UNSTABLE", "ABORTED", "NOT_BUILT"], required=False,
        help_text="Absent until the build has a result",
    )
    url = serializers.CharField(required=False)
    scm = NotificationScmSerializer(required=False)
    parameters = serializers.DictField(
        child=serializers.CharField(), required=False, help_text="PORTAL_RUN_ID attaches the build to that run"
    )
    log = serializers.CharField(required=False)
    notes = serializers.CharField(required=False)
    test_summary = serializers.DictField(required=False)
    artifacts = serializers.DictField(child=serializers.DictField(child=serializers.CharField()), required=False)


class NotificationInSerializer(serializers.Serializer):
    """The Jenkins Notification plugin's message, for the schema only: the hook parses it with
    `services.parse_notification`, which ignores what it does not know."""

    name = serializers.CharField(required=False)
    display_name = serializers.CharField(required=False)
    url = serializers.CharField(required=False)
    build = NotificationBuildSerializer()


# --- Output (documentation of the payloads below) ----------------------------------------------------


class StageOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    order = serializers.IntegerField()
    status = choice_out(StageStatus.choices)
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    duration_ms = serializers.IntegerField(allow_null=True)


class StageWithRunOutSerializer(StageOutSerializer):
    build_number = serializers.IntegerField()
    run_status = choice_out(RunStatus.choices)


class ArtifactOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    repository = serializers.CharField()
    tag = serializers.CharField()
    digest = serializers.CharField()
    registry = serializers.CharField()


class ArtifactWithRunOutSerializer(ArtifactOutSerializer):
    build_number = serializers.IntegerField()


class ReportOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField(help_text="Empty until detected")
    status = serializers.CharField()
    url = serializers.URLField(help_text="The report's page on the portal")
    sha256 = serializers.CharField()


class RunOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    build_number = serializers.IntegerField(allow_null=True)
    branch = serializers.CharField()
    commit_sha = serializers.CharField()
    commit_title = serializers.CharField()
    commit_author = serializers.CharField()
    committed_at = serializers.DateTimeField(allow_null=True)
    status = choice_out(RunStatus.choices)
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    build_url = serializers.CharField()
    queue_id = serializers.IntegerField(allow_null=True)
    url = serializers.URLField(help_text="The run's page on the portal")
    stages = StageOutSerializer(many=True)
    artifacts = ArtifactOutSerializer(many=True)
    reports = ReportOutSerializer(many=True)


class DeploymentOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    environment = serializers.SlugField()
    build_number = serializers.IntegerField()
    kind = serializers.CharField()
    status = choice_out(DeploymentStatus.choices)
    image_digests = serializers.ListField(child=serializers.CharField())
    artifacts = serializers.ListField(child=serializers.IntegerField(), help_text="Ids of the run's artifacts deployed")
    replaced = serializers.IntegerField(allow_null=True, help_text="Id of the deployment this one took over from")
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    rule_violations = serializers.ListField(
        child=serializers.CharField(), help_text="The deploy rules it broke, in words; empty when it broke none")


class CheckOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    environment = serializers.SlugField()
    url = serializers.CharField()
    ok = serializers.BooleanField()
    status_code = serializers.IntegerField(allow_null=True)
    latency_ms = serializers.FloatField(allow_null=True)
    error = serializers.CharField()
    failures_in_a_row = serializers.IntegerField(help_text="Failing checks in a row of the project there, this one "
                                                           "included")
    deployment = serializers.IntegerField(allow_null=True, help_text="Id of the deployment running there")
    checked_at = serializers.DateTimeField()


class NotificationOutSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    build_number = serializers.IntegerField()
    status = choice_out(RunStatus.choices)


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


# --- Output payloads -------------------------------------------------------------------------------


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return timezone.localtime(moment, UTC).isoformat().replace("+00:00", "Z")


def absolute(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def millis_between(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return int((end - start).total_seconds() * 1000)


def stage_payload(stage) -> dict:
    return {
        "id": stage.pk,
        "name": stage.name,
        "order": stage.order,
        "status": stage.status,
        "started_at": iso(stage.started_at),
        "finished_at": iso(stage.finished_at),
        "duration_ms": millis_between(stage.started_at, stage.finished_at),
    }


def artifact_payload(artifact) -> dict:
    return {
        "id": artifact.pk,
        "repository": artifact.repository,
        "tag": artifact.tag,
        "digest": artifact.digest,
        "registry": artifact.registry,
    }


def report_payload(report) -> dict:
    return {
        "id": report.pk,
        "kind": report.kind,
        "status": report.status,
        "url": absolute(reverse("report-detail", args=[report.pk])),
        "sha256": report.sha256,
    }


def run_payload(run, *, project=None) -> dict:
    """The run with its stages, artifacts and reports (prefetched or fetched here)."""
    project = project or run.project
    return {
        "id": run.pk,
        "build_number": run.build_number,
        "branch": run.branch,
        "commit_sha": run.commit_sha,
        "commit_title": run.commit_title,
        "commit_author": run.commit_author,
        "committed_at": iso(run.committed_at),
        "status": run.status,
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "build_url": run.build_url,
        "queue_id": run.queue_id,
        "url": absolute(reverse("run-detail", args=[project.slug, run.pk])),
        "stages": [stage_payload(stage) for stage in run.stages.all()],
        "artifacts": [artifact_payload(artifact) for artifact in run.artifacts.all()],
        "reports": [report_payload(report) for report in run.reports.all()],
    }


def deployment_payload(deployment, *, build_number: int) -> dict:
    return {
        "id": deployment.pk,
        "environment": deployment.environment.slug,
        "build_number": build_number,
        "kind": deployment.kind,
        "status": deployment.status,
        "image_digests": deployment.image_digests,
        "artifacts": sorted(artifact.pk for artifact in deployment.artifacts.all()),
        "replaced": deployment.replaced_id,
        "started_at": iso(deployment.started_at),
        "finished_at": iso(deployment.finished_at),
        "rule_violations": deployment.rule_violations,
    }


def check_payload(check) -> dict:
    return {
        "id": check.pk,
        "environment": check.environment.slug,
        "url": check.url,
        "ok": check.ok,
        "status_code": check.status_code,
        "latency_ms": check.latency_ms,
        "error": check.error,
        "failures_in_a_row": check.failures_in_a_row,
        "deployment": check.deployment_id,
        "checked_at": iso(check.checked_at),
    }
