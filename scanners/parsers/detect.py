"""Tell which kind of report a file is: Trivy, Gauntlt (cucumber JSON) or JMeter. Pure: no Django.

Content decides first; the file name only helps when the content matches no sniffer.
"""

from __future__ import annotations

from pathlib import PurePath

from scanners.parsers.common import ReportParseError
from scanners.parsers.gauntlt import UTF8_BOM, UTF16_BOMS, looks_binary, looks_like_cucumber

CANNOT_TELL = (
    "cannot tell the report kind: it is neither a Trivy JSON/SARIF report, a Gauntlt (cucumber JSON) report "
    "nor a JMeter CSV/XML results file; give the kind explicitly"
)


def detect_kind(head: bytes, filename: str = "") -> str:
    """The kind ("trivy", "gauntlt" or "jmeter") of a file from its first bytes (up to 64 KB); else ReportParseError."""
    head = head.removeprefix(UTF8_BOM)
    if not head.strip():
        raise ReportParseError("the file is empty")
    if head.startswith(UTF16_BOMS):
        raise ReportParseError("the file is UTF-16 encoded (PowerShell redirection does that); save it as UTF-8")
    if looks_binary(head):
        raise ReportParseError(CANNOT_TELL)

    # Cucumber first: its sniff is strict (the first key of the first object must be a feature key), whereas a
    # bare JSON array is also what legacy Trivy writes, so Trivy's sniff is asked only once cucumber said no.
    if looks_like_cucumber(head):
        return "gauntlt"
    # Imported here, only when needed: the JMeter module pulls in numpy, and a cucumber file needs neither.
    from scanners.parsers.trivy import looks_like_trivy

    if looks_like_trivy(head):
        return "trivy"
    from scanners.parsers.jmeter import looks_like_jmeter

    if looks_like_jmeter(head):
        return "jmeter"

    kind = _kind_from_filename(filename)
    if kind:
        return kind
    raise ReportParseError(CANNOT_TELL)


def _kind_from_filename(filename: str) -> str:
    """A hint from the name only; the parser of that kind then says precisely what is wrong with the content."""
    name = PurePath(filename.replace("\\", "/")).name.lower()
    if name.endswith((".jtl", ".csv")):
        return "jmeter"  # the only CSV kind
    if name.endswith(".sarif") or name.endswith(".sarif.json"):
        return "trivy"
    for word, kind in (("trivy", "trivy"), ("gauntlt", "gauntlt"), ("cucumber", "gauntlt"), ("jmeter", "jmeter")):
        if word in name:
            return kind
    return ""
