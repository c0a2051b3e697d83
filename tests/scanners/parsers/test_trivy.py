"""Trivy parser: every real fixture with hand-checked numbers, plus generated k8s / SARIF / bad inputs."""

from collections import Counter
from pathlib import Path

import orjson
import pytest

from scanners.parsers.common import ReportParseError
from scanners.parsers.trivy import TrivyFinding, TrivyReport, looks_like_trivy, mask_secret, parse_trivy

# Counted by hand with jq / python over ../shared/fixtures/trivy: (format, artifact_name, artifact_type,
# findings per class, findings per severity).
FIXTURE_COUNTS = {
    "alpine-310.json": (
        "schema2",
        "testdata/fixtures/images/alpine-310.tar.gz",
        "container_image",
        {"vulnerability": 4},
        {"MEDIUM": 4},
    ),
    "alpine-310.legacy-pre-0.20.json": ("legacy", "", "", {"vulnerability": 8}, {"MEDIUM": 6, "LOW": 2}),
    "clean-results-without-findings.json": (
        "schema2",
        "testdata/fixtures/repo/terraform/remote-module",
        "repository",
        {},
        {},
    ),
    "dockerfile-misconfig.json": (
        "schema2",
        "testdata/fixtures/repo/dockerfile",
        "repository",
        {"misconfiguration": 1},
        {"HIGH": 1},
    ),
    "empty-no-results.json": ("schema2", "testdata/fixtures/repo/helm_badname", "repository", {}, {}),
    "licenses.json": (
        "schema2",
        "testdata/fixtures/sbom/license-cyclonedx.json",
        "cyclonedx",
        {"license": 3},
        {"MEDIUM": 1, "LOW": 2},
    ),
    "npm.json": ("schema2", "testdata/fixtures/repo/npm", "repository", {"vulnerability": 1}, {"MEDIUM": 1}),
    "pip.json": (
        "schema2",
        "testdata/fixtures/repo/pip",
        "repository",
        {"vulnerability": 2},
        {"HIGH": 1, "MEDIUM": 1},
    ),
    "secrets.json": (
        "schema2",
        "testdata/fixtures/repo/secrets",
        "repository",
        {"secret": 2},
        {"CRITICAL": 1, "HIGH": 1},
    ),
}

# In secrets.json this token sits unmasked in a context line of Code.Lines (line 5 of deploy.sh).
RAW_FIXTURE_SECRET = "ghp_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def parse_fixture(shared_fixture, name: str) -> TrivyReport:
    return parse_trivy(shared_fixture(f"trivy/{name}"))


def by_identity(report: TrivyReport) -> dict[tuple[str, str], TrivyFinding]:
    return {(f.identifier, f.package): f for f in report.findings}


def schema2(results, **top) -> bytes:
    document = {"SchemaVersion": 2, "ArtifactName": "app:1", "ArtifactType": "container_image", **top}
    if results is not None:
        document["Results"] = results
    return orjson.dumps(document)


def vuln(vuln_id="CVE-2024-0001", pkg="openssl", installed="3.0.1", **extra) -> dict:
    return {
        "VulnerabilityID": vuln_id,
        "PkgName": pkg,
        "InstalledVersion": installed,
        "FixedVersion": "3.0.2",
        "Severity": "HIGH",
        "Title": "a title",
        **extra,
    }


def os_result(target="app:1 (alpine 3.19.1)", vulns=None) -> dict:
    return {"Target": target, "Class": "os-pkgs", "Type": "alpine", "Vulnerabilities": vulns or [vuln()]}


def expect_error(data, *words: str, location: str | None = None, **kwargs) -> ReportParseError:
    with pytest.raises(ReportParseError) as caught:
        parse_trivy(data, **kwargs)
    error = caught.value
    for word in words:
        assert word in error.message, error
    if location is not None:
        assert error.location == location, error
    return error


# ---------------------------------------------------------------------------------------------------------------
# Real fixtures


@pytest.mark.parametrize("name", sorted(FIXTURE_COUNTS))
def test_it_reads_every_fixture_with_the_hand_counted_numbers(shared_fixture, name):
    report_format, artifact_name, artifact_type, per_class, per_severity = FIXTURE_COUNTS[name]
    report = parse_fixture(shared_fixture, name)
    assert report.format == report_format
    assert report.artifact_name == artifact_name
    assert report.artifact_type == artifact_type
    assert Counter(f.finding_class for f in report.findings) == Counter(per_class)
    assert Counter(f.severity for f in report.findings) == Counter(per_severity)
    for finding in report.findings:
        assert len(finding.fingerprint) == 64 and int(finding.fingerprint, 16) >= 0
        assert finding.url == "" or finding.url.startswith("https://")
    assert len({f.fingerprint for f in report.findings}) == len(report.findings)


def test_it_has_a_hand_checked_entry_for_every_trivy_fixture_file(shared_fixture):
    folder = shared_fixture("trivy/PROVENANCE.txt").parent
    assert {path.name for path in folder.glob("*.json")} == set(FIXTURE_COUNTS)


def test_it_reads_the_alpine_image_vulnerabilities(shared_fixture):
    report = parse_fixture(shared_fixture, "alpine-310.json")
    findings = by_identity(report)
    assert sorted(findings) == [
        ("CVE-2019-1549", "libcrypto1.1"),
        ("CVE-2019-1549", "libssl1.1"),
        ("CVE-2019-1551", "libcrypto1.1"),
        ("CVE-2019-1551", "libssl1.1"),
    ]
    first = report.findings[0]
    assert first.identifier == "CVE-2019-1549"
    assert first.package == "libcrypto1.1"
    assert first.installed_version == "1.1.1c-r0"
    assert first.fixed_version == "1.1.1d-r0"
    assert first.severity == "MEDIUM"
    assert first.title == "openssl: information disclosure in fork()"
    assert first.detail == ""
    assert first.url == "https://avd.aquasec.com/nvd/cve-2019-1549"
    assert first.target == "testdata/fixtures/images/alpine-310.tar.gz (alpine 3.10.2)"
    assert first.pkg_path == ""
    assert findings[("CVE-2019-1551", "libssl1.1")].fixed_version == "1.1.1d-r2"


def test_it_gives_the_legacy_twin_the_same_fingerprints_for_the_same_vulnerabilities(shared_fixture):
    current = parse_fixture(shared_fixture, "alpine-310.json")
    legacy = parse_fixture(shared_fixture, "alpine-310.legacy-pre-0.20.json")
    # The legacy golden file is from an older vulnerability DB: it also lists CVE-2019-1563 and CVE-2019-1547
    # (for both packages). The four vulnerabilities both files share must match exactly.
    current_prints = {f.fingerprint: (f.identifier, f.package) for f in current.findings}
    legacy_prints = {f.fingerprint: (f.identifier, f.package) for f in legacy.findings}
    assert set(current_prints) < set(legacy_prints)
    assert sorted(legacy_prints[p] for p in set(legacy_prints) - set(current_prints)) == [
        ("CVE-2019-1547", "libcrypto1.1"),
        ("CVE-2019-1547", "libssl1.1"),
        ("CVE-2019-1563", "libcrypto1.1"),
        ("CVE-2019-1563", "libssl1.1"),
    ]
    low = by_identity(legacy)[("CVE-2019-1547", "libssl1.1")]
    assert (low.severity, low.installed_version, low.fixed_version) == ("LOW", "1.1.1c-r0", "1.1.1d-r0")


def test_it_reads_the_npm_lockfile_vulnerability(shared_fixture):
    (finding,) = parse_fixture(shared_fixture, "npm.json").findings
    assert finding.identifier == "CVE-2019-11358"
    assert (finding.package, finding.installed_version, finding.fixed_version) == ("jquery", "3.3.9", "3.4.0")
    assert finding.severity == "MEDIUM"
    assert finding.target == "package-lock.json"
    assert finding.url == "https://avd.aquasec.com/nvd/cve-2019-11358"


def test_it_reads_the_pip_requirements_vulnerabilities(shared_fixture):
    findings = by_identity(parse_fixture(shared_fixture, "pip.json"))
    high = findings[("CVE-2019-14806", "Werkzeug")]
    medium = findings[("CVE-2020-28724", "Werkzeug")]
    assert (high.installed_version, high.fixed_version, high.severity) == ("0.11", "0.15.3", "HIGH")
    assert (medium.installed_version, medium.fixed_version, medium.severity) == ("0.11", "0.11.6", "MEDIUM")
    assert high.target == medium.target == "requirements.txt"


def test_it_reads_the_dockerfile_misconfiguration(shared_fixture):
    (finding,) = parse_fixture(shared_fixture, "dockerfile-misconfig.json").findings
    assert finding.finding_class == "misconfiguration"
    assert finding.identifier == "DS-0002"
    assert finding.severity == "HIGH"
    assert finding.title == "Image user should not be 'root'"
    assert finding.detail == "Specify at least 1 USER command in Dockerfile with non-root user as argument"
    assert finding.url == "https://avd.aquasec.com/misconfig/ds-0002"
    assert finding.target == "Dockerfile"
    assert finding.package == finding.installed_version == finding.fixed_version == ""


def test_it_reads_the_licenses(shared_fixture):
    findings = by_identity(parse_fixture(shared_fixture, "licenses.json"))
    assert sorted(findings) == [
        ("BSD-3-Clause", "org.ow2.asm:asm"),
        ("EPL-1.0", "org.eclipse.sisu:org.eclipse.sisu.plexus"),
        ("MIT License", "org.slf4j:slf4j-api"),
    ]
    epl = findings[("EPL-1.0", "org.eclipse.sisu:org.eclipse.sisu.plexus")]
    assert (epl.severity, epl.detail, epl.target, epl.url) == ("MEDIUM", "reciprocal (confidence 1)", "Java", "")
    assert findings[("MIT License", "org.slf4j:slf4j-api")].detail == "notice (confidence 1)"


def test_it_reads_the_secrets_masked(shared_fixture):
    report = parse_fixture(shared_fixture, "secrets.json")
    aws, custom = report.findings
    assert (aws.identifier, aws.severity, aws.title, aws.target) == (
        "aws-access-key-id",
        "CRITICAL",
        "AWS Access Key ID",
        "deploy.sh",
    )
    assert aws.detail == "export AWS_ACCESS_KEY_ID=********************"
    assert (custom.identifier, custom.severity, custom.title) == ("mysecret", "HIGH", "My Secret")
    assert custom.detail == "**** ********"


def test_it_never_leaks_the_raw_secret_of_the_fixture(shared_fixture):
    path = shared_fixture("trivy/secrets.json")
    assert RAW_FIXTURE_SECRET in path.read_text()  # the fixture really holds it (in Code.Lines)
    report = parse_trivy(path)
    assert RAW_FIXTURE_SECRET not in repr(report)
    assert "ghp_" not in repr(report)


def test_it_reads_sources_as_bytes_path_string_and_file_object(shared_fixture):
    path = shared_fixture("trivy/pip.json")
    with open(path, "rb") as handle:
        from_handle = parse_trivy(handle)
    for source in (path.read_bytes(), str(path), Path(path)):
        assert parse_trivy(source) == from_handle


def test_it_sniffs_every_fixture_as_trivy(shared_fixture):
    for name in FIXTURE_COUNTS:
        head = shared_fixture(f"trivy/{name}").read_bytes()[:4096]
        assert looks_like_trivy(head), name


# ---------------------------------------------------------------------------------------------------------------
# Variants


def test_it_reads_the_null_file_as_a_clean_legacy_scan():
    for data in (b"null", b"null\n", b"  null  "):
        report = parse_trivy(data)
        assert (report.format, report.artifact_name, report.artifact_type, report.findings) == ("null", "", "", [])


def test_it_reads_legacy_results_with_null_vulnerabilities():
    data = orjson.dumps(
        [
            {"Target": "app:1 (debian 12.1)", "Type": "debian", "Vulnerabilities": None},
            {"Target": "app/requirements.txt", "Type": "pip", "Vulnerabilities": [vuln(pkg="flask")]},
        ]
    )
    report = parse_trivy(data)
    assert report.format == "legacy"
    assert [(f.identifier, f.package, f.target) for f in report.findings] == [
        ("CVE-2024-0001", "flask", "app/requirements.txt")
    ]


def test_it_treats_legacy_os_types_as_os_packages_for_the_fingerprint():
    one = parse_trivy(orjson.dumps([{"Target": "app:1 (debian 12.1)", "Type": "debian", "Vulnerabilities": [vuln()]}]))
    two = parse_trivy(orjson.dumps([{"Target": "app:2 (debian 12.2)", "Type": "debian", "Vulnerabilities": [vuln()]}]))
    assert one.findings[0].fingerprint == two.findings[0].fingerprint


def test_it_reads_schema2_without_results_and_results_without_findings():
    assert parse_trivy(schema2(None)).findings == []
    empty = schema2(
        [
            {"Target": "a", "Class": "os-pkgs", "Vulnerabilities": None},
            {"Target": "b", "Class": "config", "Misconfigurations": None, "Secrets": None, "Licenses": None},
            {"Target": "c", "Class": "lang-pkgs"},
        ]
    )
    assert parse_trivy(empty).findings == []


@pytest.mark.parametrize(
    ("name", "artifact_type", "expected"),
    [
        ("alpine:3.10", "container_image", "alpine"),
        ("127.0.0.1:5000/app:1", "container_image", "127.0.0.1:5000/app"),
        ("127.0.0.1:5000/app", "container_image", "127.0.0.1:5000/app"),
        ("ghcr.io/org/app@sha256:" + "a" * 64, "container_image", "ghcr.io/org/app"),
        ("ghcr.io/org/app:1.2@sha256:" + "b" * 64, "container_image", "ghcr.io/org/app"),
        ("library/alpine", "container_image", "library/alpine"),
        ("https://github.com/org/repo", "repository", "https://github.com/org/repo"),
        ("git@github.com:org/repo.git", "repository", "git@github.com:org/repo.git"),
        ("C:\\src\\app", "filesystem", "C:\\src\\app"),
    ],
)
def test_it_strips_the_tag_and_digest_from_the_artifact_name(name, artifact_type, expected):
    report = parse_trivy(schema2(None, ArtifactName=name, ArtifactType=artifact_type))
    assert report.artifact_name == expected
    assert report.artifact_type == artifact_type


K8S_REPORT = {
    "ClusterName": "prod-cluster",
    "Vulnerabilities": [
        {
            "Namespace": "shop",
            "Kind": "Deployment",
            "Name": "web",
            "Results": [
                os_result("nginx:1.25 (debian 12.1)", [vuln("CVE-2023-1111", "libc6", "2.36-9", Severity="CRITICAL")]),
                {
                    "Target": "usr/local/bin/app",
                    "Class": "lang-pkgs",
                    "Type": "gobinary",
                    "Vulnerabilities": [vuln("CVE-2023-2222", "golang.org/x/net", "0.1.0")],
                },
            ],
        },
        {
            "Namespace": "shop",
            "Kind": "Deployment",
            "Name": "worker",
            "Results": [os_result("nginx:1.25 (debian 12.1)", [vuln("CVE-2023-1111", "libc6", "2.36-9")])],
        },
        {"Namespace": "shop", "Kind": "Deployment", "Name": "empty", "Results": None},
    ],
    "Misconfigurations": [
        {
            "Namespace": "shop",
            "Kind": "Deployment",
            "Name": "web",
            "Results": [
                {
                    "Target": "Deployment/web",
                    "Class": "config",
                    "Type": "kubernetes",
                    "MisconfSummary": {"Successes": 1, "Failures": 1},
                    "Misconfigurations": [
                        {"ID": "KSV001", "Title": "Process can elevate its own privileges", "Severity": "MEDIUM",
                         "Message": "Container 'web' should set allowPrivilegeEscalation to false", "Status": "FAIL"},
                        {"ID": "KSV003", "Title": "Default capabilities not dropped", "Severity": "LOW",
                         "Status": "PASS"},
                    ],
                }
            ],
        },
        {
            "Kind": "ClusterRole",
            "Name": "admin",
            "Results": [
                {
                    "Target": "ClusterRole/admin",
                    "Class": "config",
                    "Type": "kubernetes",
                    "Misconfigurations": [{"AVDID": "AVD-KSV-0041", "Severity": "critical", "Status": "FAIL"}],
                }
            ],
        },
    ],
}  # fmt: skip


def test_it_reads_a_k8s_cluster_report():
    report = parse_trivy(orjson.dumps(K8S_REPORT))
    assert (report.format, report.artifact_name, report.artifact_type) == ("k8s", "prod-cluster", "kubernetes")
    assert [(f.finding_class, f.identifier, f.severity, f.target) for f in report.findings] == [
        ("vulnerability", "CVE-2023-1111", "CRITICAL", "shop/Deployment/web: nginx:1.25 (debian 12.1)"),
        ("vulnerability", "CVE-2023-2222", "HIGH", "shop/Deployment/web: usr/local/bin/app"),
        ("vulnerability", "CVE-2023-1111", "HIGH", "shop/Deployment/worker: nginx:1.25 (debian 12.1)"),
        ("misconfiguration", "KSV001", "MEDIUM", "shop/Deployment/web: Deployment/web"),
        ("misconfiguration", "AVD-KSV-0041", "CRITICAL", "ClusterRole/admin: ClusterRole/admin"),
    ]
    assert report.findings[3].detail == "Container 'web' should set allowPrivilegeEscalation to false"


def test_it_keeps_k8s_fingerprints_per_workload_but_not_per_image_tag():
    report = parse_trivy(orjson.dumps(K8S_REPORT))
    web, _, worker = report.findings[:3]
    assert web.fingerprint != worker.fingerprint  # same CVE in two workloads: two findings
    bumped = orjson.loads(orjson.dumps(K8S_REPORT))
    bumped["Vulnerabilities"][0]["Results"][0]["Target"] = "nginx:1.26 (debian 12.2)"
    assert parse_trivy(orjson.dumps(bumped)).findings[0].fingerprint == web.fingerprint


def test_it_reads_newer_k8s_reports_with_resources():
    document = {"ClusterName": "kind-kind", "Resources": K8S_REPORT["Vulnerabilities"][:1]}
    report = parse_trivy(orjson.dumps(document))
    assert report.format == "k8s"
    assert [f.identifier for f in report.findings] == ["CVE-2023-1111", "CVE-2023-2222"]


def sarif_rule(rule_id, name, title, tags, security_severity=None, help_uri=None) -> dict:
    rule = {
        "id": rule_id,
        "name": name,
        "shortDescription": {"text": title},
        "fullDescription": {"text": "long prose"},
        "defaultConfiguration": {"level": "warning"},
        "properties": {"precision": "very-high", "tags": tags},
    }
    if security_severity is not None:
        rule["properties"]["security-severity"] = security_severity
    if help_uri:
        rule["helpUri"] = help_uri
    return rule


def sarif_result(rule_id, index, level, text, uri) -> dict:
    return {
        "ruleId": rule_id,
        "ruleIndex": index,
        "level": level,
        "message": {"text": text},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": uri, "uriBaseId": "ROOTPATH"},
                    "region": {"startLine": 1, "startColumn": 1, "endLine": 1, "endColumn": 1},
                },
                "message": {"text": uri},
            }
        ],
    }


UNMASKED_SARIF_SECRET = "ghp_SARIFSARIFSARIFSARIFSARIFSARIFSARIF12"

# Shaped like Trivy's own writer (pkg/report/sarif.go): tags [class, "security", severity], security-severity
# as a string, "Key: value" message lines.
SARIF_REPORT = {
    "version": "2.1.0",
    "$schema": "https://json.schemastore.org/sarif-2.1.0-rtm.5.json",
    "runs": [
        {
            "tool": {
                "driver": {
                    "fullName": "Trivy Vulnerability Scanner",
                    "informationUri": "https://github.com/aquasecurity/trivy",
                    "name": "Trivy",
                    "rules": [
                        sarif_rule("CVE-2019-1549", "OsPackageVulnerability", "openssl: information disclosure",
                                   ["vulnerability", "security", "MEDIUM"], "5.3",
                                   "https://avd.aquasec.com/nvd/cve-2019-1549"),
                        sarif_rule("GHSA-xxxx-yyyy-zzzz", "LanguageSpecificPackageVulnerability", "werkzeug bug",
                                   ["vulnerability", "security", "UNKNOWN"], "9.8"),
                        sarif_rule("DS002", "Misconfiguration", "Image user should not be 'root'",
                                   ["misconfiguration", "security", "HIGH"], "8.0",
                                   "https://avd.aquasec.com/misconfig/ds002"),
                        sarif_rule("github-pat", "Secret", "GitHub Personal Access Token",
                                   ["secret", "security", "CRITICAL"], "9.5"),
                        sarif_rule("org.ow2.asm:asm:BSD-3-Clause", "License", "BSD-3-Clause in org.ow2.asm:asm",
                                   ["license", "security", "LOW"], "2.0"),
                        {"id": "custom-check"},
                    ],
                    "version": "0.58.0",
                }
            },
            "results": [
                sarif_result("CVE-2019-1549", 0, "warning",
                             "Package: libcrypto1.1\nInstalled Version: 1.1.1c-r0\nVulnerability CVE-2019-1549\n"
                             "Severity: MEDIUM\nFixed Version: 1.1.1d-r0\n"
                             "Link: [CVE-2019-1549](https://avd.aquasec.com/nvd/cve-2019-1549)",
                             "library/alpine"),
                sarif_result("GHSA-xxxx-yyyy-zzzz", 1, "note",
                             "Package: werkzeug\nInstalled Version: 0.11\nVulnerability GHSA-xxxx-yyyy-zzzz\n"
                             "Severity: UNKNOWN\nFixed Version: 0.15.3\nLink: [GHSA](https://github.com/advisories/x)",
                             "requirements.txt"),
                sarif_result("DS002", 2, "error",
                             "Artifact: Dockerfile\nType: dockerfile\nVulnerability DS002\nSeverity: HIGH\n"
                             "Message: Specify at least 1 USER command\nLink: [DS002](https://avd.aquasec.com/x)",
                             "Dockerfile"),
                sarif_result("github-pat", 3, "error",
                             f"Artifact: deploy.sh\nType: \nSecret GitHub Personal Access Token\nSeverity: CRITICAL\n"
                             f"Match: export GITHUB_PAT={UNMASKED_SARIF_SECRET}",
                             "deploy.sh"),
                sarif_result("org.ow2.asm:asm:BSD-3-Clause", 4, "note",
                             "Artifact: Java\nLicense BSD-3-Clause\nPkgName: org.ow2.asm:asm\n Classification: notice\n"
                             " Path: ",
                             "Java"),
                sarif_result("custom-check", 5, "none", "something", "x.tf"),
                {"ruleIndex": 0, "level": "warning", "message": {"text": "Package: libssl1.1\nInstalled Version: 1"}},
            ],
            "columnKind": "utf16CodeUnits",
            "properties": {"imageName": "alpine:3.10", "imageID": "sha256:abc"},
        }
    ],
}  # fmt: skip


def test_it_reads_trivy_sarif():
    report = parse_trivy(orjson.dumps(SARIF_REPORT))
    assert (report.format, report.artifact_name, report.artifact_type) == ("sarif", "alpine", "container_image")
    rows = [
        (f.finding_class, f.identifier, f.package, f.installed_version, f.fixed_version, f.severity, f.target)
        for f in report.findings
    ]
    assert rows == [
        ("vulnerability", "CVE-2019-1549", "libcrypto1.1", "1.1.1c-r0", "1.1.1d-r0", "MEDIUM", "library/alpine"),
        ("vulnerability", "GHSA-xxxx-yyyy-zzzz", "werkzeug", "0.11", "0.15.3", "CRITICAL", "requirements.txt"),
        ("misconfiguration", "DS002", "", "", "", "HIGH", "Dockerfile"),
        ("secret", "github-pat", "", "", "", "CRITICAL", "deploy.sh"),
        ("license", "BSD-3-Clause", "org.ow2.asm:asm", "", "", "LOW", "Java"),
        ("vulnerability", "custom-check", "", "", "", "UNKNOWN", "x.tf"),
        ("vulnerability", "CVE-2019-1549", "libssl1.1", "1", "", "MEDIUM", ""),
    ]
    vulnerability, ghsa, misconfiguration, secret, license_, _, _ = report.findings
    assert vulnerability.title == "openssl: information disclosure"
    assert vulnerability.url == "https://avd.aquasec.com/nvd/cve-2019-1549"
    assert ghsa.url == "https://github.com/advisories/x"  # no helpUri: the message's markdown link
    assert misconfiguration.detail == "Specify at least 1 USER command"
    assert secret.detail == "****** " + "*" * len("GITHUB_PAT=" + UNMASKED_SARIF_SECRET)  # unmasked: starred whole
    assert license_.detail == "notice"
    assert UNMASKED_SARIF_SECRET not in repr(report)


def test_it_maps_sarif_levels_when_the_rule_has_no_severity():
    levels = {"error": "HIGH", "warning": "MEDIUM", "note": "LOW", "none": "UNKNOWN"}
    for level, expected in levels.items():
        document = {
            "version": "2.1.0",
            "runs": [{"tool": {"driver": {"name": "Trivy"}}, "results": [sarif_result("X-1", 0, level, "", "f")]}],
        }
        assert parse_trivy(orjson.dumps(document)).findings[0].severity == expected


def test_it_gives_a_sarif_os_vulnerability_the_same_fingerprint_as_its_json_twin(shared_fixture):
    json_report = parse_fixture(shared_fixture, "alpine-310.json")
    sarif_report = parse_trivy(orjson.dumps(SARIF_REPORT))
    assert sarif_report.findings[0].fingerprint == json_report.findings[0].fingerprint


def test_it_reads_old_template_sarif_ids_with_the_severity_in_brackets():
    document = {
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "Trivy", "rules": []}},
                "results": [sarif_result("[CRITICAL] CVE-2021-44228", 0, "error", "Package: log4j-core", "pom.xml")],
            }
        ],
    }
    (finding,) = parse_trivy(orjson.dumps(document)).findings
    assert (finding.identifier, finding.severity, finding.package) == ("CVE-2021-44228", "CRITICAL", "log4j-core")


def test_it_refuses_sarif_from_another_tool():
    document = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "Semgrep OSS"}}, "results": []}]}
    expect_error(orjson.dumps(document), "SARIF from 'Semgrep OSS'", "not from Trivy", location="runs[0].tool")


def test_it_sniffs_k8s_sarif_and_rejects_other_formats():
    assert looks_like_trivy(orjson.dumps(K8S_REPORT)[:4096])
    assert looks_like_trivy(orjson.dumps(SARIF_REPORT, option=orjson.OPT_INDENT_2)[:4096])
    assert looks_like_trivy(b"null\n")
    assert not looks_like_trivy(b"timeStamp,elapsed,label,responseCode\n1700000000000,12,home,200\n")
    assert not looks_like_trivy(b'[{"uri": "features/x.attack", "keyword": "Feature", "elements": []}]')
    assert not looks_like_trivy(b'<?xml version="1.0"?><testResults version="1.2">')
    assert not looks_like_trivy(b'{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "Semgrep"}}}]}')
    assert not looks_like_trivy(b"")


# ---------------------------------------------------------------------------------------------------------------
# Classes, severities, strings


def test_it_keeps_only_failed_misconfigurations_and_falls_back_to_the_avdid():
    checks = [
        {"ID": "DS001", "Status": "FAIL", "Severity": "LOW"},
        {"ID": "DS002", "Severity": "LOW"},
        {"ID": "DS003", "Status": "PASS", "Severity": "LOW"},
        {"ID": "DS004", "Status": "EXCEPTION", "Severity": "LOW"},
        {"AVDID": "AVD-DS-0005", "Status": "fail", "Severity": None},
    ]
    data = schema2([{"Target": "Dockerfile", "Class": "config", "Misconfigurations": checks}])
    findings = parse_trivy(data).findings
    assert [(f.identifier, f.severity) for f in findings] == [
        ("DS001", "LOW"),
        ("DS002", "LOW"),
        ("AVD-DS-0005", "UNKNOWN"),
    ]


def test_it_separates_misconfigurations_by_cause_resource():
    checks = [
        {"ID": "AVD-AWS-0086", "Status": "FAIL", "CauseMetadata": {"Resource": "aws_s3_bucket.logs"}},
        {"ID": "AVD-AWS-0086", "Status": "FAIL", "CauseMetadata": {"Resource": "aws_s3_bucket.data"}},
        {"ID": "AVD-AWS-0086", "Status": "FAIL", "CauseMetadata": {"Resource": "aws_s3_bucket.data"}, "Title": "x"},
    ]
    findings = parse_trivy(schema2([{"Target": "main.tf", "Class": "config", "Misconfigurations": checks}])).findings
    assert len(findings) == 2


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"Severity": "high"}, "HIGH"),
        ({"Severity": " Moderate "}, "MEDIUM"),
        ({"Severity": None, "SeveritySource": "ghsa", "CVSS": {"nvd": {"V3Score": 5.0}, "ghsa": {"V3Score": 9.8}}},
         "CRITICAL"),
        ({"Severity": "UNKNOWN", "CVSS": {"redhat": {"V3Score": 9.1}, "nvd": {"V3Score": 7.5}}}, "HIGH"),
        ({"CVSS": {"ghsa": {"V3Score": 4.2}, "redhat": {"V3Score": 9.9}}}, "MEDIUM"),
        ({"CVSS": {"nvd": {"V40Score": 9.3, "V3Score": 6.1, "V2Score": 4.3}}}, "CRITICAL"),
        ({"CVSS": {"nvd": {"V2Score": 10.0}}}, "HIGH"),  # CVSS v2 has no CRITICAL band
        ({"CVSS": {"nvd": {"V2Score": 2.1}}}, "LOW"),
        ({"CVSS": {"nvd": {"V3Score": 0}}, "VendorSeverity": {"ubuntu": 1, "redhat": 3}}, "HIGH"),
        ({"SeveritySource": "ubuntu", "VendorSeverity": {"ubuntu": 1, "nvd": 4}}, "LOW"),
        ({"CVSS": {"nvd": {"V3Score": 0}}}, "UNKNOWN"),
        ({"CVSS": {"nvd": "broken"}, "VendorSeverity": {"nvd": 9}}, "UNKNOWN"),
        ({}, "UNKNOWN"),
    ],
)  # fmt: skip
def test_it_falls_back_to_cvss_and_vendor_severity(fields, expected):
    item = {"VulnerabilityID": "CVE-2024-1", "PkgName": "p", "InstalledVersion": "1", **fields}
    (finding,) = parse_trivy(schema2([os_result(vulns=[item])])).findings
    assert finding.severity == expected


def test_it_coerces_and_truncates_strings():
    item = vuln(
        VulnerabilityID="CVE-" + "9" * 500,
        PkgName=None,
        InstalledVersion=1.5,
        FixedVersion="1," * 400,
        Title="t" * 5000,
        PrimaryURL="javascript:alert(1)",
        References=["ftp://example.org/x", "https://example.org/" + "a" * 600, "http://example.org/ok"],
    )
    (finding,) = parse_trivy(schema2([os_result(vulns=[item])])).findings
    assert len(finding.identifier) == 200
    assert finding.package == ""
    assert finding.installed_version == "1.5"
    assert len(finding.fixed_version) == 500
    assert len(finding.title) == 2000
    assert finding.url == "http://example.org/ok"


def test_it_removes_nul_characters_that_postgres_cannot_store():
    (finding,) = parse_trivy(schema2([os_result(vulns=[vuln(Title="bad\x00title")])])).findings
    assert finding.title == "badtitle"


# ---------------------------------------------------------------------------------------------------------------
# Secrets


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Trivy masked the secret: the words before its stars are kept
        ("export AWS_ACCESS_KEY_ID=********************", "export AWS_ACCESS_KEY_ID=********************"),
        ("TOKEN = '****'", "TOKEN = '*****"),
        ('"password": "********"', '"password": "*********'),
        ("echo ********", "**** ********"),
        # ...but never a known token shape, even before the separator
        ("ghp_abcdefghijklmnopqrstuvwxyz0123456789: ****", "*" * 41 + " ****"),
        # Trivy did not mask it: nothing tells where the secret is, so it is starred whole
        ("AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE", "*" * 38),
        ("password: hunter2", "********* *******"),
        ("s3cr3t-b3f0re-the-colon: x", "************************ *"),  # the secret before the separator
        ("c2VjcmV0LXZhbHVl==", "*" * 18),  # a base64 value: its first "=" is its padding
        ("x" * 45 + "=********", "*" * 54),  # separator too far in: it may be part of the secret
        ("", ""),
    ],
)
def test_it_masks_secrets(text, expected):
    assert mask_secret(text) == expected


def test_it_truncates_masked_secrets():
    assert mask_secret("token=" + "*" * 1000) == "token=" + "*" * 194
    assert mask_secret("token=" + "s" * 1000) == "*" * 200


def test_it_never_puts_an_unmasked_secret_in_the_report():
    raw = "AKIAZZZZZZZZZZZZZZZZ"
    secret = {
        "RuleID": "aws-access-key-id",
        "Severity": "CRITICAL",
        "Title": "AWS Access Key ID",
        "StartLine": 2,
        "EndLine": 2,
        "Code": {"Lines": [{"Number": 2, "Content": f"AWS_ACCESS_KEY_ID={raw}", "IsCause": True}]},
        "Match": f"AWS_ACCESS_KEY_ID={raw}",
    }
    report = parse_trivy(schema2([{"Target": ".env", "Class": "secret", "Secrets": [secret]}]))
    assert report.findings[0].detail == "*" * len(f"AWS_ACCESS_KEY_ID={raw}")
    assert raw not in repr(report)
    other = dict(secret, Match="AWS_ACCESS_KEY_ID=AKIAYYYYYYYYYYYYYYYY")
    other_report = parse_trivy(schema2([{"Target": ".env", "Class": "secret", "Secrets": [other]}]))
    assert other_report.findings[0].fingerprint != report.findings[0].fingerprint


# ---------------------------------------------------------------------------------------------------------------
# Fingerprints and deduplication


def test_it_ignores_title_and_image_tag_in_the_fingerprint():
    one = parse_trivy(schema2([os_result("app:1 (alpine 3.19.1)", [vuln(Title="old title")])], ArtifactName="app:1"))
    two = parse_trivy(schema2([os_result("app:2 (alpine 3.19.2)", [vuln(Title="new")])], ArtifactName="app:2"))
    assert one.findings[0].fingerprint == two.findings[0].fingerprint
    assert one.artifact_name == two.artifact_name == "app"


def test_it_separates_findings_whose_identity_differs():
    def fingerprint(result):
        return parse_trivy(schema2([result])).findings[0].fingerprint

    base = fingerprint({"Target": "Java", "Class": "lang-pkgs", "Vulnerabilities": [vuln(PkgPath="a/x.jar")]})
    assert base != fingerprint({"Target": "Java", "Class": "lang-pkgs", "Vulnerabilities": [vuln(PkgPath="b/x.jar")]})
    assert base == fingerprint({"Target": "Jar", "Class": "lang-pkgs", "Vulnerabilities": [vuln(PkgPath="a/x.jar")]})
    lock_a = fingerprint({"Target": "a/package-lock.json", "Class": "lang-pkgs", "Vulnerabilities": [vuln()]})
    lock_b = fingerprint({"Target": "b/package-lock.json", "Class": "lang-pkgs", "Vulnerabilities": [vuln()]})
    assert lock_a != lock_b
    assert fingerprint(os_result(vulns=[vuln()])) != fingerprint(os_result(vulns=[vuln(pkg="libssl3")]))
    assert fingerprint(os_result(vulns=[vuln()])) != fingerprint(os_result(vulns=[vuln("CVE-2024-0002")]))


def test_a_package_bump_that_is_still_vulnerable_keeps_the_fingerprint():
    def fingerprint(result):
        return parse_trivy(schema2([result])).findings[0].fingerprint

    assert fingerprint(os_result(vulns=[vuln()])) == fingerprint(os_result(vulns=[vuln(installed="3.0.2")]))

    def python(version):
        path = f"usr/local/lib/python3.12/site-packages/Django-{version}.dist-info/METADATA"
        return {"Target": "Python", "Class": "lang-pkgs",
                "Vulnerabilities": [vuln(pkg="Django", installed=version, PkgPath=path)]}

    assert fingerprint(python("4.2.1")) == fingerprint(python("4.2.3"))

    def jar(version):
        return {"Target": "Java", "Class": "lang-pkgs",
                "Vulnerabilities": [vuln(pkg="log4j-core", installed=version, PkgPath=f"app/log4j-core-{version}.jar")]}

    assert fingerprint(jar("2.14.1")) == fingerprint(jar("2.15.0"))
    assert fingerprint(jar("2.14.1")) != fingerprint(
        {"Target": "Java", "Class": "lang-pkgs",
         "Vulnerabilities": [vuln(pkg="log4j-core", installed="2.14.1", PkgPath="other/log4j-core-2.14.1.jar")]})


def test_it_keeps_the_first_of_same_run_duplicates():
    results = [
        os_result("app:1 (alpine 3.19.1)", [vuln(Title="first"), vuln(Title="second"), vuln("CVE-2024-0002")]),
        os_result("app:1 (alpine 3.19.1)", [vuln(Title="third")]),
    ]
    findings = parse_trivy(schema2(results)).findings
    assert [(f.identifier, f.title) for f in findings] == [("CVE-2024-0001", "first"), ("CVE-2024-0002", "a title")]


def test_it_parses_30000_vulnerabilities_over_40_targets():
    results = []
    for target in range(40):
        vulnerabilities = [
            vuln(f"CVE-2024-{index:05d}", f"pkg{index % 97}", f"1.{index % 13}.0", PkgPath=f"app/{target}/lib.jar",
                 Severity=None, SeveritySource="nvd", CVSS={"nvd": {"V3Score": (index % 100) / 10}},
                 PrimaryURL=f"https://avd.aquasec.com/nvd/cve-2024-{index:05d}", Description="d" * 300)
            for index in range(750)
        ]  # fmt: skip
        results.append(
            {"Target": f"Java {target}", "Class": "lang-pkgs", "Type": "jar", "Vulnerabilities": vulnerabilities}
        )
    report = parse_trivy(schema2(results))
    assert len(report.findings) == 30_000
    assert len({f.fingerprint for f in report.findings}) == 30_000
    assert Counter(f.severity for f in report.findings)["UNKNOWN"] == 40 * 8  # scores 0.0 (index % 100 == 0)


# ---------------------------------------------------------------------------------------------------------------
# Bad input


def test_it_reports_truncated_json_with_a_position(shared_fixture):
    data = shared_fixture("trivy/alpine-310.json").read_bytes()
    error = expect_error(data[: len(data) // 2], "not valid JSON", "truncated")
    assert error.location.startswith("line ") and ", column " in error.location


def test_it_reports_broken_json_in_the_middle():
    error = expect_error(b'{"SchemaVersion": 2,\n "Results": [}\n', "not valid JSON")
    assert error.location.startswith("line 2, column ")


def test_it_reports_an_empty_file():
    expect_error(b"", "the file is empty")
    expect_error(b"  \n\t\n", "the file is empty")


def test_it_reports_binary_garbage():
    expect_error(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "binary file")
    expect_error(b"\x1f\x8b\x08\x00\x00\x00\x00\x00", "gzip")


def test_it_reports_invalid_utf8():
    error = expect_error(b'{"SchemaVersion": 2,\n "ArtifactName": "caf\xe9"}', "not UTF-8 text")
    assert error.location == "line 2"


def test_it_reports_a_jmeter_csv_given_as_trivy():
    csv = (
        b"timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,success\n1700000000000,12,home,200\n"
    )
    expect_error(csv, "this looks like a JMeter CSV results file, not a Trivy report")
    expect_error(b"1700000000000,12,home,200,OK,Group 1-1,text,true\n", "JMeter CSV")


def test_it_reports_json_of_the_wrong_shape():
    expect_error(b'{"foo": 1}', "not a Trivy report: expected", "foo")
    expect_error(b"42", "not a Trivy report: expected")
    expect_error(b'[{"uri": "x.attack", "keyword": "Feature", "elements": []}]', "not a Trivy report", location="[0]")


def test_it_reports_fields_of_the_wrong_type_with_their_location():
    expect_error(schema2("oops"), "expected a list of results, got a string", location="Results")
    results = [os_result(vulns=[vuln()]) for _ in range(4)]
    results[3]["Vulnerabilities"] = [vuln(), vuln("CVE-2"), "CVE-3"]
    expect_error(schema2(results), "expected an object, got a string", location="Results[3].Vulnerabilities[2]")
    results = [os_result(vulns=[vuln(PkgName={"name": "x"})])]
    expect_error(schema2(results), "expected a string, got an object", location="Results[0].Vulnerabilities[0].PkgName")
    expect_error(schema2([1]), "expected an object", location="Results[0]")
    expect_error(schema2([{"Target": "t", "Secrets": {}}]), "expected a list", location="Results[0].Secrets")
    expect_error(orjson.dumps({"ClusterName": "c", "Vulnerabilities": [{"Results": "x"}]}),
                 "expected a list", location="Vulnerabilities[0].Results")  # fmt: skip
    expect_error(orjson.dumps({"version": "2.1.0", "runs": [{"results": [None]}]}), location="runs[0].results[0]")


def test_it_refuses_a_file_larger_than_max_bytes(shared_fixture):
    path = shared_fixture("trivy/pip.json")
    expect_error(path, "larger than", max_bytes=1000)
    assert len(parse_trivy(path, max_bytes=path.stat().st_size).findings) == 2
