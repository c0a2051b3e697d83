"""The quality gate's evaluation, pure: each condition's actual value, threshold and verdict; missing evidence
fails; waivers excuse what they name until they expire."""

from datetime import UTC, datetime, timedelta

from promotions import gates
from promotions.gates import ActiveWaiver, Condition, Evidence, LabelFigures, Vulnerability

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
DEFAULT = [Condition(*row) for row in gates.DEFAULT_GATE]


def green() -> Evidence:
    return Evidence(
        has_trivy=True,
        vulnerabilities=[Vulnerability("CVE-1", "CRITICAL", True, True), Vulnerability("CVE-2", "HIGH", False, False)],
        has_gauntlt=True,
        has_jmeter=True,
        labels={"home": LabelFigures(110.0, 0.0), "cart": LabelFigures(200.0, 0.5)},
        production_labels={"home": LabelFigures(100.0, 0.0), "cart": LabelFigures(190.0, 0.0)},
        availability=(True, "check of http://staging/healthz (200)"),
    )


def verdicts(result) -> list[tuple[str, str, str]]:
    return [(row["metric"], row["subject"], row["verdict"]) for row in result["conditions"]]


def test_it_passes_the_default_gate_on_good_evidence():
    result = gates.evaluate(DEFAULT, green(), [], now=NOW)
    assert result["passed"] is True
    assert verdicts(result) == [
        ("new_critical_vulnerabilities", "", "passed"),
        ("failed_scenarios", "", "passed"),
        ("p95_ms", "cart", "passed"),
        ("p95_ms", "home", "passed"),
        ("error_percent", "cart", "passed"),
        ("error_percent", "home", "passed"),
        ("staging_availability", "", "passed"),
    ]
    home = result["conditions"][3]
    assert home["actual"] == "110 ms"
    assert home["threshold"] == "≤ 120 ms (production 100 ms + 20 %)"


def test_missing_reports_fail_and_say_which():
    result = gates.evaluate(DEFAULT, Evidence(), [], now=NOW)
    assert result["passed"] is False
    details = {row["metric"]: row["detail"] for row in result["conditions"]}
    assert details["new_critical_vulnerabilities"] == "no Trivy report in this run"
    assert details["failed_scenarios"] == "no Gauntlt report in this run"
    assert details["p95_ms"] == "no JMeter report in this run"
    assert details["staging_availability"] == "no availability check of staging for this run"
    assert all(row["verdict"] == "failed" for row in result["conditions"])


def test_a_new_critical_vulnerability_fails_and_one_production_has_does_not():
    evidence = green()
    evidence.vulnerabilities.append(Vulnerability("CVE-9", "CRITICAL", True, False))
    result = gates.evaluate(DEFAULT, evidence, [], now=NOW)
    row = result["conditions"][0]
    assert (row["verdict"], row["actual"], row["threshold"], row["items"]) == ("failed", "1", "≤ 0", ["CVE-9"])
    assert "CVE-1" not in row["detail"]


def test_p95_above_production_plus_twenty_percent_fails_per_label():
    evidence = green()
    evidence.labels["cart"] = LabelFigures(240.0, 0.0)
    result = gates.evaluate(DEFAULT, evidence, [], now=NOW)
    assert ("p95_ms", "cart", "failed") in verdicts(result)
    assert ("p95_ms", "home", "passed") in verdicts(result)
    assert result["passed"] is False


def test_relative_p95_without_a_production_load_test_fails_but_a_new_label_is_not_compared():
    evidence = green()
    evidence.labels["search"] = LabelFigures(900.0, 0.0)
    result = gates.evaluate(DEFAULT, evidence, [], now=NOW)
    assert ("p95_ms", "search", "passed") in verdicts(result)
    evidence.production_labels = None
    rows = [row for row in gates.evaluate(DEFAULT, evidence, [], now=NOW)["conditions"] if row["metric"] == "p95_ms"]
    assert [(row["verdict"], row["detail"]) for row in rows] == [
        ("failed", "production has no load test to compare with")]


def test_a_first_release_compares_its_p95_with_nothing_but_its_error_rate_with_the_limit():
    evidence = green()
    evidence.production_labels, evidence.first_release = None, True
    evidence.labels["cart"] = LabelFigures(900.0, 2.5)
    rows = [(row["metric"], row["subject"], row["verdict"], row["threshold"], row["detail"])
            for row in gates.evaluate(DEFAULT, evidence, [], now=NOW)["conditions"]]
    assert rows[2:6] == [
        ("p95_ms", "cart", "passed", "not compared", "nothing runs in production yet: nothing to compare with"),
        ("p95_ms", "home", "passed", "not compared", "nothing runs in production yet: nothing to compare with"),
        ("error_percent", "cart", "failed", "≤ 1 %", ""),
        ("error_percent", "home", "passed", "≤ 1 %", ""),
    ]


def test_error_rate_and_availability_and_secrets_and_fixable():
    evidence = green()
    evidence.labels["cart"] = LabelFigures(200.0, 2.5)
    evidence.availability = (False, "check of http://staging/healthz (502)")
    evidence.secrets = ["aws-access-key-id"]
    conditions = DEFAULT + [Condition("secrets", "lte", 0), Condition("fixable_vulnerabilities", "lte", 0)]
    result = gates.evaluate(conditions, evidence, [], now=NOW)
    assert ("error_percent", "cart", "failed") in verdicts(result)
    assert ("staging_availability", "", "failed") in verdicts(result)
    assert ("secrets", "", "failed") in verdicts(result)
    fixable = result["conditions"][-1]
    assert (fixable["verdict"], fixable["items"]) == ("failed", ["CVE-1"])  # CVE-2 has no fix


def test_a_waiver_covering_every_failure_passes_and_is_listed():
    evidence = green()
    evidence.vulnerabilities.append(Vulnerability("CVE-9", "CRITICAL", True, False))
    evidence.failed_scenarios = ["xss"]
    waivers = [ActiveWaiver(1, "vulnerability", "CVE-9", "lead", "not reachable", NOW + timedelta(days=3)),
               ActiveWaiver(2, "scenario", "xss", "lead", "false positive", NOW + timedelta(days=3))]
    result = gates.evaluate(DEFAULT, evidence, waivers, now=NOW)
    assert result["passed"] is True
    assert [row["verdict"] for row in result["conditions"][:2]] == ["waived", "waived"]
    assert [w["identifier"] for w in result["waivers_used"]] == ["CVE-9", "xss"]


def test_an_expired_waiver_excuses_nothing():
    evidence = green()
    evidence.failed_scenarios = ["xss"]
    expired = [ActiveWaiver(2, "scenario", "xss", "lead", "false positive", NOW - timedelta(seconds=1))]
    result = gates.evaluate(DEFAULT, evidence, expired, now=NOW)
    assert result["passed"] is False and result["waivers_used"] == []


def test_waivers_apply_again_to_a_frozen_evaluation():
    evidence = green()
    evidence.failed_scenarios = ["xss", "sqli"]
    frozen = gates.evaluate(DEFAULT, evidence, [], now=NOW)
    one = [ActiveWaiver(2, "scenario", "xss", "lead", "ok", NOW + timedelta(days=1))]
    assert gates.apply_waivers(frozen, one, now=NOW)["passed"] is False  # sqli still fails
    both = one + [ActiveWaiver(3, "scenario", "sqli", "lead", "ok", NOW + timedelta(days=1))]
    again = gates.apply_waivers(frozen, both, now=NOW)
    assert again["passed"] is True
    assert gates.apply_waivers(again, [], now=NOW)["passed"] is False  # waived before, judged again without them
    assert frozen["passed"] is False  # the frozen one is left as it was
    assert gates.failures(frozen) == ["failed_scenarios: 2, failed: xss, sqli"]
