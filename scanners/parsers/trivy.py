"""Trivy reports -> plain findings. Pure: no Django, no I/O beyond reading the source.

Variants handled (see ../shared/notes/report-formats.md):
- "schema2": SchemaVersion 2 JSON (Trivy >= 0.20), with or without Results;
- "legacy":  a bare JSON array of results (Trivy <= 0.19);
- "null":    the JSON literal null (legacy clean scan);
- "k8s":     `trivy k8s` cluster reports (ClusterName + resources with nested Results);
- "sarif":   `--format sarif` (SARIF 2.1.0).

Fingerprints are built from identifiers and location only (never prose, never the image tag, never the installed
version), so a finding keeps its fingerprint across runs, across images and across a package bump that leaves it
vulnerable; see `fingerprint`, `vulnerability_fingerprint` and the per-class builders.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import orjson

from scanners.parsers.common import ReportParseError, Source, json_type_name, read_all, without_nul
from scanners.parsers.masking import mask_tokens

__all__ = ["TrivyFinding", "TrivyReport", "looks_like_trivy", "mask_secret", "parse_trivy"]


@dataclass(frozen=True, slots=True)
class TrivyFinding:
    finding_class: str  # "vulnerability" | "misconfiguration" | "secret" | "license"
    identifier: str  # VulnerabilityID / misconfig ID (AVDID fallback) / secret RuleID / license Name
    package: str  # PkgName ("" if none)
    installed_version: str
    fixed_version: str
    severity: str  # CRITICAL HIGH MEDIUM LOW UNKNOWN
    title: str
    detail: str  # misconfig Message; secret: masked match; license: category/confidence; vulnerability: ""
    url: str  # http(s) only, "" if none
    target: str  # Result Target
    pkg_path: str  # PkgPath or ""
    fingerprint: str  # 64 hex chars


@dataclass(frozen=True, slots=True)
class TrivyReport:
    format: str  # "schema2" | "legacy" | "null" | "k8s" | "sarif"
    artifact_name: str  # without tag or digest
    artifact_type: str
    findings: list[TrivyFinding]


VULNERABILITY = "vulnerability"
MISCONFIGURATION = "misconfiguration"
SECRET = "secret"  # noqa: S105 - a finding class name, not a password
LICENSE = "license"

# Field length limits: long enough for real data, short enough that a hostile file cannot bloat the database.
MAX_IDENTIFIER = 200
MAX_PACKAGE = 255
MAX_INSTALLED = 200
MAX_FIXED = 500  # fixed versions can be comma-separated lists
MAX_TITLE = 2000
MAX_DETAIL = 2000
MAX_TARGET = 500
MAX_URL = 500
MAX_MASKED = 200

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")
_SEVERITY_ALIASES = {s: s for s in SEVERITIES} | {
    "MODERATE": "MEDIUM",
    "IMPORTANT": "HIGH",
    "NEGLIGIBLE": "LOW",
}
_VENDOR_SEVERITY = {1: "LOW", 2: "MEDIUM", 3: "HIGH", 4: "CRITICAL"}
_CVSS_SOURCE_ORDER = ("nvd", "ghsa", "redhat")

# Result Types that are OS package families: their Target embeds the image name and tag.
OS_FAMILIES = frozenset(
    {
        "alma", "alpine", "amazon", "azurelinux", "bottlerocket", "cbl-mariner", "centos", "chainguard",
        "coreos", "debian", "echo", "fedora", "minimos", "opensuse", "opensuse-leap", "opensuse-tumbleweed",
        "opensuse.leap", "opensuse.tumbleweed", "oracle", "photon", "redhat", "rocky", "slem", "sles",
        "suse linux enterprise micro", "suse linux enterprise server", "ubuntu", "wolfi",
    }
)  # fmt: skip

_FINDING_ARRAYS = ("Vulnerabilities", "Misconfigurations", "Secrets", "Licenses")
_K8S_RESOURCE_ARRAYS = ("Vulnerabilities", "Misconfigurations", "Resources", "Findings")
# Artifact types whose name is a path or URL, where ":" or "@" is not a tag or digest separator.
_PATH_ARTIFACT_TYPES = frozenset({"filesystem", "repository", "cyclonedx", "spdx", "vm", "sbom"})
_IMAGE_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")

_SARIF_VULN_ID = re.compile(
    r"(CVE|GHSA|PYSEC|RUSTSEC|OSV|GO|GMS|NSWG|DLA|DSA|RHSA|ALAS\d*|ELSA|USN|SNYK|BIT|MAL|TEMP)-", re.IGNORECASE
)
_SARIF_MISCONF_ID = re.compile(r"(AVD-|DS-?\d|KSV-?\d|KCV-?\d)", re.IGNORECASE)
_SARIF_LEVELS = {"error": "HIGH", "warning": "MEDIUM", "note": "LOW", "none": "UNKNOWN"}
_SARIF_RULE_NAMES = {
    "ospackagevulnerability": VULNERABILITY,
    "languagespecificpackagevulnerability": VULNERABILITY,
    "misconfiguration": MISCONFIGURATION,
    "secret": SECRET,
    "license": LICENSE,
}
_SARIF_CLASS_TAGS = (VULNERABILITY, MISCONFIGURATION, SECRET, LICENSE)
_SARIF_OLD_ID = re.compile(r"\[(CRITICAL|HIGH|MEDIUM|LOW|UNKNOWN)\]\s*(.+)", re.IGNORECASE)  # contrib/sarif.tpl ids
_MARKDOWN_LINK = re.compile(r"\]\((https?://[^)\s]+)\)")
# What precedes Trivy's stars: up to the first "=" or ":" within 40 characters, then spaces or a quote, then "*".
_TRIVY_MASKED_CONTEXT = re.compile(r"([^=:]{0,39}[=:])[\s'\"]*\*")
_NON_SPACE = re.compile(r"\S")
_URL_FORBIDDEN = re.compile(r"[\s\x00-\x1f\x7f]")
_JMETER_CSV_ROW = re.compile(rb"\d{10,13}[,;\t|]\d+[,;\t|]")


# ---------------------------------------------------------------------------------------------------------------
# Public helpers


def mask_secret(text: str) -> str:
    """A secret's match as the portal shows it: every character starred, except the words before Trivy's own mask.

    Trivy stars the secret it found ("export AWS_ACCESS_KEY_ID=****"): what comes before the first "=" or ":"
    (within 40 characters) is kept only when Trivy's stars follow it, and then without any known token shape.
    A match Trivy did not mask tells nothing of where its secret is (before the separator, "=" padding of a
    base64 value...): it is starred whole.
    """
    text = (text or "")[:MAX_MASKED]  # masking keeps the length, so cutting first is the same and cheaper
    context = _TRIVY_MASKED_CONTEXT.match(text)
    keep = context.end() - 1 if context else 0  # up to Trivy's first star
    return mask_tokens(text[:keep]) + _NON_SPACE.sub("*", text[keep:])


def looks_like_trivy(head: bytes) -> bool:
    """Cheap sniff of the first few KB of a file: True if it looks like any Trivy report variant."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.rstrip() == b"null":
        return True
    if text.startswith(b"["):
        return b'"Target"' in text and (b'"Vulnerabilities"' in text or b'"Type"' in text)
    if not text.startswith(b"{"):
        return False
    if b'"ClusterName"' in text:
        return True
    if b'"SchemaVersion"' in text and (b'"ArtifactName"' in text or b'"ArtifactType"' in text or b'"Results"' in text):
        return True
    if b'"runs"' in text:
        return b"Trivy Vulnerability Scanner" in text or re.search(rb'"name"\s*:\s*"Trivy"', text) is not None
    return False


def parse_trivy(source: Source, *, max_bytes: int | None = None) -> TrivyReport:
    """Parse any Trivy JSON or SARIF report. Raises ReportParseError with a human message and a location."""
    data = read_all(source, max_bytes=max_bytes)
    document = _load_json(data)
    if document is None:
        return TrivyReport(format="null", artifact_name="", artifact_type="", findings=[])
    collector = _Collector()
    if isinstance(document, list):
        _parse_results(document, "", collector, legacy=True)
        return TrivyReport(format="legacy", artifact_name="", artifact_type="", findings=collector.findings)
    if not isinstance(document, dict):
        raise ReportParseError(_NOT_TRIVY + f" (the file holds {json_type_name(document)})")
    if "runs" in document:
        return _parse_sarif(document, collector)
    if "ClusterName" in document:
        return _parse_k8s(document, collector)
    if any(key in document for key in ("SchemaVersion", "Results", "ArtifactName")):
        return _parse_schema2(document, collector)
    keys = ", ".join(sorted(document)[:5]) or "none"
    raise ReportParseError(_NOT_TRIVY + f" (top-level keys: {keys})")


_NOT_TRIVY = (
    "not a Trivy report: expected a JSON object with SchemaVersion and Results, a legacy list of results, "
    "a Kubernetes report with ClusterName, or SARIF with runs"
)


# ---------------------------------------------------------------------------------------------------------------
# Reading bytes into JSON, with a precise diagnosis when that fails


def _load_json(data: bytes):
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]  # a UTF-8 byte order mark (Windows tools) is harmless; orjson rejects it
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as error:
        # Only now spend time finding out what the file really is.
        raise _diagnose(data, error) from None


def _diagnose(data: bytes, error: orjson.JSONDecodeError) -> ReportParseError:
    stripped = data.strip()
    if not stripped:
        return ReportParseError("the file is empty")
    if data.startswith(b"\x1f\x8b"):
        return ReportParseError("this is a gzip-compressed file, not a Trivy report: decompress it first")
    if data.startswith(b"PK\x03\x04"):
        return ReportParseError("this is a ZIP archive, not a Trivy report: extract the JSON report first")
    nul = data.find(b"\x00", 0, 4096)
    if nul >= 0:
        return ReportParseError("this is a binary file, not a Trivy JSON report", f"byte {nul}")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as bad:
        line = data.count(b"\n", 0, bad.start) + 1
        return ReportParseError(
            f"not UTF-8 text (invalid byte 0x{data[bad.start]:02x} at byte {bad.start}); "
            "a Trivy JSON report is always UTF-8",
            f"line {line}",
        )
    first_line = stripped[:4096].split(b"\n", 1)[0]
    if (b"timeStamp" in first_line and b"elapsed" in first_line) or _JMETER_CSV_ROW.match(first_line):
        return ReportParseError("this looks like a JMeter CSV results file, not a Trivy report", "line 1")
    if stripped.startswith(b"<"):
        if b"<testResults" in stripped[:4096]:
            return ReportParseError("this looks like a JMeter XML results file, not a Trivy report", "line 1")
        return ReportParseError("this is XML or HTML, not a Trivy JSON report", "line 1")
    location = f"line {error.lineno}, column {error.colno}"
    if error.pos >= len(data.rstrip()):
        return ReportParseError("not valid JSON: the file ends too early (it was probably truncated)", location)
    return ReportParseError(f"not valid JSON: {error.msg}", location)


# ---------------------------------------------------------------------------------------------------------------
# Field access: coerce, truncate, and report wrong types with their location


class _WrongType(Exception):
    """Raised inside a finding builder; the caller adds the finding's location."""

    def __init__(self, field: str, expected: str, value):
        super().__init__(field)
        self.field = field
        self.expected = expected
        self.value = value

    def to_error(self, location: str) -> ReportParseError:
        where = f"{location}.{self.field}" if location else self.field
        return ReportParseError(f"expected {self.expected}, got {json_type_name(self.value)}", where)


def _text(item: dict, field: str, limit: int) -> str:
    """item[field] as a clean string: None -> "", numbers -> str, cut to limit, NUL bytes removed."""
    value = item.get(field)
    if value is None:
        return ""
    if type(value) is not str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        else:
            raise _WrongType(field, "a string", value)
    value = without_nul(value).strip()
    return value[:limit] if len(value) > limit else value


def _name(value, limit: int = MAX_TARGET) -> str:
    """A bare string field (ArtifactName, ClusterName, imageName, a SARIF uri) as _text cleans one; "" otherwise."""
    return without_nul(value).strip()[:limit] if type(value) is str else ""


def _as_list(value, location: str, what: str) -> list:
    """A JSON array, or [] for null/missing; anything else is a ReportParseError at location."""
    if value is None:
        return []
    if type(value) is not list:
        raise ReportParseError(f"expected a list of {what}, got {json_type_name(value)}", location)
    return value


def _object(value, location: str) -> dict:
    if type(value) is not dict:
        raise ReportParseError(f"expected an object, got {json_type_name(value)}", location)
    return value


def _http_url(value) -> str:
    """value if it is a usable http(s) URL within MAX_URL, else "" (a truncated URL would be wrong)."""
    if type(value) is not str or len(value) > MAX_URL:
        return ""
    lowered = value[:8].lower()
    if not (lowered.startswith("https://") or lowered.startswith("http://")):
        return ""
    if _URL_FORBIDDEN.search(value):
        return ""
    return value


def _first_url(item: dict) -> str:
    url = _http_url(item.get("PrimaryURL"))
    if url:
        return url
    references = item.get("References")
    if type(references) is list:
        for reference in references:
            url = _http_url(reference)
            if url:
                return url
    return ""


def _severity(value) -> str:
    """Normalised severity name, or "" if missing or not recognised (UNKNOWN counts as recognised)."""
    if type(value) is not str:
        return ""
    return _SEVERITY_ALIASES.get(value.strip().upper(), "")


def _score_band(score: float, v2: bool = False) -> str:
    if score >= 9.0 and not v2:  # CVSS v2 has no CRITICAL band (NVD: 7.0-10.0 is HIGH)
        return "CRITICAL"
    if score >= 7.0:
        return "HIGH"
    if score >= 4.0:
        return "MEDIUM"
    if score > 0:
        return "LOW"
    return "UNKNOWN"


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _ordered_sources(mapping: dict, preferred) -> list:
    order = []
    if type(preferred) is str and preferred in mapping:
        order.append(preferred)
    order.extend(source for source in _CVSS_SOURCE_ORDER if source in mapping and source not in order)
    order.extend(source for source in mapping if source not in order)
    return order


def _vulnerability_severity(item: dict) -> str:
    """Severity, else the CVSS score (SeveritySource, nvd, ghsa, redhat; v4, v3, v2), else VendorSeverity."""
    severity = _severity(item.get("Severity"))
    if severity and severity != "UNKNOWN":
        return severity
    cvss = item.get("CVSS")
    source_hint = item.get("SeveritySource")
    if type(cvss) is dict and cvss:
        for source in _ordered_sources(cvss, source_hint):
            scores = cvss[source]
            if type(scores) is not dict:
                continue
            for key in ("V40Score", "V3Score", "V2Score"):
                score = _number(scores.get(key))
                if score is not None and score > 0:
                    return _score_band(score, v2=key == "V2Score")
    vendor = item.get("VendorSeverity")
    if type(vendor) is dict and vendor:
        for source in _ordered_sources(vendor, source_hint):
            level = vendor[source]
            if type(level) is int and level in _VENDOR_SEVERITY:
                return _VENDOR_SEVERITY[level]
    return "UNKNOWN"


def fingerprint(*parts: str) -> str:
    """A finding's identity from its identifiers. \x1f (unit separator) cannot be confused with text inside."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def vulnerability_fingerprint(identifier: str, package: str, location: str, installed: str) -> str:
    """A vulnerability's identity: its id, the package, and where the package is ("" for OS packages).

    The installed version is left out, also where the location embeds it (".../Django-4.2.1.dist-info/METADATA",
    "lib/log4j-core-2.14.1.jar"): a bump that is still vulnerable is the same finding, persisting.
    """
    if installed and location:
        location = re.sub(rf"(?<=[-_@/]){re.escape(installed)}(?=[./_-]|$)", "*", location)
    return fingerprint(VULNERABILITY, identifier, package, location)


def _strip_tag(name: str, artifact_type: str) -> str:
    """Image reference without tag or digest; registry host:port kept. Paths and URLs are left alone."""
    if not name or artifact_type in _PATH_ARTIFACT_TYPES:
        return name
    name = name.split("@", 1)[0]
    colon = name.rfind(":")
    if colon > name.rfind("/") and _IMAGE_TAG.fullmatch(name[colon + 1 :]):
        name = name[:colon]
    return name


# ---------------------------------------------------------------------------------------------------------------
# Findings per class


class _Collector:
    """Keeps findings in order, dropping same-run duplicates (first wins): Trivy repeats some entries."""

    __slots__ = ("findings", "_seen")

    def __init__(self):
        self.findings: list[TrivyFinding] = []
        self._seen: set[str] = set()

    def add(self, finding: TrivyFinding) -> None:
        if finding.fingerprint not in self._seen:
            self._seen.add(finding.fingerprint)
            self.findings.append(finding)


@dataclass(slots=True)
class _ResultContext:
    target: str  # what the finding shows (k8s: "namespace/kind/name: inner target")
    file_target: str  # what identifies it: "" for OS packages (the target embeds the image tag)


def _vulnerability(item: dict, ctx: _ResultContext) -> TrivyFinding:
    identifier = _text(item, "VulnerabilityID", MAX_IDENTIFIER)
    package = _text(item, "PkgName", MAX_PACKAGE)
    pkg_path = _text(item, "PkgPath", MAX_TARGET)
    installed = _text(item, "InstalledVersion", MAX_INSTALLED)
    return TrivyFinding(
        finding_class=VULNERABILITY,
        identifier=identifier,
        package=package,
        installed_version=installed,
        fixed_version=_text(item, "FixedVersion", MAX_FIXED),
        severity=_vulnerability_severity(item),
        title=_text(item, "Title", MAX_TITLE),
        detail="",
        url=_first_url(item),
        target=ctx.target,
        pkg_path=pkg_path,
        fingerprint=vulnerability_fingerprint(identifier, package, pkg_path or ctx.file_target, installed),
    )


def _misconfiguration(item: dict, ctx: _ResultContext) -> TrivyFinding | None:
    status = item.get("Status")
    if status not in (None, "") and not (type(status) is str and status.strip().upper() == "FAIL"):
        return None  # PASS / EXCEPTION are checks that did not fail
    identifier = _text(item, "ID", MAX_IDENTIFIER) or _text(item, "AVDID", MAX_IDENTIFIER)
    cause = item.get("CauseMetadata")
    resource = ""
    if type(cause) is dict:
        try:
            resource = _text(cause, "Resource", MAX_TARGET)
        except _WrongType as wrong:
            raise _WrongType(f"CauseMetadata.{wrong.field}", wrong.expected, wrong.value) from None
    return TrivyFinding(
        finding_class=MISCONFIGURATION,
        identifier=identifier,
        package="",
        installed_version="",
        fixed_version="",
        severity=_severity(item.get("Severity")) or "UNKNOWN",
        title=_text(item, "Title", MAX_TITLE),
        detail=_text(item, "Message", MAX_DETAIL),
        url=_first_url(item),
        target=ctx.target,
        pkg_path="",
        fingerprint=fingerprint(MISCONFIGURATION, identifier, ctx.target, resource),
    )


def _secret(item: dict, ctx: _ResultContext) -> TrivyFinding:
    # Match (and Code.Lines, never read here) hold the secret: only its hash and a masked copy leave this function.
    match = item.get("Match")
    if match is not None and type(match) is not str:
        raise _WrongType("Match", "a string", match)
    match = match or ""
    identifier = _text(item, "RuleID", MAX_IDENTIFIER)
    match_hash = hashlib.sha256(match.encode("utf-8", "surrogatepass")).hexdigest()
    return TrivyFinding(
        finding_class=SECRET,
        identifier=identifier,
        package="",
        installed_version="",
        fixed_version="",
        severity=_severity(item.get("Severity")) or "UNKNOWN",
        title=_text(item, "Title", MAX_TITLE),
        detail=mask_secret(without_nul(match).strip()),
        url="",
        target=ctx.target,
        pkg_path="",
        fingerprint=fingerprint(SECRET, identifier, ctx.target, match_hash),
    )


def _license(item: dict, ctx: _ResultContext) -> TrivyFinding:
    name = _text(item, "Name", MAX_IDENTIFIER)
    package = _text(item, "PkgName", MAX_PACKAGE)
    file_path = _text(item, "FilePath", MAX_TARGET)
    category = _text(item, "Category", 100)
    confidence = _number(item.get("Confidence"))
    detail = category
    if confidence is not None:
        detail = f"{category} (confidence {confidence:g})" if category else f"confidence {confidence:g}"
    return TrivyFinding(
        finding_class=LICENSE,
        identifier=name,
        package=package,
        installed_version="",
        fixed_version="",
        severity=_severity(item.get("Severity")) or "UNKNOWN",
        title=f"{name} license in {package}" if package else f"{name} license",
        detail=detail,
        url=_http_url(item.get("Link")),
        target=ctx.target,
        pkg_path=file_path,
        fingerprint=fingerprint(LICENSE, name, package, file_path or ctx.target),
    )


_BUILDERS = {
    "Vulnerabilities": _vulnerability,
    "Misconfigurations": _misconfiguration,
    "Secrets": _secret,
    "Licenses": _license,
}


# ---------------------------------------------------------------------------------------------------------------
# Variants


def _parse_schema2(document: dict, collector: _Collector) -> TrivyReport:
    artifact_type = _name(document.get("ArtifactType"), 100)
    artifact_name = _name(document.get("ArtifactName"))
    _parse_results(_as_list(document.get("Results"), "Results", "results"), "Results", collector)
    return TrivyReport(
        format="schema2",
        artifact_name=_strip_tag(artifact_name, artifact_type),
        artifact_type=artifact_type,
        findings=collector.findings,
    )


def _parse_k8s(document: dict, collector: _Collector) -> TrivyReport:
    # Older `trivy k8s` splits resources into Vulnerabilities[] and Misconfigurations[]; newer ones use
    # Resources[] ("all") or Findings[] ("summary"). The same resource may appear in several: dedup handles it.
    for key in _K8S_RESOURCE_ARRAYS:
        for index, resource in enumerate(_as_list(document.get(key), key, "Kubernetes resources")):
            location = f"{key}[{index}]"
            resource = _object(resource, location)
            try:
                namespace = _text(resource, "Namespace", 253)
                kind = _text(resource, "Kind", 100)
                name = _text(resource, "Name", 253)
            except _WrongType as wrong:
                raise wrong.to_error(location) from None
            prefix = "/".join(part for part in (namespace, kind, name) if part)
            results = _as_list(resource.get("Results"), f"{location}.Results", "results")
            _parse_results(results, f"{location}.Results", collector, k8s_prefix=prefix)
    return TrivyReport(
        format="k8s",
        artifact_name=_name(document.get("ClusterName")),
        artifact_type="kubernetes",
        findings=collector.findings,
    )


def _parse_results(
    results: list, location: str, collector: _Collector, *, legacy: bool = False, k8s_prefix: str | None = None
) -> None:
    for index, result in enumerate(results):
        result_location = f"{location}[{index}]"
        result = _object(result, result_location)
        if legacy and index == 0 and not any(key in result for key in ("Target", "Type", *_FINDING_ARRAYS)):
            raise ReportParseError(_NOT_TRIVY + " (a JSON list whose items have no Target)", "[0]")
        ctx = _result_context(result, result_location, k8s_prefix)
        for key, build in _BUILDERS.items():
            items = result.get(key)
            if items is None:
                continue
            items_location = f"{result_location}.{key}"
            for item_index, item in enumerate(_as_list(items, items_location, key.lower())):
                if type(item) is not dict:
                    raise ReportParseError(
                        f"expected an object, got {json_type_name(item)}", f"{items_location}[{item_index}]"
                    )
                try:
                    finding = build(item, ctx)
                except _WrongType as wrong:
                    raise wrong.to_error(f"{items_location}[{item_index}]") from None
                if finding is not None:
                    collector.add(finding)


def _result_context(result: dict, location: str, k8s_prefix: str | None) -> _ResultContext:
    try:
        target = _text(result, "Target", MAX_TARGET)
        result_class = _text(result, "Class", 50)
        result_type = _text(result, "Type", 100)
    except _WrongType as wrong:
        raise wrong.to_error(location) from None
    is_os = result_class == "os-pkgs" or (not result_class and result_type.lower() in OS_FAMILIES)
    if k8s_prefix is None:
        return _ResultContext(target=target, file_target="" if is_os else target)
    # In a cluster the workload is the stable identity; the image tag inside an OS target is still left out.
    shown = f"{k8s_prefix}: {target}"[:MAX_TARGET] if target else k8s_prefix
    return _ResultContext(target=shown, file_target=k8s_prefix if is_os else shown)


# ---------------------------------------------------------------------------------------------------------------
# SARIF


def _parse_sarif(document: dict, collector: _Collector) -> TrivyReport:
    artifact_name = ""
    runs = _as_list(document.get("runs"), "runs", "runs")
    for run_index, run in enumerate(runs):
        run_location = f"runs[{run_index}]"
        run = _object(run, run_location)
        driver = _sarif_driver(run, run_location)
        driver_name = driver.get("name")
        if type(driver_name) is str and driver_name and "trivy" not in driver_name.lower():
            raise ReportParseError(f"this is SARIF from {driver_name[:80]!r}, not from Trivy", f"{run_location}.tool")
        rules = _sarif_rules(driver, run_location)
        by_id = {}
        for rule in rules:
            if type(rule.get("id")) is str:
                by_id.setdefault(rule["id"], rule)
        properties = run.get("properties")
        if type(properties) is dict and type(properties.get("imageName")) is str and not artifact_name:
            artifact_name = _strip_tag(_name(properties["imageName"]), "container_image")
        results = _as_list(run.get("results"), f"{run_location}.results", "results")
        for index, result in enumerate(results):
            result_location = f"{run_location}.results[{index}]"
            result = _object(result, result_location)
            try:
                collector.add(_sarif_finding(result, *_sarif_rule(result, rules, by_id)))
            except _WrongType as wrong:
                raise wrong.to_error(result_location) from None
    return TrivyReport(
        format="sarif",
        artifact_name=artifact_name,
        artifact_type="container_image" if artifact_name else "",
        findings=collector.findings,
    )


def _sarif_driver(run: dict, location: str) -> dict:
    tool = run.get("tool")
    if tool is None:
        return {}
    tool = _object(tool, f"{location}.tool")
    driver = tool.get("driver")
    return {} if driver is None else _object(driver, f"{location}.tool.driver")


def _sarif_rules(driver: dict, location: str) -> list[dict]:
    rules = _as_list(driver.get("rules"), f"{location}.tool.driver.rules", "rules")
    for index, rule in enumerate(rules):
        _object(rule, f"{location}.tool.driver.rules[{index}]")
    return rules


def _sarif_rule(result: dict, rules: list[dict], by_id: dict[str, dict]) -> tuple[str, dict]:
    """The result's rule id and rule: by ruleId, else by ruleIndex (both are optional in SARIF)."""
    rule_id = _text(result, "ruleId", 1000)
    index = result.get("ruleIndex")
    by_index = rules[index] if type(index) is int and 0 <= index < len(rules) else {}
    if not rule_id:
        rule_id = without_nul(by_index["id"]) if type(by_index.get("id")) is str else ""
    rule = by_id.get(rule_id)
    if rule is None:
        rule = by_index if by_index.get("id") in (None, rule_id) else {}
    return rule_id.strip(), rule


def _sarif_message_fields(text: str) -> dict[str, str]:
    """The "Key: value" lines of a Trivy SARIF message (Package, Installed Version, Fixed Version, Message, ...)."""
    fields = {}
    for line in without_nul(text).splitlines():
        key, sep, value = line.strip().partition(": ")
        if sep and key not in fields:
            fields[key] = value.strip()
    return fields


def _sarif_severity(rule: dict, tags: list, level) -> str:
    tagged = ""
    for tag in tags:
        tagged = _severity(tag) if type(tag) is str else ""
        if tagged:
            break
    if tagged and tagged != "UNKNOWN":
        return tagged
    properties = rule.get("properties")
    if type(properties) is dict:
        raw = properties.get("security-severity")
        try:
            score = float(raw) if isinstance(raw, (str, int, float)) and not isinstance(raw, bool) else 0.0
        except ValueError:
            score = 0.0
        if score > 0:
            return _score_band(score)
    if tagged:
        return tagged
    if type(level) is not str:
        default = rule.get("defaultConfiguration")
        level = default.get("level") if type(default) is dict else None
    return _SARIF_LEVELS.get(level, "UNKNOWN") if type(level) is str else "UNKNOWN"


def _sarif_class(rule_id: str, rule: dict, tags: list) -> str:
    if _SARIF_VULN_ID.match(rule_id):
        return VULNERABILITY
    if _SARIF_MISCONF_ID.match(rule_id):
        return MISCONFIGURATION
    for tag in tags:
        if type(tag) is str and tag.lower() in _SARIF_CLASS_TAGS:
            return tag.lower()
    name = rule.get("name")
    if type(name) is str and name.lower() in _SARIF_RULE_NAMES:
        return _SARIF_RULE_NAMES[name.lower()]
    return VULNERABILITY


def _sarif_location(result: dict) -> str:
    locations = result.get("locations")
    if type(locations) is not list or not locations or type(locations[0]) is not dict:
        return ""
    physical = locations[0].get("physicalLocation")
    artifact = physical.get("artifactLocation") if type(physical) is dict else None
    return _name(artifact.get("uri") if type(artifact) is dict else None)


def _sarif_finding(result: dict, rule_id: str, rule: dict) -> TrivyFinding:
    properties = rule.get("properties")
    tags = properties.get("tags") if type(properties) is dict else None
    tags = tags if type(tags) is list else []
    severity = _sarif_severity(rule, tags, result.get("level"))
    old_style = _SARIF_OLD_ID.fullmatch(rule_id)
    if old_style:  # contrib/sarif.tpl ids look like "[HIGH] CVE-2019-1549"
        severity, rule_id = old_style.group(1).upper(), old_style.group(2).strip()
    finding_class = _sarif_class(rule_id, rule, tags)

    message = result.get("message")
    text = message.get("text") if type(message) is dict else None
    fields = _sarif_message_fields(text) if type(text) is str else {}
    target = _sarif_location(result)
    title = ""
    short = rule.get("shortDescription")
    if type(short) is dict:
        title = _text(short, "text", MAX_TITLE)
    url = _http_url(rule.get("helpUri"))
    if not url and type(text) is str:
        link = _MARKDOWN_LINK.search(text)
        url = _http_url(link.group(1)) if link else ""

    package = fields.get("Package", fields.get("PkgName", ""))[:MAX_PACKAGE]
    installed = fields.get("Installed Version", "")[:MAX_INSTALLED]
    fixed = fields.get("Fixed Version", "")[:MAX_FIXED]
    identifier = rule_id[:MAX_IDENTIFIER]
    detail = ""
    pkg_path = ""
    if finding_class == VULNERABILITY:
        is_os = rule.get("name") == "OsPackageVulnerability"
        identity = vulnerability_fingerprint(identifier, package, "" if is_os else target, installed)
    elif finding_class == MISCONFIGURATION:
        package = installed = fixed = ""
        detail = fields.get("Message", "")[:MAX_DETAIL]
        identity = fingerprint(MISCONFIGURATION, identifier, target, "")
    elif finding_class == SECRET:
        package = installed = fixed = ""
        match = fields.get("Match", "")
        detail = mask_secret(match)
        match_hash = hashlib.sha256(match.encode("utf-8", "surrogatepass")).hexdigest()
        identity = fingerprint(SECRET, identifier, target, match_hash)
    else:  # license rules are "<package>:<license name>"
        installed = fixed = ""
        if package and rule_id.startswith(package + ":"):
            identifier = rule_id[len(package) + 1 :][:MAX_IDENTIFIER]
        detail = fields.get("Classification", "")[:MAX_DETAIL]
        pkg_path = fields.get("Path", "")[:MAX_TARGET]
        identity = fingerprint(LICENSE, identifier, package, pkg_path or target)
    return TrivyFinding(
        finding_class=finding_class,
        identifier=identifier,
        package=package,
        installed_version=installed,
        fixed_version=fixed,
        severity=severity,
        title=title,
        detail=detail,
        url=url,
        target=target,
        pkg_path=pkg_path,
        fingerprint=identity,
    )
