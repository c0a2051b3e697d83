"""Report kind detection: content first, file name second."""

import orjson
import pytest

from scanners.parsers.common import ReportParseError
from scanners.parsers.detect import CANNOT_TELL, detect_kind

HEAD_BYTES = 64 * 1024
IGNORED_FIXTURES = {"PROVENANCE.txt"}  # plus *.attack (Gherkin sources) and *.schema.json (the format's schema)


CUCUMBER = orjson.dumps(
    [
        {
            "uri": "attacks/nmap.attack",
            "id": "nmap",
            "keyword": "Feature",
            "name": "nmap attacks",
            "line": 2,
            "elements": [{"keyword": "Scenario", "name": "ports", "line": 5, "type": "scenario", "steps": []}],
        }
    ],
    option=orjson.OPT_INDENT_2,
)
TRIVY_SCHEMA_2 = b"""{
  "SchemaVersion": 2,
  "ArtifactName": "alpine:3.10",
  "ArtifactType": "container_image",
  "Results": [{"Target": "alpine:3.10 (alpine 3.10.2)", "Class": "os-pkgs", "Type": "alpine", "Vulnerabilities": [
"""
TRIVY_LEGACY = b"""[
  {
    "Target": "alpine:3.10 (alpine 3.10.2)",
    "Type": "alpine",
    "Vulnerabilities": [{"VulnerabilityID": "CVE-2019-1549", "PkgName": "libcrypto1.1"}]
  }
]"""
SARIF = b"""{
  "version": "2.1.0",
  "$schema": "https://raw.githubusercontent.com/oasis-tcs/sarif-spec/master/Schemata/sarif-schema-2.1.0.json",
  "runs": [{"tool": {"driver": {"fullName": "Trivy Vulnerability Scanner", "name": "Trivy", "rules": []}},
            "results": []}]
}"""
JTL_CSV_HEADER = (
    b"timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,success,failureMessage,bytes\n"
    b"1551783627191,351,JR-OK,200,Good request,Thread Group 1-1,text,true,,18\n"
)
JTL_CSV_NO_HEADER = b"1393227741256,1425,GET /login,200,OK,Thread Group 1-1,text,true,3478,1016\n"
JTL_XML = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<testResults version="1.2">\n'
    b'<httpSample t="459" lt="213" ts="1522851677051" s="true" lb="home" rc="200" rm="OK" tn="TG 1-1"/>\n'
)


# --- content ---------------------------------------------------------------------------------------------------------


def test_it_detects_cucumber_json_as_gauntlt():
    assert detect_kind(CUCUMBER) == "gauntlt"


def test_it_detects_cucumber_json_cut_in_the_middle():
    assert detect_kind(CUCUMBER[:70]) == "gauntlt"
    assert detect_kind(b'[{"keyword":"Feature","name":"x","elements":[{"keyword":"Scen') == "gauntlt"


@pytest.mark.parametrize(
    "head",
    [TRIVY_SCHEMA_2, TRIVY_LEGACY, b"null", b"null\n", SARIF],
    ids=["schema-2", "legacy-array", "legacy-clean-null", "legacy-clean-null-newline", "sarif"],
)
def test_it_detects_trivy_reports(head):
    assert detect_kind(head) == "trivy"


def test_it_tells_a_legacy_trivy_array_from_a_cucumber_array():
    assert detect_kind(TRIVY_LEGACY) == "trivy"
    assert detect_kind(CUCUMBER) == "gauntlt"


@pytest.mark.parametrize(
    "head",
    [JTL_CSV_HEADER, JTL_CSV_NO_HEADER, JTL_XML],
    ids=["csv-header", "csv-no-header-epoch-ms", "xml"],
)
def test_it_detects_jmeter_results(head):
    assert detect_kind(head) == "jmeter"


def test_it_lets_content_win_over_the_file_name():
    assert detect_kind(CUCUMBER, "trivy-report.json") == "gauntlt"
    assert detect_kind(TRIVY_SCHEMA_2, "results.jtl") == "trivy"


def test_it_ignores_a_utf8_byte_order_mark():
    assert detect_kind(b"\xef\xbb\xbf" + CUCUMBER) == "gauntlt"


# --- file name fallback and refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "kind"),
    [
        ("results.jtl", "jmeter"),
        ("C:\\runs\\load-test.CSV", "jmeter"),
        ("scan.sarif", "trivy"),
        ("reports/trivy-image.json", "trivy"),
        ("gauntlt-output.json", "gauntlt"),
        ("cucumber.json", "gauntlt"),
    ],
)
def test_it_falls_back_to_the_file_name_when_no_content_matches(filename, kind):
    assert detect_kind(b"this is some text the sniffers do not know\n", filename) == kind


@pytest.mark.parametrize("head", [b"", b" \n\t\r\n", b"\xef\xbb\xbf\n"])
def test_it_rejects_an_empty_file(head):
    with pytest.raises(ReportParseError, match="^the file is empty$"):
        detect_kind(head, "results.jtl")


@pytest.mark.parametrize("head", [bytes(range(256)) * 4, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00"])
def test_it_cannot_tell_binary_garbage_whatever_its_name(head):
    with pytest.raises(ReportParseError) as caught:
        detect_kind(head, "results.jtl")

    assert caught.value.message == CANNOT_TELL
    assert caught.value.message.startswith("cannot tell the report kind: it is neither a Trivy JSON/SARIF report")
    assert caught.value.message.endswith("give the kind explicitly")


@pytest.mark.parametrize(
    ("head", "filename"),
    [(b"hello world\n", ""), (b'{"foo": 1}', "report.json"), (b"[]", "output.json"), (b'[{"id": 1}]', "")],
)
def test_it_cannot_tell_unknown_text(head, filename):
    with pytest.raises(ReportParseError) as caught:
        detect_kind(head, filename)

    assert caught.value.message == CANNOT_TELL


def test_it_says_when_a_file_is_utf16():
    with pytest.raises(ReportParseError, match="UTF-16"):
        detect_kind("[]".encode("utf-16"))


# --- every shared real-world sample ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["gauntlt", "trivy", "jmeter"])
def test_it_classifies_every_shared_sample(shared_fixture, kind):
    directory = shared_fixture(kind)
    samples = [
        path
        for path in sorted(directory.iterdir())
        if path.is_file()
        and path.name not in IGNORED_FIXTURES
        and path.suffix != ".attack"
        and not path.name.endswith(".schema.json")
    ]
    assert samples, f"no samples in {directory}"

    wrong = {}
    for path in samples:
        head = path.read_bytes()[:HEAD_BYTES]
        # By content alone, and with the real name: both must agree with the folder the file lives in.
        found = (detect_kind(head), detect_kind(head, path.name))
        if found != (kind, kind):
            wrong[path.name] = found
    assert wrong == {}
