"""Report uploads through the API: stored raw at once (202), ingested in the background."""

import json
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from deliveries.models import AuditEvent, PipelineRun, RunStatus
from scanners.models import Finding, Report, ReportStatus
from tests.factories import ProjectFactory, RunFactory, issue_project_token
from tests.scanners import samples

pytestmark = pytest.mark.django_db

TRIVY = samples.trivy_report([samples.trivy_vulnerability("CVE-2024-0001", severity="CRITICAL"),
                              samples.trivy_vulnerability("CVE-2024-0002", package="zlib")])


@pytest.fixture
def shop():
    project, _, token = issue_project_token(ProjectFactory(slug="shop", name="Shop"))
    return project, token


def upload(client, token, content: bytes, *, build_number=42, name="trivy-app.json", **fields):
    body = {"file": SimpleUploadedFile(name, content, content_type="application/json"), **fields}
    return client.post(f"/api/v1/projects/shop/runs/{build_number}/reports/", data=body,
                       HTTP_AUTHORIZATION=f"Bearer {token}")


def stored_files() -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


def test_it_accepts_a_report_and_ingests_it(client, shop, django_capture_on_commit_callbacks):
    project, token = shop
    run = RunFactory(project=project, build_number=42)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = upload(client, token, TRIVY, kind="trivy")
    assert response.status_code == 202
    assert len(callbacks) == 1
    report = Report.objects.get()
    assert response.json() == {
        "id": report.pk, "kind": "trivy", "status": "received", "sha256": report.sha256,
        "url": f"http://127.0.0.1:8000/reports/{report.pk}/",
    }
    report.refresh_from_db()
    assert report.run == run and report.status == ReportStatus.PARSED  # tests run django-q2 tasks inline
    assert Finding.objects.filter(report=report).count() == 2
    event = AuditEvent.objects.get(project=project)
    assert event.action == "report.received" and event.data["sha256"] == report.sha256


def test_it_detects_the_kind_when_not_given(client, shop, django_capture_on_commit_callbacks):
    project, token = shop
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, token, TRIVY)
    assert response.status_code == 202
    assert Report.objects.get().kind == "trivy"


def test_the_same_file_again_answers_200_with_the_same_report(client, shop, django_capture_on_commit_callbacks):
    project, token = shop
    with django_capture_on_commit_callbacks(execute=True):
        first = upload(client, token, TRIVY)
    events = AuditEvent.objects.count()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        again = upload(client, token, TRIVY, name="renamed.json")
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["status"] == "parsed"
    assert callbacks == []
    assert Report.objects.count() == 1 and AuditEvent.objects.count() == events


def test_it_creates_the_run_of_a_report_for_a_build_it_has_not_seen(client, shop):
    project, token = shop
    assert upload(client, token, TRIVY, build_number=99).status_code == 202
    run = PipelineRun.objects.get(project=project, build_number=99)
    assert (run.branch, run.status) == ("", RunStatus.RUNNING)


def test_it_refuses_an_upload_over_the_cap_with_413_and_stores_nothing(client, shop, settings):
    project, token = shop
    settings.REPORT_MAX_BYTES = 2048
    before = stored_files()
    response = upload(client, token, b"x" * 4096)  # under the multipart slack: refused on the file's size
    assert response.status_code == 413
    assert "REPORT_MAX_BYTES" in response.json()["detail"]
    assert "4,096 bytes" in response.json()["detail"]
    assert not Report.objects.exists() and not PipelineRun.objects.exists()
    assert stored_files() == before


def test_it_refuses_a_body_over_the_cap_before_reading_it(client, shop, settings):
    project, token = shop
    settings.REPORT_MAX_BYTES = 2048
    before = stored_files()
    response = upload(client, token, b"x" * 200_000)  # refused on Content-Length
    assert response.status_code == 413
    assert not Report.objects.exists() and stored_files() == before


def test_it_refuses_a_json_body_with_415(client, shop):
    project, token = shop
    response = client.post("/api/v1/projects/shop/runs/42/reports/", data=json.dumps({"file": "x"}),
                           content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 415
    assert not Report.objects.exists()


def test_it_refuses_an_upload_without_a_file(client, shop):
    project, token = shop
    response = client.post("/api/v1/projects/shop/runs/42/reports/", data={"kind": "trivy"},
                           HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 400
    assert "file" in response.json()


def test_it_refuses_an_empty_file(client, shop):
    project, token = shop
    response = upload(client, token, b"")
    assert response.status_code == 400 and "file" in response.json()


def test_it_refuses_an_unknown_kind(client, shop):
    project, token = shop
    response = upload(client, token, TRIVY, kind="sonar")
    assert response.status_code == 400
    assert "kind" in response.json()
    assert not Report.objects.exists()


def test_it_keeps_a_report_that_cannot_be_parsed_as_failed(client, shop, django_capture_on_commit_callbacks):
    project, token = shop
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, token, b'{"SchemaVersion": 2, "Results": [', kind="trivy")
    assert response.status_code == 202
    report = Report.objects.get()
    assert report.status == ReportStatus.FAILED and report.error


@pytest.mark.parametrize("name", ["a" * 300 + ".json", "é" * 250 + ".json", "x" * 254, "r." + "j" * 300])
def test_it_stores_a_report_whose_name_is_longer_than_the_file_system_allows(client, shop, name,
                                                                             django_capture_on_commit_callbacks):
    project, token = shop
    client.raise_request_exception = False
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, token, TRIVY, kind="trivy", name=name)
    assert response.status_code == 202
    report = Report.objects.get()
    assert report.status == ReportStatus.PARSED
    assert 0 < len(report.original_name) <= 255  # Django's upload handler has cut it to 255 characters
    stored = Path(report.file.path)
    assert stored.read_bytes() == TRIVY
    assert len(stored.name.encode()) <= 255 and stored.name.startswith(f"{report.run_id}-{report.sha256[:16]}-")
    if name.endswith(".json"):
        assert stored.name.endswith(".json")
