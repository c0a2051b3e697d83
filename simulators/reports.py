"""Small Trivy, Gauntlt (cucumber JSON) and JMeter (CSV JTL) report files, built in code.

The simulated Jenkins uploads them as a real pipeline would, and the tests build their inputs with them."""

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
