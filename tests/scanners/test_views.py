import io

import pytest
from django.urls import reverse

from scanners import services
from tests.factories import RunFactory
from tests.scanners import samples

pytestmark = pytest.mark.django_db


def ingest(run, content: bytes, name: str):
    report, _ = services.receive_report(run=run, file=io.BytesIO(content), original_name=name, queue=False)
    return services.ingest_report(report_id=report.pk)


@pytest.fixture
def trivy_report():
    return ingest(RunFactory(), samples.trivy_report([
        samples.trivy_vulnerability("CVE-2024-0001", severity="CRITICAL"),
        samples.trivy_vulnerability("CVE-2024-0002", package="zlib", severity="LOW",
                                    title="<script>alert('pwned')</script>"),
    ]), "app.json")


def test_the_run_page_links_to_its_reports(client, users, trivy_report):
    client.force_login(users.developer)
    body = client.get(trivy_report.run.get_absolute_url()).content.decode()
    assert reverse("report-detail", args=[trivy_report.pk]) in body
    assert "Parsed" in body


def test_the_report_page_lists_findings_and_filters_by_severity(client, users, trivy_report):
    client.force_login(users.developer)
    url = reverse("report-detail", args=[trivy_report.pk])
    assert [f.identifier for f in client.get(url).context["page"]] == ["CVE-2024-0001", "CVE-2024-0002"]
    assert [f.identifier for f in client.get(url, {"severity": "LOW"}).context["page"]] == ["CVE-2024-0002"]
    assert [f.identifier for f in client.get(url, {"q": "zlib"}).context["page"]] == ["CVE-2024-0002"]
    assert [f.identifier for f in client.get(url, {"sort": "package"}).context["page"]] == [
        "CVE-2024-0001", "CVE-2024-0002"]


def test_text_from_reports_is_escaped(client, users, trivy_report):
    client.force_login(users.developer)
    body = client.get(reverse("report-detail", args=[trivy_report.pk])).content.decode()
    assert "<script>alert" not in body
    assert "&lt;script&gt;alert" in body


def test_the_report_page_shows_scenarios_and_load_statistics(client, users):
    run = RunFactory()
    attacks = ingest(run, samples.cucumber_report([("nmap", "failed", "port 23 is open")]), "attacks.json")
    load = ingest(run, samples.jtl_csv([(1_700_000_000_000 + i, 10 + i, "home", True) for i in range(5)]), "l.jtl")
    client.force_login(users.operator)
    body = client.get(reverse("report-detail", args=[attacks.pk])).content.decode()
    assert "nmap" in body and "port 23 is open" in body
    body = client.get(reverse("report-detail", args=[load.pk])).content.decode()
    assert "home" in body and "Total" in body


def test_the_report_page_marks_transaction_rows_and_shows_missing_timing_as_not_available(client, users):
    run = RunFactory()
    rows = [(1_700_000_000_000 + i, 10 + i, "home" if i % 2 else "TC buy", True) for i in range(6)]
    with_transactions = ingest(run, samples.jtl_csv_with_transactions(rows, ("TC buy",)), "tc.jtl")
    untimed = ingest(run, samples.jtl_xml_without_timing([("home", True), ("home", False)]), "untimed.jtl")
    client.force_login(users.developer)

    body = client.get(reverse("report-detail", args=[with_transactions.pk])).content.decode()
    assert "3 samples" in body and "3 Transaction Controller samples" in body
    assert 'TC buy\n          <span class="status status-transaction">transaction</span>' in body
    body = client.get(reverse("report-detail", args=[untimed.pk])).content.decode()
    assert "2 samples, 1 errors" in body
    assert "n/a: the samples have no elapsed time (XML attribute t)" in body
    assert '<td class="num">n/a</td>' in body and '<td class="num">0.0</td>' not in body


def test_a_failed_report_shows_its_error(client, users):
    report = ingest(RunFactory(), b"\x00\x01garbage", "mystery.bin")
    client.force_login(users.developer)
    body = client.get(reverse("report-detail", args=[report.pk])).content.decode()
    assert "cannot tell the report kind" in body


def test_outsiders_cannot_see_reports(client, users, trivy_report):
    client.force_login(users.outsider)
    assert client.get(reverse("report-detail", args=[trivy_report.pk])).status_code == 403


def test_an_unknown_report_is_404(client, users):
    client.force_login(users.developer)
    assert client.get(reverse("report-detail", args=[999999])).status_code == 404


def download(client, report):
    response = client.get(reverse("report-download", args=[report.pk]))
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response, body


@pytest.mark.parametrize("role", ["developer", "techlead", "operator"])
def test_every_role_that_reads_a_report_can_download_it_raw(client, users, trivy_report, role):
    client.force_login(getattr(users, role))
    report_page = client.get(trivy_report.get_absolute_url()).content.decode()
    assert reverse("report-download", args=[trivy_report.pk]) in report_page
    response, body = download(client, trivy_report)
    assert response.status_code == 200
    with trivy_report.file.open("rb") as stored:
        assert body == stored.read()
    assert response["Content-Disposition"] == 'attachment; filename="app.json"'
    assert response["Content-Type"] == "application/octet-stream"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_a_downloaded_trivy_report_has_its_secrets_masked(client, users):
    from tests.scanners.test_services import GITHUB_TOKEN, SECRET_REPORT

    report = ingest(RunFactory(), SECRET_REPORT, "secrets.json")
    client.force_login(users.developer)
    response, body = download(client, report)
    assert response.status_code == 200
    assert b"github-pat" in body and GITHUB_TOKEN.encode() not in body


def test_outsiders_cannot_download_a_report_and_visitors_must_sign_in(client, users, trivy_report):
    assert client.get(reverse("report-download", args=[trivy_report.pk])).status_code == 302
    client.force_login(users.outsider)
    assert download(client, trivy_report)[0].status_code == 403


def test_a_report_whose_file_is_gone_or_unknown_is_404(client, users, trivy_report):
    client.force_login(users.developer)
    trivy_report.file.storage.delete(trivy_report.file.name)
    assert download(client, trivy_report)[0].status_code == 404
    assert client.get(reverse("report-download", args=[999999])).status_code == 404


def test_a_report_not_parsed_yet_is_not_handed_out_before_its_secrets_are_masked(client, users):
    from tests.scanners.test_services import SECRET_REPORT

    report, _ = services.receive_report(run=RunFactory(), file=io.BytesIO(SECRET_REPORT), original_name="s.json",
                                        queue=False)
    client.force_login(users.developer)
    assert download(client, report)[0].status_code == 409


def test_a_hostile_report_name_cannot_break_the_download_header(client, users):
    report = ingest(RunFactory(), samples.jtl_csv([(1_700_000_000_000, 10, "home", True)]),
                    'load"; filename=evil.html\r\nX-Injected: 1.jtl')
    client.force_login(users.developer)
    response, _ = download(client, report)
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="load_filenameevil.htmlX-Injected_1.jtl"'
    assert "X-Injected" not in response.headers


def test_a_report_that_failed_to_parse_is_not_handed_out_its_secrets_unmasked(client, users):
    from tests.scanners.test_services import GITHUB_TOKEN

    broken = b'{"SchemaVersion": 2, "Results": [{"Target": "app", "Secrets": [{"RuleID": "github-pat", "Match": "' \
        + GITHUB_TOKEN.encode() + b'"}]}], "ArtifactName": 7'
    report = ingest(RunFactory(), broken, "broken.json")
    assert report.status == "failed" and not report.file
    client.force_login(users.developer)
    response, body = download(client, report)
    assert response.status_code == 404 and GITHUB_TOKEN.encode() not in body
    page = client.get(report.get_absolute_url()).content.decode()
    assert reverse("report-download", args=[report.pk]) not in page
    assert "a failed report keeps its error, not its raw file" in page and "ends too early" in page
