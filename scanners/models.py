from datetime import timedelta

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone


class ReportKind(models.TextChoices):
    TRIVY = "trivy", "Trivy scan"
    GAUNTLT = "gauntlt", "Gauntlt attacks"
    JMETER = "jmeter", "JMeter load test"


class ReportStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    PARSING = "parsing", "Parsing"
    PARSED = "parsed", "Parsed"
    FAILED = "failed", "Failed"


class Report(models.Model):
    """A raw report file as uploaded, and the state of its ingestion."""

    # Indexed by report_run_kind, which starts with it.
    run = models.ForeignKey("deliveries.PipelineRun", on_delete=models.CASCADE, related_name="reports", db_index=False)
    kind = models.CharField(max_length=16, choices=ReportKind.choices, blank=True, help_text="Empty until detected")
    file = models.FileField(upload_to="reports/%Y/%m/", max_length=500)
    original_name = models.CharField(max_length=255, blank=True)
    size_bytes = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=ReportStatus.choices, default=ReportStatus.RECEIVED)
    error = models.TextField(blank=True)
    summary = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    parsed_at = models.DateTimeField(null=True, blank=True)
    # How long a report has waited or been parsing, and how often a worker took it: the reaper's evidence
    # (scanners.services.reap_stuck_reports) for a worker that died or went over its time.
    status_changed_at = models.DateTimeField(
        null=True, blank=True, help_text="When it was last queued again or taken by a worker; empty: when received"
    )
    parse_attempts = models.PositiveSmallIntegerField(default=0, help_text="Times a worker started parsing it")

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["run", "sha256"], name="report_unique_file_per_run")]
        indexes = [models.Index(fields=["run", "kind"], name="report_run_kind")]

    def __str__(self):
        return f"{self.get_kind_display() or 'Report'} {self.original_name} of {self.run}"

    def get_absolute_url(self):
        return reverse("report-detail", args=[self.pk])

    @property
    def waiting_since(self):
        """Since when it has been waiting for a worker (received) or parsing."""
        return self.status_changed_at or self.created_at

    @property
    def is_stuck(self) -> bool:
        """Waiting or parsing for longer than a parse may take (REPORT_PARSE_TIMEOUT_SECONDS)."""
        return self.status in STUCK_STATUSES and self.waiting_since < timezone.now() - parse_timeout()

    @property
    def waited(self):
        return timezone.now() - self.waiting_since


STUCK_STATUSES = (ReportStatus.RECEIVED, ReportStatus.PARSING)


def parse_timeout() -> timedelta:
    """How long one parse may take: the ingestion cluster's task timeout."""
    return timedelta(seconds=settings.REPORT_PARSE_TIMEOUT_SECONDS)


class Severity(models.TextChoices):
    CRITICAL = "CRITICAL", "Critical"
    HIGH = "HIGH", "High"
    MEDIUM = "MEDIUM", "Medium"
    LOW = "LOW", "Low"
    UNKNOWN = "UNKNOWN", "Unknown"


class FindingClass(models.TextChoices):
    VULNERABILITY = "vulnerability", "Vulnerability"
    MISCONFIGURATION = "misconfiguration", "Misconfiguration"
    SECRET = "secret", "Secret"
    LICENSE = "license", "License"


class Finding(models.Model):
    """One Trivy finding. `fingerprint` is built from identifiers and location only (not the installed version),
    so it matches across runs, images and package bumps. Whether production has it is not stored: production
    changes, so pages compare with it when they are read (scanners.selectors.with_production_flag)."""

    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="findings")
    # Indexed by finding_run_fingerprint, which starts with it.
    run = models.ForeignKey("deliveries.PipelineRun", on_delete=models.CASCADE, related_name="findings", db_index=False)
    artifact_name = models.CharField(max_length=255, blank=True, help_text="Scanned image or path, without tag")
    target = models.CharField(max_length=500, blank=True)
    finding_class = models.CharField(max_length=20, choices=FindingClass.choices)
    fingerprint = models.CharField(max_length=64)
    identifier = models.CharField(max_length=200, help_text="CVE, AVD or rule id")
    package = models.CharField(max_length=255, blank=True)
    installed_version = models.CharField(max_length=200, blank=True)
    fixed_version = models.CharField(max_length=500, blank=True)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.UNKNOWN)
    title = models.TextField(blank=True)
    detail = models.TextField(blank=True, help_text="Misconfiguration message or masked secret match")
    url = models.URLField(max_length=500, blank=True)
    new_on_branch = models.BooleanField(
        default=True, help_text="Absent from the scan of the same image in the latest earlier build of the branch"
    )

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["run", "severity"], name="finding_run_severity"),
            models.Index(fields=["run", "fingerprint"], name="finding_run_fingerprint"),
        ]

    def __str__(self):
        return f"{self.identifier} in {self.package or self.target}"


class ScenarioStatus(models.TextChoices):
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"
    UNDEFINED = "undefined", "Undefined"
    PENDING = "pending", "Pending"
    UNKNOWN = "unknown", "Not run"


class AttackScenario(models.Model):
    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="scenarios")
    # Indexed by scenario_run_status, which starts with it.
    run = models.ForeignKey(
        "deliveries.PipelineRun", on_delete=models.CASCADE, related_name="scenarios", db_index=False
    )
    feature = models.CharField(max_length=500)
    name = models.CharField(max_length=500)
    line = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=ScenarioStatus.choices)
    duration_ms = models.FloatField(null=True, blank=True)
    failing_step = models.TextField(blank=True)
    failure_message = models.TextField(blank=True)
    steps = models.JSONField(default=list, blank=True)
    tags = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["run", "status"], name="scenario_run_status")]

    def __str__(self):
        return f"{self.feature}: {self.name} ({self.status})"


class LoadTestStat(models.Model):
    """Statistics of one JMeter label, or of the Total when is_total.

    The Total is JMeter's dashboard's: it leaves out Transaction Controller samples, whose labels keep their own
    rows (is_transaction). A null figure is not available (e.g. an XML file saved without elapsed or start
    times): `timing_unavailable` says why.
    """

    # Indexed by loadstat_unique_label, which starts with it.
    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="load_stats", db_index=False)
    run = models.ForeignKey("deliveries.PipelineRun", on_delete=models.CASCADE, related_name="load_stats")
    label = models.CharField(max_length=500)
    is_total = models.BooleanField(default=False)
    is_transaction = models.BooleanField(
        default=False, db_default=False, help_text="A Transaction Controller's samples: not counted in the Total"
    )
    samples = models.PositiveBigIntegerField()
    errors = models.PositiveBigIntegerField()
    error_percent = models.FloatField(null=True, blank=True, help_text="Null for a Total without samples")
    min_ms = models.FloatField(null=True, blank=True)
    max_ms = models.FloatField(null=True, blank=True)
    mean_ms = models.FloatField(null=True, blank=True)
    stdev_ms = models.FloatField(null=True, blank=True)
    p50_ms = models.FloatField(null=True, blank=True)
    p90_ms = models.FloatField(null=True, blank=True)
    p95_ms = models.FloatField(null=True, blank=True)
    p99_ms = models.FloatField(null=True, blank=True)
    throughput = models.FloatField(null=True, blank=True, help_text="Samples per second")
    received_kbps = models.FloatField(null=True, blank=True, default=0)
    sent_kbps = models.FloatField(null=True, blank=True, default=0)
    timing_unavailable = models.CharField(
        max_length=300, blank=True, db_default="", help_text="Why some figures are not available; empty when all are"
    )

    class Meta:
        ordering = ["is_total", "label"]
        constraints = [
            models.UniqueConstraint(fields=["report", "label", "is_total"], name="loadstat_unique_label"),
        ]

    def __str__(self):
        return "Total" if self.is_total else self.label


class LoadTestBucket(models.Model):
    """All samples of one time slice of a load test, for charts."""

    # Indexed by bucket_unique_slice, which starts with it.
    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="load_buckets", db_index=False)
    started_at = models.DateTimeField()
    width_seconds = models.PositiveIntegerField()
    samples = models.PositiveIntegerField()
    errors = models.PositiveIntegerField()
    mean_ms = models.FloatField()
    p95_ms = models.FloatField()
    active_threads = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["started_at"]
        constraints = [models.UniqueConstraint(fields=["report", "started_at"], name="bucket_unique_slice")]

    def __str__(self):
        return f"{self.started_at:%H:%M:%S} +{self.width_seconds}s: {self.samples} samples"
