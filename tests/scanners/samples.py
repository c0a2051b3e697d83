"""The project's own small report samples, built in code so each test says what it feeds in."""

import json


def trivy_vulnerability(cve: str, package: str = "openssl", installed: str = "1.1.1", severity: str = "HIGH",
                        fixed: str = "1.1.2", title: str = "") -> dict:
    return {
        "VulnerabilityID": cve,
        "PkgName": package,
        "InstalledVersion": installed,
        "FixedVersion": fixed,
        "Severity": severity,
        "Title": title or f"{cve} in {package}",
        "PrimaryURL": f"https://avd.aquasec.com/nvd/{cve.lower()}",
    }


def trivy_report(vulnerabilities: list[dict], image: str = "registry.example.com/shop/app:abc123") -> bytes:
    return json.dumps(
        {
            "SchemaVersion": 2,
            "ArtifactName": image,
            "ArtifactType": "container_image",
            "Results": [
                {
                    "Target": f"{image} (alpine 3.19.1)",
                    "Class": "os-pkgs",
                    "Type": "alpine",
                    "Vulnerabilities": vulnerabilities,
                }
            ],
        }
    ).encode()


def cucumber_report(scenarios: list[tuple[str, str, str]]) -> bytes:
    """scenarios: (name, status, error message) triples, one feature."""
    elements = []
    for line, (name, status, message) in enumerate(scenarios, start=3):
        result = {"status": status, "duration": 1_500_000}
        if message:
            result["error_message"] = message
        elements.append(
            {
                "id": f"attack;{name}",
                "keyword": "Scenario",
                "name": name,
                "line": line,
                "type": "scenario",
                "steps": [
                    {"keyword": "Given ", "name": "the target is reachable", "line": line,
                     "result": {"status": "passed", "duration": 500_000}},
                    {"keyword": "Then ", "name": "the output should not contain \"vulnerable\"", "line": line + 1,
                     "result": result},
                ],
            }
        )
    return json.dumps([{"uri": "attack.attack", "id": "attack", "keyword": "Feature", "name": "Attack",
                        "line": 1, "elements": elements}]).encode()


JTL_HEADER = (
    "timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,success,failureMessage,"
    "bytes,sentBytes,grpThreads,allThreads,URL,Latency,IdleTime,Connect"
)


def jtl_csv(rows: list[tuple[int, int, str, bool]]) -> bytes:
    """rows: (timeStamp ms, elapsed ms, label, success)."""
    lines = [JTL_HEADER]
    for stamp, elapsed, label, ok in rows:
        code = "200" if ok else "500"
        lines.append(
            f"{stamp},{elapsed},{label},{code},OK,Users 1-1,text,{str(ok).lower()},,1024,256,1,1,"
            f"http://shop/{label},{elapsed // 2},0,3"
        )
    return ("\n".join(lines) + "\n").encode()


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<testResults version="1.2"><httpSample t="1" ts="1700000000000" s="true" lb="&lol9;"/></testResults>
"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE testResults [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<testResults version="1.2"><httpSample t="1" ts="1700000000000" s="true" lb="&secret;"/></testResults>
"""


TRANSACTION_MESSAGE = "Number of samples in transaction : 2, number of failing samples : 0"


def jtl_csv_with_transactions(rows: list[tuple[int, int, str, bool]], transactions: tuple[str, ...]) -> bytes:
    """jtl_csv (labels without commas), with the rows of the labels in `transactions` written as JMeter writes a
    Transaction Controller's sample: its response message, and no dataType."""
    lines = jtl_csv(rows).decode().splitlines()
    for index, line in enumerate(lines[1:], start=1):
        fields = line.split(",")  # timeStamp, elapsed, label, responseCode, responseMessage, threadName, dataType
        if fields[2] in transactions:
            fields[4], fields[6] = f'"{TRANSACTION_MESSAGE}"', ""
            lines[index] = ",".join(fields)
    return ("\n".join(lines) + "\n").encode()


def jtl_xml_without_timing(rows: list[tuple[str, bool]]) -> bytes:
    """An XML JTL saved without elapsed (t) nor start (ts) times; rows: (label, success)."""
    samples = "".join(f'<httpSample s="{str(ok).lower()}" lb="{label}" rc="200" rm="OK" by="10"/>\n'
                      for label, ok in rows)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<testResults version="1.2">\n{samples}</testResults>\n'.encode()
