"""Writes of the scanners app: receiving raw reports and ingesting what is parsed out of them.

A report is stored raw at once, then ingested by a background task in one transaction: the
parsers (pure) run first, outside any transaction; then the rows are written all together, or
the report is marked failed with the parser's message and nothing else is written.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_q.tasks import async_task

from deliveries.audit import audit
from deliveries.models import PipelineRun, Project
from deliveries.services import check_build_number, first, locked_run
from portal.bulk import insert_rows
from scanners import selectors
from scanners.models import (
    AttackScenario,
    Finding,
    FindingClass,
    LoadTestBucket,
    LoadTestStat,
    Report,
    ReportKind,
    ReportStatus,
    Severity,
)
from scanners.parsers.common import ReportParseError
from scanners.parsers.detect import detect_kind
from scanners.parsers.gauntlt import GauntltReport, parse_gauntlt
from scanners.parsers.jmeter import PERCENTILE_DEFINITION, JMeterResult, LabelStats, parse_jmeter
from scanners.parsers.trivy import TrivyReport, TrivyStream, redact_secrets, stream_trivy

logger = logging.getLogger(__name__)

SNIFF_BYTES = 64 * 1024
CHUNK_BYTES = 1024 * 1024
BULK_BATCH = 2000


class ReportTooLarge(Exception):
    def __init__(self, size: int, limit: int):
        self.size, self.limit = size, limit
        super().__init__(f"the file is {size:,} bytes, over the {limit:,} bytes allowed (REPORT_MAX_BYTES)")


def receive_report(
    *,
    run: PipelineRun,
    file,
    original_name: str,
    kind: str = "",
    queue: bool = True,
    progress: Callable[[int], None] | None = None,
) -> tuple[Report, bool]:
    """Store a raw report for a run and queue its ingestion. Returns (report, created).

    The same bytes for the same run give the same report back: a retried upload changes nothing.
    A file over REPORT_MAX_BYTES is recorded as failed, without its content.
    """
    if kind and kind not in ReportKind.values:
        raise ValueError(f"unknown report kind {kind!r}: use one of {', '.join(ReportKind.values)}")
    digest, size = hash_file(file, progress=progress)
    limit = settings.REPORT_MAX_BYTES
    existing = Report.objects.filter(run=run, sha256=digest).first()
    if existing is not None:
        return existing, False
    report = Report(run=run, kind=kind, original_name=Path(original_name).name[:255], size_bytes=size, sha256=digest)
    if size > limit:
        report.status = ReportStatus.FAILED
        report.error = str(ReportTooLarge(size, limit))
        report.save()
        return report, True
    file.seek(0)
    with transaction.atomic():
        report.file.save(f"{run.pk}-{digest[:16]}-{report.original_name or 'report'}", File(file), save=False)
        report.save()
        if queue:
            transaction.on_commit(lambda: queue_ingestion(report.pk))
    return report, True


def upload_report(*, project: Project, build_number: int, file, original_name: str, kind: str, actor_label: str):
    """A report uploaded to the API for the run of a build number (created if new): stored, audited, its
    ingestion queued. Returns (report, created). Raises CallbackError for an impossible build number.

    The run row is not locked while the file is hashed and stored: a report changes nothing on the run.
    """
    check_build_number(build_number)
    with transaction.atomic():
        run = first(PipelineRun.objects.filter(project=project, build_number=build_number))
        run_created = False
        if run is None:
            run, run_created = locked_run(project=project, build_number=build_number)
        try:
            with transaction.atomic():
                report, created = receive_report(run=run, file=file, original_name=original_name, kind=kind)
        except IntegrityError:
            # The same file uploaded twice at once: the other upload stored it.
            digest, _ = hash_file(file)
            report, created = Report.objects.get(run=run, sha256=digest), False
        if created:
            data = {"build_number": build_number, "file": report.original_name, "kind": report.kind,
                    "sha256": report.sha256}
            if run_created:
                data["run_created"] = True
            audit(project=project, actor_label=actor_label, action="report.received", target=report,
                  data=data)
    return report, created


def queue_ingestion(report_id: int) -> None:
    async_task("scanners.tasks.ingest_report", report_id, task_name=f"ingest report {report_id}")


def hash_file(file, *, progress: Callable[[int], None] | None = None) -> tuple[str, int]:
    file.seek(0)
    digest = hashlib.sha256()
    size = 0
    while chunk := file.read(CHUNK_BYTES):
        digest.update(chunk)
        size += len(chunk)
        if progress:
            progress(len(chunk))
    return digest.hexdigest(), size


def ingest_report(*, report_id: int, progress: Callable[[int], None] | None = None) -> Report:
    """Parse a stored report and write what it holds. Safe to run again: a parsed report is left alone,
    and one left in `parsing` by a worker that died is parsed afresh."""
    claimed = Report.objects.filter(
        pk=report_id, status__in=[ReportStatus.RECEIVED, ReportStatus.PARSING]
    ).update(status=ReportStatus.PARSING, error="")
    report = Report.objects.select_related("run__project").get(pk=report_id)
    if not claimed:
        return report
    kind = report.kind
    try:
        with local_copy(report) as path:
            kind = kind or detect_kind(read_head(path), report.original_name)
            # A Trivy report is read while its findings are written: its errors can surface during the write.
            return write_parsed(report_id=report_id, kind=kind, parsed=parse(kind, path, progress=progress))
    except ReportParseError as exc:
        return mark_failed(report, str(exc), kind=kind)
    except OSError as exc:
        return mark_failed(report, f"the stored file could not be read: {exc.strerror or exc}", kind=kind)
    except Exception as exc:  # noqa: BLE001 - a parser bug must fail this report, not leave it "parsing"
        logger.exception("report %s: unexpected error while parsing", report_id)
        return mark_failed(report, f"internal error while parsing ({type(exc).__name__}); the file is kept", kind=kind)


def ingest_content(*, run: PipelineRun, content: bytes, original_name: str, kind: str, received_at=None) -> Report:
    """Parse a report held in memory and write what it holds, keeping no raw file (the report page says so).

    For generated reports only (the demo's large scale, where storing 40,000 files would cost more than the
    demo is worth); uploads go through receive_report and ingest_report. The same bytes for the same run give
    the same report back.
    """
    digest = hashlib.sha256(content).hexdigest()
    existing = Report.objects.filter(run=run, sha256=digest).first()
    if existing is not None:
        return existing
    report = Report.objects.create(
        run=run, kind=kind, original_name=Path(original_name).name[:255], size_bytes=len(content), sha256=digest,
        status=ReportStatus.PARSING, created_at=received_at or timezone.now(),
    )
    try:
        return write_parsed(report_id=report.pk, kind=kind, parsed=parse(kind, content))
    except ReportParseError as exc:
        return mark_failed(report, str(exc), kind=kind)


def write_parsed(*, report_id: int, kind: str, parsed) -> Report:
    """Write what was parsed out of a report being parsed, all at once, and mark it parsed."""
    with transaction.atomic():
        report = Report.objects.select_for_update().select_related("run__project").get(pk=report_id)
        if report.status != ReportStatus.PARSING:
            return report  # another worker finished it meanwhile
        delete_parsed_rows(report)
        report.kind = kind
        report.summary = WRITERS[kind](report, parsed)
        if kind == ReportKind.TRIVY and report.summary["by_class"][FindingClass.SECRET] and report.file:
            mask_stored_secrets(report)  # in the transaction: if masking fails, nothing is written
        report.status = ReportStatus.PARSED
        report.error = ""
        report.parsed_at = timezone.now()
        report.save(update_fields=["kind", "summary", "status", "error", "parsed_at"])
    return report


def mask_stored_secrets(report: Report) -> None:
    """Replace the stored raw Trivy report with one whose secrets are masked.

    `sha256` stays the hash of the upload, so the same upload is still recognised.
    """
    with report.file.open("rb") as stored:
        masked = redact_secrets(stored.read())
    if masked is None:
        return
    storage, name = report.file.storage, report.file.name
    storage.delete(name)
    saved_as = storage.save(name, ContentFile(masked))
    if saved_as != name:
        Report.objects.filter(pk=report.pk).update(file=saved_as)
        report.file.name = saved_as


def parse(kind: str, source: Path | bytes, *, progress=None):
    limit = settings.REPORT_MAX_BYTES
    if kind == ReportKind.TRIVY:
        return stream_trivy(source, max_bytes=limit)
    if kind == ReportKind.GAUNTLT:
        return parse_gauntlt(source, max_bytes=limit)
    if kind == ReportKind.JMETER:
        return parse_jmeter(source, max_bytes=limit, progress=progress)
    raise ReportParseError(f"unknown report kind {kind!r}")


def mark_failed(report: Report, message: str, *, kind: str = "") -> Report:
    with transaction.atomic():
        delete_parsed_rows(report)
        report.status = ReportStatus.FAILED
        report.error = message[:5000]
        report.kind = report.kind or (kind if kind in ReportKind.values else "")
        report.summary = {}
        report.save(update_fields=["status", "error", "kind", "summary"])
    logger.info("report %s failed: %s", report.pk, message)
    return report


def delete_parsed_rows(report: Report) -> None:
    for model in (Finding, AttackScenario, LoadTestStat, LoadTestBucket):
        model.objects.filter(report=report).delete()


@contextmanager
def local_copy(report: Report) -> Iterator[Path]:
    """A path on local disk holding the report: the stored file itself, or a temporary copy (S3)."""
    try:
        local_path = report.file.path
    except NotImplementedError:
        local_path = None  # remote storage (S3) has no path
    if local_path:
        yield Path(local_path)
        return
    with tempfile.NamedTemporaryFile(suffix=".report") as copy, report.file.open("rb") as stored:
        shutil.copyfileobj(stored, copy, CHUNK_BYTES)
        copy.flush()
        yield Path(copy.name)


def read_head(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(SNIFF_BYTES)


# --- Trivy -----------------------------------------------------------------------------------------


def write_trivy(report: Report, parsed: TrivyReport | TrivyStream) -> dict:
    """Write the findings as they are read, each flagged new or persisting, and count what was fixed, all against
    one basis: `selectors.comparison_basis`. What production runs is compared when a page is read (it changes).

    Only counts and the basis's fingerprints stay in memory, never the findings: a report of a million findings
    goes to the database in batches while the file is read (portal.bulk.insert_rows)."""
    run = report.run
    artifact_name = parsed.artifact_name[:255]
    basis_run = selectors.comparison_basis(run, artifact_name)
    before = selectors.fingerprints_of(basis_run, artifact_name=artifact_name) if basis_run else set()
    persisting: set[str] = set()
    severities, classes = Counter(), Counter()

    def rows():
        # Parsed values are already plain and cut to the columns' sizes, so they go in without bulk_create.
        for item in parsed.findings:
            is_new = item.fingerprint not in before
            if not is_new:
                persisting.add(item.fingerprint)
            severities[item.severity] += 1
            classes[item.finding_class] += 1
            yield (report.pk, run.pk, artifact_name, item.target, item.finding_class, item.fingerprint,
                   item.identifier, item.package, item.installed_version, item.fixed_version, item.severity,
                   item.title, item.detail, item.url, is_new)

    insert_rows(Finding, FINDING_COLUMNS, rows())
    findings = sum(classes.values())
    return {
        "format": parsed.format,
        "artifact_name": artifact_name,
        "findings": findings,
        "by_severity": count_choices(Severity.values, severities),
        "by_class": count_choices(FindingClass.values, classes),
        "new": findings - len(persisting),
        "persisting": len(persisting),
        "fixed": len(before) - len(persisting),
        "compared_with_run": basis_run.pk if basis_run else None,
    }


FINDING_COLUMNS = [
    "report_id", "run_id", "artifact_name", "target", "finding_class", "fingerprint", "identifier", "package",
    "installed_version", "fixed_version", "severity", "title", "detail", "url", "new_on_branch",
]


def count_choices(keys: list[str], values) -> dict[str, int]:
    counts = Counter(values)
    return {key: counts.get(key, 0) for key in keys}


# --- Gauntlt ---------------------------------------------------------------------------------------


def write_gauntlt(report: Report, parsed: GauntltReport) -> dict:
    AttackScenario.objects.bulk_create(
        [
            AttackScenario(
                report=report,
                run=report.run,
                feature=scenario.feature[:500],
                name=scenario.name[:500],
                line=scenario.line,
                status=scenario.status,
                duration_ms=scenario.duration_ms,
                failing_step=scenario.failing_step,
                failure_message=scenario.failure_message,
                steps=[asdict(step) for step in scenario.steps],
                tags=list(scenario.tags),
            )
            for scenario in parsed.scenarios
        ],
        batch_size=BULK_BATCH,
    )
    return {"features": len(parsed.features), **parsed.counts()}


# --- JMeter ----------------------------------------------------------------------------------------

LABEL_SUMMARY_FIELDS = {
    "samples": "samples",
    "errors": "errors",
    "mean": "mean_ms",
    "p50": "p50_ms",
    "p90": "p90_ms",
    "p95": "p95_ms",
    "p99": "p99_ms",
    "throughput": "throughput",
}


def write_jmeter(report: Report, parsed: JMeterResult) -> dict:
    rows = [stat_row(report, stats, is_total=False) for stats in parsed.labels]
    rows.append(stat_row(report, parsed.total, is_total=True))
    LoadTestStat.objects.bulk_create(rows, batch_size=BULK_BATCH)
    LoadTestBucket.objects.bulk_create(
        [
            LoadTestBucket(
                report=report,
                started_at=bucket.started_at,
                width_seconds=bucket.width_seconds,
                samples=bucket.samples,
                errors=bucket.errors,
                mean_ms=bucket.mean_ms,
                p95_ms=bucket.p95_ms,
                active_threads=bucket.active_threads,
            )
            for bucket in parsed.buckets
        ],
        batch_size=BULK_BATCH,
    )
    return {
        "format": parsed.format,
        # The Total's, as JMeter's dashboard: Transaction Controller samples are counted apart.
        "samples": parsed.total.samples,
        "errors": parsed.total.errors,
        "transaction_samples": parsed.transaction_samples,
        "transactions": [stats.label for stats in parsed.labels if stats.is_transaction],
        "empty_transactions": parsed.empty_transactions,
        "labels": {stats.label: label_summary(stats) for stats in parsed.labels},
        "total": label_summary(parsed.total),
        "percentile_definition": PERCENTILE_DEFINITION,
        "timing_unavailable": parsed.timing_unavailable,
        "started_at": parsed.started_at.isoformat() if parsed.started_at else None,
        "finished_at": parsed.finished_at.isoformat() if parsed.finished_at else None,
    }


def stat_row(report: Report, stats: LabelStats, *, is_total: bool) -> LoadTestStat:
    return LoadTestStat(
        report=report,
        run=report.run,
        label=stats.label[:500],
        is_total=is_total,
        is_transaction=stats.is_transaction,
        samples=stats.samples,
        errors=stats.errors,
        error_percent=stats.error_percent,
        min_ms=stats.min_ms,
        max_ms=stats.max_ms,
        mean_ms=stats.mean_ms,
        stdev_ms=stats.stdev_ms,
        p50_ms=stats.p50_ms,
        p90_ms=stats.p90_ms,
        p95_ms=stats.p95_ms,
        p99_ms=stats.p99_ms,
        throughput=stats.throughput,
        received_kbps=stats.received_kbps,
        sent_kbps=stats.sent_kbps,
        timing_unavailable=stats.timing_unavailable[:300],
    )


def label_summary(stats: LabelStats) -> dict:
    return {key: getattr(stats, field) for key, field in LABEL_SUMMARY_FIELDS.items()}


WRITERS = {ReportKind.TRIVY: write_trivy, ReportKind.GAUNTLT: write_gauntlt, ReportKind.JMETER: write_jmeter}
