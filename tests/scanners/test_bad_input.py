"""Every bad upload ends with the report failed, a message a user understands, and nothing else written."""

import io
import tracemalloc
from pathlib import Path

import pytest
from django.core.files.storage import default_storage

from scanners import services
from scanners.models import AttackScenario, Finding, LoadTestBucket, LoadTestStat, Report, ReportStatus
from tests.factories import RunFactory
from tests.scanners import samples

pytestmark = pytest.mark.django_db

TRUNCATED_TRIVY = samples.trivy_report([samples.trivy_vulnerability("CVE-2024-0001")])[:-40]
HUGE_LINE_CSV = (
    samples.JTL_HEADER + "\n1700000000000,12," + "x" * (1024 * 1024) + ",200,OK,t,text,true,,1,1,1,1,u,1,0,1\n"
)

BAD_INPUTS = {
    # case: (content, kind given, words the error must contain)
    "truncated JSON": (TRUNCATED_TRIVY, "trivy", "not valid JSON"),
    "binary garbage": (bytes(range(256)) * 64, "", "cannot tell the report kind"),
    "empty file": (b"", "", "empty"),
    "invalid UTF-8": (b'[{"uri": "a.attack", "name": "caf\xe9", "elements": []}]', "gauntlt", "UTF-8"),
    "a JTL uploaded as Trivy": (samples.jtl_csv([(1_700_000_000_000, 5, "home", True)]), "trivy", "JMeter"),
    "XML bomb": (samples.BILLION_LAUGHS, "jmeter", "entit"),
    "XML external entity": (samples.XXE, "jmeter", "entit"),
    "a CSV with a 1 MB line": (HUGE_LINE_CSV.encode(), "jmeter", "line"),
}


def ingest(run, content: bytes, kind: str):
    report, _ = services.receive_report(run=run, file=io.BytesIO(content), original_name="upload", kind=kind,
                                        queue=False)
    return services.ingest_report(report_id=report.pk)


def parsed_rows() -> int:
    return sum(model.objects.count() for model in (Finding, AttackScenario, LoadTestStat, LoadTestBucket))


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_a_bad_report_fails_alone_with_a_clear_message(case):
    content, kind, words = BAD_INPUTS[case]
    run = RunFactory()
    good = ingest(run, samples.trivy_report([samples.trivy_vulnerability("CVE-2024-0001")]), "trivy")
    rows_before = parsed_rows()
    tracemalloc.start()
    try:
        report = ingest(run, content, kind)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.status == ReportStatus.FAILED, case
    assert words.lower() in report.error.lower(), report.error
    assert parsed_rows() == rows_before
    good.refresh_from_db()
    assert good.status == ReportStatus.PARSED
    # memory stays bounded: a few times the input at most, never an expansion of it
    assert peak < 64 * 1024 * 1024, f"{case}: peak {peak:,} bytes"
    # a failed report keeps its error, not its raw file (never proven free of secrets); what it was is kept
    assert not report.file and report.size_bytes == len(content)
    kept = default_storage.listdir(Path(good.file.name).parent.as_posix())[1]
    assert not [name for name in kept if name.startswith(f"{run.pk}-{report.sha256[:16]}")]
    assert good.file and default_storage.exists(good.file.name)


def test_a_file_over_the_size_cap_fails_without_being_stored(settings):
    settings.REPORT_MAX_BYTES = 1024
    run = RunFactory()
    report, created = services.receive_report(run=run, file=io.BytesIO(b"x" * 5000), original_name="big.json")
    assert created and report.status == ReportStatus.FAILED
    assert "5,000 bytes, over the 1,024 bytes allowed" in report.error
    assert not report.file
    assert Report.objects.count() == 1 and parsed_rows() == 0
