"""No secret a report reveals is kept in clear: not in the database, not in the kept raw file, not in a log, not in
the task queue; whatever happens to the report (parsed, failed, the wrong kind, masking that cannot finish)."""

import io
import json
import logging
import secrets
import string
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.urls import reverse
from django_q.models import Task

from scanners import services
from scanners.models import Finding, Report, ReportStatus
from tests.factories import RunFactory
from tests.scanners import samples

pytestmark = pytest.mark.django_db

ALPHANUMERIC = string.ascii_letters + string.digits


def github_token() -> str:
    """A GitHub token shape, new for each test: finding it anywhere can only be this test's doing."""
    return "ghp_" + "".join(secrets.choice(ALPHANUMERIC) for _ in range(36))


def generic_secret() -> str:
    """A secret of no known token shape: only what Trivy reported can find it."""
    return "s3cr3t-" + "".join(secrets.choice(ALPHANUMERIC) for _ in range(24))


def secret_entry(match: str, *, code_line: str | None = None) -> dict:
    line = match if code_line is None else code_line
    return {
        "RuleID": "github-pat", "Category": "GitHub", "Severity": "CRITICAL", "Title": "GitHub Personal Access Token",
        "StartLine": 3, "EndLine": 3, "Match": match,
        "Code": {"Lines": [{"Number": 3, "Content": line, "IsCause": True, "Highlighted": line}]},
    }


def secret_report(*entries: dict, **top) -> bytes:
    return json.dumps({
        "SchemaVersion": 2, "ArtifactName": "repo", "ArtifactType": "repository",
        "Results": [{"Target": "app/settings.py", "Class": "secret", "Secrets": list(entries)}], **top,
    }).encode()


def ingest(content: bytes, kind: str = "", name: str = "report.json") -> Report:
    report, _ = services.receive_report(run=RunFactory(), file=io.BytesIO(content), original_name=name, kind=kind,
                                        queue=False)
    return services.ingest_report(report_id=report.pk)


def kept_anywhere(secret: str) -> list[str]:
    """Where the secret is at rest in clear: stored files, and any text column of any table."""
    places = [
        str(path) for path in Path(settings.MEDIA_ROOT).rglob("*")
        if path.is_file() and secret.encode() in path.read_bytes()
    ]
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            columns = [column.name for column in connection.introspection.get_table_description(cursor, table)]
            quoted = ", ".join(connection.ops.quote_name(column) for column in columns)
            cursor.execute(f"SELECT {quoted} FROM {connection.ops.quote_name(table)}")  # noqa: S608 - names only
            places += [f"{table}" for row in cursor.fetchall() if secret in repr(row)]
    return places


def test_a_report_that_fails_to_parse_keeps_its_error_not_its_raw_file(caplog):
    token = github_token()
    wrong_type = {"VulnerabilityID": "CVE-2024-0001", "PkgName": "zlib", "InstalledVersion": ["1.2"]}
    content = secret_report(secret_entry(f"TOKEN = '{token}'"))
    content = content.replace(b'"Results": [', b'"Results": [{"Target": "os", "Vulnerabilities": [%s]}, '
                              % json.dumps(wrong_type).encode())
    with caplog.at_level(logging.DEBUG):
        report = ingest(content, kind="trivy")
    assert report.status == ReportStatus.FAILED
    assert "InstalledVersion" in report.error and "expected a string" in report.error
    assert not report.file and report.size_bytes == len(content) and report.sha256
    assert kept_anywhere(token) == []
    assert token not in caplog.text


def test_a_secret_report_uploaded_as_another_kind_keeps_nothing_in_clear():
    token = github_token()
    report = ingest(secret_report(secret_entry(f"TOKEN = '{token}'")), kind="jmeter")
    assert report.status == ReportStatus.FAILED and report.error
    assert not report.file
    assert kept_anywhere(token) == []


def test_a_secret_report_nested_300_levels_deep_is_parsed_and_masked():
    token = github_token()
    deep = b'{"a": ' * 300 + b"1" + b"}" * 300
    content = secret_report(secret_entry(f"TOKEN = '{token}'"))[:-1] + b', "Extra": ' + deep + b"}"
    report = ingest(content, kind="trivy")
    assert report.status == ReportStatus.PARSED
    assert kept_anywhere(token) == []
    with report.file.open("rb") as stored:
        masked = stored.read()
    assert len(masked) == len(content) and deep in masked  # starred in place, the rest as sent


@pytest.mark.parametrize(
    "where",
    [
        "before the first separator",  # the old heuristic kept up to the first "=" or ":"
        "a base64 value with = padding",  # ...and so kept a padded value up to its first "="
        "a copy in the code lines",
    ],
)
def test_a_reported_secret_is_masked_whole_wherever_it_is_in_the_file(where):
    secret = generic_secret()
    entry = {
        "before the first separator": secret_entry(f"{secret}: the deploy key"),
        "a base64 value with = padding": secret_entry(f"{secret}=="),
        "a copy in the code lines": secret_entry(f"KEY={secret}", code_line=f"    KEY={secret}  # do not commit"),
    }[where]
    report = ingest(secret_report(entry), kind="trivy")
    assert report.status == ReportStatus.PARSED
    assert kept_anywhere(secret) == []
    assert set(Finding.objects.get(report=report).detail) <= {"*", " "}
    with report.file.open("rb") as stored:
        json.loads(stored.read())  # still the report it was, as JSON


def test_a_downloaded_report_of_any_kind_has_known_tokens_masked(client, users):
    token = github_token()
    content = samples.jtl_csv([(1_700_000_000_000, 10, f"GET /repos?access_token={token}", True)])
    report = ingest(content, name="load.jtl")
    assert report.status == ReportStatus.PARSED and report.kind == "jmeter"
    client.force_login(users.developer)
    response = client.get(reverse("report-download", args=[report.pk]))
    body = b"".join(response.streaming_content)
    assert response.status_code == 200 and len(body) == len(content) and b"access_token=****" in body
    assert token.encode() not in body
    assert kept_anywhere(token) == []


def test_jmeter_labels_that_differ_by_their_token_stay_apart_in_the_database():
    tokens = [github_token(), github_token()]
    rows = [(1_700_000_000_000 + index, 10, f"GET /?token={token}", True) for index, token in enumerate(tokens * 2)]
    report = ingest(samples.jtl_csv(rows), name="load.jtl")
    assert report.status == ReportStatus.PARSED
    labels = list(report.load_stats.filter(is_total=False).values_list("label", "samples"))
    assert len(labels) == 2 and all(label.startswith("GET /?token=****") and samples == 2 for label, samples in labels)
    again = ingest(samples.jtl_csv(rows[:1]), name="again.jtl")
    assert again.load_stats.filter(is_total=False).get().label in dict(labels)  # the same label run after run
    assert all(kept_anywhere(token) == [] for token in tokens)


def test_a_file_that_cannot_be_proven_clean_fails_the_report_and_is_dropped():
    # The parser reads "\u004datch" as Match; a scan of the bytes does not: a secret would be missed, so the
    # report fails with the reason, and the raw file goes.
    secret = generic_secret()
    content = secret_report(secret_entry(f"KEY={secret}")).replace(b'"Match"', b'"\\u004datch"')
    report = ingest(content, kind="trivy")
    assert report.status == ReportStatus.FAILED
    assert "could not be proven free of secrets" in report.error
    assert not report.file and not Finding.objects.filter(report=report).exists()
    assert kept_anywhere(secret) == []


def test_an_error_never_quotes_a_token(caplog):
    token = github_token()
    sarif = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": f"scanner {token}"}}, "results": []}]}
    with caplog.at_level(logging.INFO):
        report = ingest(json.dumps(sarif).encode(), kind="trivy")
    assert report.status == ReportStatus.FAILED and "this is SARIF from 'scanner ****" in report.error
    assert kept_anywhere(token) == []
    assert "this is SARIF from" in caplog.text and token not in caplog.text


def test_the_task_queue_keeps_the_report_id_only(django_capture_on_commit_callbacks, caplog):
    token = github_token()
    with caplog.at_level(logging.DEBUG), django_capture_on_commit_callbacks(execute=True):
        report, _ = services.receive_report(run=RunFactory(), file=io.BytesIO(secret_report(
            secret_entry(f"TOKEN = '{token}'"))), original_name="s.json")
    report.refresh_from_db()
    assert report.status == ReportStatus.PARSED
    task = Task.objects.get(name=f"ingest report {report.pk}")
    assert task.args == (report.pk,) and task.result == ReportStatus.PARSED
    assert kept_anywhere(token) == []
    assert token not in caplog.text


def test_a_token_an_attack_printed_is_kept_nowhere_in_clear():
    token = github_token()
    content = samples.cucumber_report([("leaks a token", "failed", f"expected no token, got Authorization: {token}")])
    report = ingest(content, kind="gauntlt")
    assert report.status == ReportStatus.PARSED
    assert "Authorization: ****" in report.scenarios.get().failure_message
    assert kept_anywhere(token) == []
