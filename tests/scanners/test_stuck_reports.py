"""Reports stuck waiting or parsing (a worker killed, out of memory or over its time; a task lost with Redis): the
reaper queues them again a bounded number of times, then fails them with the reason; the report page says how
long it has taken; operators can parse a failed or stuck report again."""

import io
from datetime import timedelta
from unittest import mock

import pytest
from django.urls import reverse
from django.utils import timezone

from deliveries.models import AuditEvent
from scanners import services, tasks
from scanners.models import Finding, Report, ReportStatus
from tests.factories import RunFactory, UserFactory
from tests.scanners import samples

pytestmark = pytest.mark.django_db

LONG_AGO = timedelta(minutes=30)  # longer than the 10 minutes a parse may take by default


def received(content: bytes | None = None) -> Report:
    content = content or samples.trivy_report([samples.trivy_vulnerability("CVE-2024-0001")])
    report, _ = services.receive_report(run=RunFactory(), file=io.BytesIO(content), original_name="app.json",
                                        queue=False)
    return report


def left_parsing(report: Report, *, ago=LONG_AGO, attempts: int = 1) -> Report:
    """As a worker leaves a report it was parsing when it died."""
    Report.objects.filter(pk=report.pk).update(status=ReportStatus.PARSING, status_changed_at=timezone.now() - ago,
                                               parse_attempts=attempts)
    report.refresh_from_db()
    return report


def test_the_reaper_queues_a_report_left_parsing_again_and_it_is_parsed(django_capture_on_commit_callbacks):
    report = left_parsing(received())
    with django_capture_on_commit_callbacks(execute=True):  # the test settings run the queued task inline
        assert tasks.reap_stuck_reports() == {"queued_again": 1, "failed": 0}
    report.refresh_from_db()
    assert (report.status, report.parse_attempts) == (ReportStatus.PARSED, 2)
    assert Finding.objects.filter(report=report).count() == 1


def test_the_reaper_queues_a_report_whose_task_was_lost_before_any_worker_took_it(django_capture_on_commit_callbacks):
    report = received()
    Report.objects.filter(pk=report.pk).update(created_at=timezone.now() - LONG_AGO)
    with mock.patch("scanners.services.async_task") as async_task:
        with django_capture_on_commit_callbacks(execute=True):
            assert services.reap_stuck_reports() == {"queued_again": 1, "failed": 0}
    async_task.assert_called_once_with("scanners.tasks.ingest_report", report.pk,
                                       task_name=f"ingest report {report.pk}", cluster="ingest")
    report.refresh_from_db()
    assert report.status == ReportStatus.RECEIVED and not report.is_stuck  # waiting again, from now
    assert services.reap_stuck_reports() == {"queued_again": 0, "failed": 0}  # not queued twice in a row


def test_the_reaper_leaves_alone_what_is_within_its_time():
    parsing = left_parsing(received(), ago=timedelta(minutes=2))
    waiting = received(samples.trivy_report([]))
    parsed = services.ingest_report(report_id=received(samples.trivy_report([], image="other")).pk)
    Report.objects.filter(pk=parsed.pk).update(created_at=timezone.now() - LONG_AGO)
    with mock.patch("scanners.services.async_task") as async_task:
        assert services.reap_stuck_reports() == {"queued_again": 0, "failed": 0}
    async_task.assert_not_called()
    assert [r.status for r in Report.objects.filter(pk__in=[parsing.pk, waiting.pk]).order_by("pk")] == [
        ReportStatus.PARSING, ReportStatus.RECEIVED]


def test_a_report_out_of_attempts_fails_with_the_reason_and_keeps_its_file(settings):
    settings.REPORT_PARSE_ATTEMPTS = 3
    report = left_parsing(received(), attempts=3)
    with mock.patch("scanners.services.async_task") as async_task:
        assert services.reap_stuck_reports() == {"queued_again": 0, "failed": 1}
    async_task.assert_not_called()
    report.refresh_from_db()
    assert report.status == ReportStatus.FAILED
    assert report.error == ("parsing was started 3 times and never finished: the worker stopped (killed, or out of "
                            "memory) or went over the 10 minutes a parse may take; the file is kept")
    assert report.file


def test_a_second_task_does_not_take_a_report_another_worker_is_parsing():
    report = left_parsing(received(), ago=timedelta(seconds=5))
    assert services.ingest_report(report_id=report.pk).status == ReportStatus.PARSING
    report.refresh_from_db()
    assert report.parse_attempts == 1 and not Finding.objects.exists()


def test_a_task_for_a_report_out_of_attempts_leaves_it_to_the_reaper(settings):
    settings.REPORT_PARSE_ATTEMPTS = 2
    report = left_parsing(received(), attempts=2)
    assert services.ingest_report(report_id=report.pk).status == ReportStatus.PARSING
    assert not Finding.objects.exists()


def test_ingestion_is_queued_on_the_ingestion_cluster(django_capture_on_commit_callbacks):
    with mock.patch("scanners.services.async_task") as async_task:
        with django_capture_on_commit_callbacks(execute=True):
            report, _ = services.receive_report(run=RunFactory(), file=io.BytesIO(b"[]"), original_name="a.json")
    assert async_task.call_args.kwargs["cluster"] == "ingest"
    assert async_task.call_args.args == ("scanners.tasks.ingest_report", report.pk)


@pytest.mark.parametrize("broker_name", ["orm", "redis"])
def test_the_reaper_schedule_exists_and_queues_its_task_on_either_broker(monkeypatch, broker_name):
    from django_q.models import Schedule

    from tests.deliveries.test_triggers import funcs_the_scheduler_queues

    schedule = Schedule.objects.get(name="Reap reports stuck in parsing")  # made by a migration
    assert (schedule.func, schedule.schedule_type, schedule.repeats, schedule.cluster) == (
        "scanners.tasks.reap_stuck_reports", Schedule.MINUTES, -1, None)  # the default cluster runs it
    assert "scanners.tasks.reap_stuck_reports" in funcs_the_scheduler_queues(monkeypatch, broker_name)
    schedule.refresh_from_db()
    assert schedule.next_run > timezone.now()


# --- the report page ---------------------------------------------------------------------------------------


def test_the_report_page_says_how_long_a_stuck_parse_has_taken(client, users):
    report = left_parsing(received(), ago=timedelta(minutes=14))
    client.force_login(users.developer)
    page = client.get(report.get_absolute_url()).content.decode()
    assert "Parsing has taken 14 min" in page
    assert "attempt 1 of 3" in page
    assert "Parse again" not in page  # a developer may not


def test_the_report_page_says_how_long_a_report_has_waited_for_a_worker(client, users):
    report = received()
    Report.objects.filter(pk=report.pk).update(created_at=timezone.now() - timedelta(hours=1, minutes=3))
    client.force_login(users.operator)
    page = client.get(report.get_absolute_url()).content.decode()
    assert "Waiting for a worker for 1 h 3 min" in page and "Q_CLUSTER_NAME=ingest" in page
    assert "Parse again" in page


def test_a_parse_within_its_time_shows_no_warning_and_no_action(client, users):
    report = left_parsing(received(), ago=timedelta(minutes=3))
    client.force_login(users.operator)
    page = client.get(report.get_absolute_url()).content.decode()
    assert "Parsing has taken" not in page and "Parse again" not in page


# --- Parse again ---------------------------------------------------------------------------------------------


def parse_again(client, report):
    return client.post(reverse("report-parse-again", args=[report.pk]), {"confirm": "yes"})


def test_an_operator_parses_a_stuck_report_again_and_it_is_audited(client, users, django_capture_on_commit_callbacks):
    report = left_parsing(received(), attempts=3)
    client.force_login(users.operator)
    with django_capture_on_commit_callbacks(execute=True):
        response = parse_again(client, report)
    assert response.status_code == 302 and response.url == report.get_absolute_url()
    report.refresh_from_db()
    assert (report.status, report.parse_attempts) == (ReportStatus.PARSED, 1)
    event = AuditEvent.objects.get(action="report.parse_requested")
    assert (event.actor, event.target_id, event.data["status"], event.data["parse_attempts"]) == (
        users.operator, str(report.pk), "parsing", 3)


def test_a_superuser_parses_a_failed_report_again(client, django_capture_on_commit_callbacks):
    report = received()
    Report.objects.filter(pk=report.pk).update(status=ReportStatus.FAILED, error="worker died")
    client.force_login(UserFactory(username="root", is_superuser=True, is_staff=True))
    with django_capture_on_commit_callbacks(execute=True):
        parse_again(client, report)
    report.refresh_from_db()
    assert (report.status, report.error) == (ReportStatus.PARSED, "")


def test_parse_again_needs_the_confirmation(client, users):
    report = left_parsing(received())
    client.force_login(users.operator)
    response = client.post(reverse("report-parse-again", args=[report.pk]), follow=True)
    assert "Tick the box to confirm" in response.content.decode()
    report.refresh_from_db()
    assert report.status == ReportStatus.PARSING and not AuditEvent.objects.exists()


def test_a_report_parsed_or_within_its_time_is_not_parsed_again(client, users):
    report = services.ingest_report(report_id=received().pk)
    client.force_login(users.operator)
    response = client.post(reverse("report-parse-again", args=[report.pk]), {"confirm": "yes"}, follow=True)
    assert "Only a failed or stuck report can be parsed again; this one is parsed." in response.content.decode()
    fresh = left_parsing(received(samples.trivy_report([])), ago=timedelta(minutes=1))
    client.post(reverse("report-parse-again", args=[fresh.pk]), {"confirm": "yes"})
    fresh.refresh_from_db()
    assert fresh.status == ReportStatus.PARSING and not AuditEvent.objects.exists()


def test_a_failed_report_without_its_raw_file_cannot_be_parsed_again(client, users):
    report = received()
    Report.objects.filter(pk=report.pk).update(status=ReportStatus.FAILED, file="")
    client.force_login(users.operator)
    response = client.post(reverse("report-parse-again", args=[report.pk]), {"confirm": "yes"}, follow=True)
    assert "raw file is not kept" in response.content.decode()


@pytest.mark.parametrize("role", ["developer", "techlead", "outsider"])
def test_only_operators_may_parse_again(client, users, role):
    report = left_parsing(received())
    client.force_login(getattr(users, role))
    assert parse_again(client, report).status_code == 403
    assert not AuditEvent.objects.exists()


def test_parse_again_is_a_post(client, users):
    report = left_parsing(received())
    client.force_login(users.operator)
    assert client.get(reverse("report-parse-again", args=[report.pk])).status_code == 405


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [("REPORT_PARSE_ATTEMPTS", "0", "must be at least 1"), ("REPORT_PARSE_TIMEOUT_SECONDS", "soon", "whole number")],
)
def test_parse_settings_that_make_no_sense_stop_the_portal_at_start(name, value, error):
    import os
    import subprocess
    import sys
    from pathlib import Path

    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.test_settings", name: value}
    checked = subprocess.run([sys.executable, "manage.py", "check"], cwd=Path(__file__).resolve().parents[2],
                             env=environment, capture_output=True, text=True, timeout=60)
    assert checked.returncode != 0
    assert name in checked.stderr and error in checked.stderr
