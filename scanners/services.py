"""Writes of the scanners app: receiving raw reports and ingesting what is parsed out of them.

A report is stored raw at once, then ingested by a background task in one transaction: the
parsers (pure) run first, outside any transaction; then the secrets in the kept raw file are starred
out; then the rows are written all together. Or the report is marked failed with the parser's message,
nothing else is written, and its raw file is dropped: only a file proven clean is kept.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from functools import partial
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_q.tasks import async_task

from deliveries.audit import audit
from deliveries.models import PipelineRun, Project
from deliveries.services import check_build_number, locked_run
from portal.bulk import insert_rows
from portal.queries import first
from scanners import selectors
from scanners.models import (
    STUCK_STATUSES,
    AttackScenario,
    Finding,
    FindingClass,
    LoadTestBucket,
    LoadTestStat,
    Report,
    ReportKind,
    ReportStatus,
    Severity,
    parse_timeout,
)
from scanners.parsers.common import ReportParseError, without_nul
from scanners.parsers.detect import detect_kind
from scanners.parsers.gauntlt import GauntltReport, parse_gauntlt
from scanners.parsers.jmeter import PERCENTILE_DEFINITION, JMeterResult, LabelStats, parse_jmeter
from scanners.parsers.masking import SecretsNotMasked, mask_file, mask_tokens
from scanners.parsers.trivy import TrivyReport, TrivyStream, stream_trivy

logger = logging.getLogger(__name__)

SNIFF_BYTES = 64 * 1024
CHUNK_BYTES = 1024 * 1024
BULK_BATCH = 2000


class ReportTooLarge(Exception):
    def __init__(self, size: int, limit: int):
        self.size, self.limit = size, limit
        super().__init__(f"the file is {size:,} bytes, over the {limit:,} bytes allowed (REPORT_MAX_BYTES)")


STORED_NAME_BYTES = 120  # well under the 255 bytes a file name may have on most file systems


def storage_name(run_pk: int, digest: str, original_name: str) -> str:
    """The raw file's name in storage: its run, its hash and the uploaded name, which is cut (keeping a short
    extension) so that the whole fits any file system: a longer name is ENAMETOOLONG."""
    name = original_name or "report"
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or not extension.isascii() or not extension.isalnum() or len(extension) > 10:
        stem, extension = name, ""
    prefix = f"{run_pk}-{digest[:16]}-"
    room = STORED_NAME_BYTES - len(prefix) - (len(extension) + 1 if extension else 0)
    stem = stem.encode()[:room].decode(errors="ignore")  # whole characters only
    return prefix + stem + (f".{extension}" if extension else "")


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
        report.file.save(storage_name(run.pk, digest, report.original_name), File(file), save=False)
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
    """Queue the report's parse on the ingestion cluster, where it never waits behind other work."""
    async_task("scanners.tasks.ingest_report", report_id, task_name=f"ingest report {report_id}",
               cluster=settings.REPORT_INGEST_CLUSTER)


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
    """Parse a stored report and write what it holds. Safe to run again: a parsed report is left alone, one
    another worker is parsing too, and one out of attempts (the reaper fails it); one left in `parsing` by a
    worker that died or went over its time is parsed afresh."""
    now = timezone.now()
    claimed = (
        Report.objects.filter(pk=report_id, parse_attempts__lt=settings.REPORT_PARSE_ATTEMPTS)
        .filter(Q(status=ReportStatus.RECEIVED) | Q(status=ReportStatus.PARSING, status_changed_at__isnull=True)
                | Q(status=ReportStatus.PARSING, status_changed_at__lt=now - parse_timeout()))
        .update(status=ReportStatus.PARSING, error="", status_changed_at=now, parse_attempts=F("parse_attempts") + 1)
    )
    report = Report.objects.select_related("run__project").get(pk=report_id)
    if not claimed:
        return report
    kind = report.kind
    try:
        with local_copy(report) as path:
            kind = kind or detect_kind(read_head(path), report.original_name)
            # A Trivy report is read while its findings are written: its errors can surface during the write.
            return write_parsed(report_id=report_id, kind=kind, parsed=parse(kind, path, progress=progress))
    except (ReportParseError, RawFileNotClean) as exc:
        return mark_failed(report, str(exc), kind=kind)
    except OSError as exc:
        return mark_failed(report, f"the stored file could not be read: {exc.strerror or exc}", kind=kind)
    except DatabaseError as exc:  # e.g. a value the database refuses: the report fails, it never stays "parsing"
        log_unexpected(report_id, "storing what was parsed", exc)
        return mark_failed(report, f"what was parsed could not be stored ({reason(exc)})", kind=kind)
    except Exception as exc:  # noqa: BLE001 - a parser bug must fail this report, not leave it "parsing"
        log_unexpected(report_id, "parsing", exc)
        return mark_failed(report, f"internal error while parsing ({type(exc).__name__})", kind=kind)


def reason(exc: Exception) -> str:
    """An exception in a few words for the report's error: its type and the first line of its message."""
    first_line = str(exc).strip().split("\n", 1)[0][:300]
    return f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__


# --- Reports stuck waiting or parsing ---------------------------------------------------------------------------

REAP_BATCH = 200  # reports handled per sweep: a sweep stays far below the task timeout


class ParseRefused(Exception):
    """A report that cannot be parsed again now; the message says why, for the user."""


def stuck_reports(*, older_than=None):
    """Reports waiting for a worker, or parsing, for longer than a parse may take: the worker died (a kill, the
    machine) or went over its time, or the task was lost with a Redis broker's worker. The oldest first."""
    since = timezone.now() - (older_than if older_than is not None else parse_timeout())
    return (
        Report.objects.filter(status__in=STUCK_STATUSES)
        .alias(waiting_since=Coalesce("status_changed_at", "created_at"))
        .filter(waiting_since__lt=since)
        .order_by("waiting_since", "pk")
    )


def reap_stuck_reports(*, older_than=None) -> dict[str, int]:
    """Queue the stuck reports again, or fail those that used their REPORT_PARSE_ATTEMPTS, with the reason.

    Each report is locked and checked again before it is touched, so a worker finishing it meanwhile wins.
    """
    counts = {"queued_again": 0, "failed": 0}
    for report_id in list(stuck_reports(older_than=older_than).values_list("pk", flat=True)[:REAP_BATCH]):
        outcome = reap(report_id, older_than=older_than)
        if outcome:
            counts[outcome] += 1
    if any(counts.values()):
        logger.warning("Reports stuck waiting or parsing: %s", counts)
    return counts


def reap(report_id: int, *, older_than=None) -> str:
    with transaction.atomic():
        report = stuck_reports(older_than=older_than).select_for_update().filter(pk=report_id).first()
        if report is None:
            return ""
        if report.parse_attempts >= settings.REPORT_PARSE_ATTEMPTS:
            minutes = settings.REPORT_PARSE_TIMEOUT_SECONDS / 60
            mark_failed(report, f"parsing was started {report.parse_attempts} times and never finished: the worker "
                                f"stopped (killed, or out of memory) or went over the {minutes:g} minutes a parse may "
                                "take")
            return "failed"
        Report.objects.filter(pk=report.pk).update(status=ReportStatus.RECEIVED, status_changed_at=timezone.now())
        transaction.on_commit(partial(queue_ingestion, report.pk))
    return "queued_again"


def request_parse_again(*, report: Report, user) -> None:
    """Parse a failed or stuck report afresh from its raw file, with its attempts counted from zero (audited)."""
    with transaction.atomic():
        report = Report.objects.select_for_update().get(pk=report.pk)
        if not (report.status == ReportStatus.FAILED or report.is_stuck):
            raise ParseRefused(f"Only a failed or stuck report can be parsed again; this one is "
                               f"{report.get_status_display().lower()}.")
        if not report.file:
            raise ParseRefused("This report's raw file is not kept: there is nothing to parse again.")
        previous = {"status": report.status, "error": report.error[:500], "parse_attempts": report.parse_attempts}
        delete_parsed_rows(report)
        Report.objects.filter(pk=report.pk).update(status=ReportStatus.RECEIVED, error="", summary={},
                                                   parse_attempts=0, status_changed_at=timezone.now())
        audit(project_id=report.run.project_id, actor=user, action="report.parse_requested", target=report,
              data=previous)
        transaction.on_commit(partial(queue_ingestion, report.pk))


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
        if report.file:  # in the transaction: a file that cannot be proven clean fails the report, nothing written
            unmasked = mask_stored_secrets(report, reported_at_least=reported_secrets(report))
            if unmasked:
                raise RawFileNotClean(unmasked)
        report.status = ReportStatus.PARSED
        report.error = ""
        report.parsed_at = timezone.now()
        report.save(update_fields=["kind", "summary", "status", "error", "parsed_at"])
    return report


def mask_stored_secrets(report: Report, *, reported_at_least: int = 0) -> str:
    """Star out, in the kept raw file, every secret it reveals, whatever its kind (scanners.parsers.masking).
    Returns "" when done, else why the file could not be proven clean (the caller fails the report, which drops
    the file).

    `sha256` stays the hash of the upload, so the same upload is still recognised.
    """
    try:
        with local_copy(report) as path:
            if mask_file(path, reported_at_least=reported_at_least) and not stored_on_disk(report):
                replace_stored_file(report, path)
    except SecretsNotMasked as exc:
        return f"the raw file could not be proven free of secrets: {exc}"
    except Exception as exc:  # noqa: BLE001 - whatever goes wrong, the file must not stay in clear
        log_unexpected(report.pk, "masking secrets", exc)
        return f"internal error while masking secrets ({type(exc).__name__})"
    return ""


class RawFileNotClean(Exception):
    """The kept raw file could not be proven free of secrets; the message says why."""


def reported_secrets(report: Report) -> int:
    """How many secrets with a match the report's parse wrote: the masking must find at least as many."""
    if report.kind != ReportKind.TRIVY:
        return 0
    return Finding.objects.filter(report=report, finding_class=FindingClass.SECRET).exclude(detail="").count()


def replace_stored_file(report: Report, path: Path) -> None:
    storage, name = report.file.storage, report.file.name
    storage.delete(name)
    with open(path, "rb") as masked:
        saved_as = storage.save(name, File(masked))
    if saved_as != name:
        Report.objects.filter(pk=report.pk).update(file=saved_as)
        report.file.name = saved_as


def drop_raw_file(report: Report) -> None:
    """Delete the kept raw file (storage first: a row left pointing at nothing is safer than a file left)."""
    if report.file:
        report.file.storage.delete(report.file.name)
        report.file = ""


def log_unexpected(report_id: int, doing: str, exc: Exception) -> None:
    """Log where it failed, without the exception's message: it may quote the report's content."""
    logger.error("report %s: unexpected %s while %s\n%s", report_id, type(exc).__name__, doing,
                 "".join(traceback.format_tb(exc.__traceback__)))


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
    """Fail the report with its reason, and drop its raw file: the file of a report that failed was never proven
    free of secrets. A failed report keeps its error, not its raw file."""
    message = mask_tokens(without_nul(message))[:5000]
    drop_raw_file(report)
    with transaction.atomic():
        delete_parsed_rows(report)
        report.status = ReportStatus.FAILED
        report.error = message
        report.kind = report.kind or (kind if kind in ReportKind.values else "")
        report.summary = {}
        report.save(update_fields=["status", "error", "kind", "summary", "file"])
    logger.info("report %s failed: %s", report.pk, message)
    return report


def delete_parsed_rows(report: Report) -> None:
    for model in (Finding, AttackScenario, LoadTestStat, LoadTestBucket):
        model.objects.filter(report=report).delete()


def stored_on_disk(report: Report) -> bool:
    try:
        return bool(report.file.path)
    except NotImplementedError:
        return False  # remote storage (S3) has no path


@contextmanager
def local_copy(report: Report) -> Iterator[Path]:
    """A path on local disk holding the report: the stored file itself, or a temporary copy (S3)."""
    if stored_on_disk(report):
        yield Path(report.file.path)
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
