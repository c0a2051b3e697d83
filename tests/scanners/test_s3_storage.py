"""Raw reports in S3 (moto's server standing in for AWS), as configured with AWS_STORAGE_BUCKET_NAME."""

import io
import socket

import boto3
import pytest
from django.core.files.storage import default_storage

from scanners import services
from scanners.models import Finding, ReportStatus
from tests.factories import RunFactory
from tests.scanners import samples

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_storage(s3_endpoint, settings, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="portal-reports")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": "portal-reports",
                "endpoint_url": s3_endpoint,
                "region_name": "us-east-1",
                "addressing_style": "path",
            },
        },
    }
    return client


def test_it_keeps_the_raw_report_in_s3_and_ingests_from_there(s3_storage):
    content = samples.trivy_report([samples.trivy_vulnerability("CVE-2024-0001")])
    report, _ = services.receive_report(run=RunFactory(), file=io.BytesIO(content), original_name="app.json",
                                        queue=False)
    assert type(default_storage._wrapped).__name__ == "S3Storage"
    stored = s3_storage.get_object(Bucket="portal-reports", Key=report.file.name)["Body"].read()
    assert stored == content
    report = services.ingest_report(report_id=report.pk)
    assert report.status == ReportStatus.PARSED
    assert Finding.objects.filter(report=report).count() == 1


def test_it_masks_secrets_in_s3_and_drops_the_raw_file_of_a_failed_report(s3_storage):
    from tests.scanners.test_secrets import github_token, secret_entry, secret_report

    token = github_token()
    content = secret_report(secret_entry(f"TOKEN = '{token}'"))
    reports = [services.receive_report(run=RunFactory(), file=io.BytesIO(body), original_name="s.json",
                                       kind="trivy", queue=False)[0] for body in (content, content[:-2])]
    parsed, failed = (services.ingest_report(report_id=report.pk) for report in reports)
    assert (parsed.status, failed.status) == (ReportStatus.PARSED, ReportStatus.FAILED)
    stored = s3_storage.get_object(Bucket="portal-reports", Key=parsed.file.name)["Body"].read()
    assert len(stored) == len(content) and token.encode() not in stored and b"github-pat" in stored
    keys = [item["Key"] for item in s3_storage.list_objects_v2(Bucket="portal-reports").get("Contents", [])]
    assert reports[1].file.name not in keys and not failed.file
