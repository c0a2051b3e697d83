import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from deliveries.models import FINISHED_RUN_STATUSES, PipelineRun, Project, RunStatus, RunTrigger
from scanners import services
from scanners.models import ReportKind, ReportStatus

PROGRESS_FROM_BYTES = 8 * 1024 * 1024
# A run created for imported reports: finished (its Jenkins build is over), or still running. Never
# "trigger failed": the portal did not trigger it.
IMPORTED_RUN_STATUSES = FINISHED_RUN_STATUSES - {RunStatus.TRIGGER_FAILED}
SUMMARY_KEYS = {
    ReportKind.TRIVY: ["findings", "by_severity", "by_class", "new", "persisting", "fixed"],
    ReportKind.JMETER: ["samples", "errors", "labels", "total"],
    ReportKind.GAUNTLT: ["scenarios", "passed", "failed", "other"],
}


class Command(BaseCommand):
    help = "Ingest Trivy, Gauntlt or JMeter reports into a run (created if missing). Exits 1 if any file fails."

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", metavar="FILE")
        parser.add_argument("--project", required=True, metavar="SLUG")
        parser.add_argument("--build", required=True, type=int, metavar="N", help="Jenkins build number")
        parser.add_argument("--kind", choices=[*ReportKind.values, "auto"], default="auto")
        parser.add_argument("--branch", help="Branch of a run created here (default: the project's dev branch)")
        parser.add_argument(
            "--status", choices=[RunStatus.RUNNING, *sorted(IMPORTED_RUN_STATUSES)], default=RunStatus.SUCCESS,
            help="Status of a run created here (default: success; a historical build being imported has finished)",
        )
        parser.add_argument("--json", action="store_true", help="One JSON object per file, one per line")

    def handle(self, *args, files, project, build, kind, branch, status, json, **options):
        try:
            project_row = Project.objects.get(slug=project)
        except Project.DoesNotExist:
            raise CommandError(f"no project with slug {project!r}") from None
        now = timezone.now()
        run, _ = PipelineRun.objects.get_or_create(
            project=project_row,
            build_number=build,
            defaults={
                "branch": branch or project_row.dev_branch,
                "trigger": RunTrigger.JENKINS,
                "status": status,
                "started_at": now,
                "finished_at": None if status == RunStatus.RUNNING else now,
            },
        )
        failures = 0
        for name in files:
            outcome = self.ingest_one(run, Path(name), "" if kind == "auto" else kind, quiet=json)
            failures += outcome["status"] != ReportStatus.PARSED
            self.stdout.write(to_json(outcome) if json else describe(outcome))
        if failures:
            raise CommandError(f"{failures} of {len(files)} file(s) failed", returncode=1)

    def ingest_one(self, run, path: Path, kind: str, *, quiet: bool) -> dict:
        outcome = {"file": str(path), "kind": kind or None, "status": ReportStatus.FAILED.value, "error": None}
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            return {**outcome, "error": f"cannot open the file: {exc.strerror}"}
        size = path.stat().st_size
        show = size >= PROGRESS_FROM_BYTES and not (quiet and not sys.stderr.isatty())
        with handle, progress_bar(size, "storing", show) as bar:
            report, _ = services.receive_report(
                run=run, file=handle, original_name=path.name, kind=kind, queue=False, progress=bar.update
            )
        if report.status in (ReportStatus.RECEIVED, ReportStatus.PARSING):
            with progress_bar(size, "parsing", show) as bar:
                report = services.ingest_report(report_id=report.pk, progress=lambda done: bar.update(done - bar.n))
        outcome.update(kind=report.kind or None, status=report.status, error=report.error or None)
        if report.status == ReportStatus.PARSED:
            outcome.update({key: report.summary.get(key) for key in SUMMARY_KEYS[report.kind]})
        return outcome


def progress_bar(total: int, description: str, show: bool):
    return tqdm(total=total, desc=description, unit="B", unit_scale=True, disable=not show, leave=False)


def to_json(outcome: dict) -> str:
    return json.dumps(outcome, sort_keys=False, default=str)


def describe(outcome: dict) -> str:
    if outcome["status"] != ReportStatus.PARSED:
        return f"{outcome['file']}: FAILED ({outcome['kind'] or 'unknown kind'}): {outcome['error']}"
    kind = outcome["kind"]
    if kind == ReportKind.TRIVY:
        severities = ", ".join(f"{k} {v}" for k, v in outcome["by_severity"].items() if v)
        detail = f"{outcome['findings']} findings ({severities or 'none'}); "
        detail += f"{outcome['new']} new, {outcome['fixed']} fixed"
    elif kind == ReportKind.JMETER:
        total = outcome["total"]
        p95 = "n/a" if total["p95"] is None else f"{total['p95']:.1f} ms"
        throughput = "n/a" if total["throughput"] is None else f"{total['throughput']:.1f}/s"
        detail = (
            f"{outcome['samples']} samples, {outcome['errors']} errors, {len(outcome['labels'])} labels; "
            f"p95 {p95}, {throughput}"
        )
    else:
        detail = f"{outcome['scenarios']} scenarios: {outcome['passed']} passed, {outcome['failed']} failed"
    return f"{outcome['file']}: {kind} parsed, {detail}"
