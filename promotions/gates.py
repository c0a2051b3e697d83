"""Quality gate evaluation: pure functions over the evidence of a run (no database).

`evaluate(conditions, evidence, waivers, now)` gives each condition's actual value, threshold and verdict, like a
SonarQube quality gate, as plain dicts that are frozen into the promotion (`Promotion.gate_snapshot`) and shown.
No evidence is not green: a condition whose report is missing fails, saying which report is missing.

A waiver excuses one vulnerability id or one scenario until it expires. A condition that fails only because of
waived items passes as "waived", naming the waivers used. `apply_waivers(snapshot, waivers, now)` redoes that on
a frozen evaluation, with the waivers in force at a later moment (the decision).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from datetime import datetime

PASSED, FAILED, WAIVED = "passed", "failed", "waived"
VULNERABILITY, SCENARIO = "vulnerability", "scenario"

COMPARATORS = {
    "lt": (operator.lt, "<"),
    "lte": (operator.le, "≤"),
    "gt": (operator.gt, ">"),
    "gte": (operator.ge, "≥"),
    "eq": (operator.eq, "="),
}

# What a new project's gate holds: (metric, comparator, threshold, relative to production).
DEFAULT_GATE = [
    ("new_critical_vulnerabilities", "lte", 0.0, False),
    ("failed_scenarios", "lte", 0.0, False),
    ("p95_ms", "lte", 20.0, True),
    ("error_percent", "lte", 1.0, False),
    ("staging_availability", "eq", 1.0, False),
]

NO_TRIVY = "no Trivy report in this run"
NO_GAUNTLT = "no Gauntlt report in this run"
NO_JMETER = "no JMeter report in this run"


@dataclass(frozen=True)
class Vulnerability:
    identifier: str
    severity: str  # CRITICAL, HIGH
    fix_available: bool
    in_production: bool | None  # None: nothing runs in production to compare with


@dataclass(frozen=True)
class LabelFigures:
    p95_ms: float | None
    error_percent: float | None


@dataclass
class Evidence:
    """What a run proved, read by promotions.selectors.evidence()."""

    has_trivy: bool = False
    trivy_problem: str = ""  # why there is no Trivy evidence, when a report exists but failed
    vulnerabilities: list[Vulnerability] = field(default_factory=list)  # HIGH and CRITICAL only
    secrets: list[str] = field(default_factory=list)
    has_gauntlt: bool = False
    failed_scenarios: list[str] = field(default_factory=list)
    has_jmeter: bool = False
    labels: dict[str, LabelFigures] = field(default_factory=dict)
    production_labels: dict[str, LabelFigures] | None = None  # None: production has no load test
    first_release: bool = False  # production runs nothing of the project yet: relative limits compare with nothing
    availability: tuple[bool, str] | None = None  # (passed, what was checked), None: never checked


@dataclass(frozen=True)
class Condition:
    metric: str
    comparator: str
    threshold: float
    relative_to_production: bool = False
    label: str = ""  # how the gate names the metric


@dataclass(frozen=True)
class ActiveWaiver:
    id: int
    kind: str  # vulnerability, scenario
    identifier: str
    owner: str
    reason: str
    expires_at: datetime


def number(value: float) -> str:
    return f"{value:,.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value):,}"


def compare(actual: float, condition: Condition, limit: float) -> bool:
    return COMPARATORS[condition.comparator][0](actual, limit)


def symbol(condition: Condition) -> str:
    return COMPARATORS[condition.comparator][1]


def row(condition: Condition, *, subject: str = "", actual: str, threshold: str, verdict: str, detail: str = "",
        items: list[str] | tuple = (), item_kind: str = "", count: float | None = None) -> dict:
    """One line of the evaluation. Countable conditions keep their failing `items` (and `count` limit data), so
    that waivers can be applied again later."""
    return {
        "metric": condition.metric, "name": condition.label or condition.metric, "subject": subject,
        "comparator": condition.comparator, "threshold_value": condition.threshold, "actual": actual,
        "threshold": threshold, "verdict": verdict, "detail": detail, "items": list(items), "item_kind": item_kind,
        "waived_by": [], **({"count": count} if count is not None else {}),
    }


def counted(condition: Condition, items: list[str], *, item_kind: str, what: str) -> dict:
    """A condition on how many items there are (vulnerabilities, secrets, scenarios)."""
    passed = compare(len(items), condition, condition.threshold)
    shown = ", ".join(items[:10]) + (f" and {len(items) - 10} more" if len(items) > 10 else "")
    return row(condition, actual=str(len(items)), threshold=f"{symbol(condition)} {number(condition.threshold)}",
               verdict=PASSED if passed else FAILED, detail=f"{what}: {shown}" if items else "",
               items=items, item_kind=item_kind, count=len(items))


def vulnerability_ids(evidence: Evidence, *, severities: set[str], new_only: bool = False,
                      fixable_only: bool = False) -> list[str]:
    found = []
    for vulnerability in evidence.vulnerabilities:
        if vulnerability.severity not in severities:
            continue
        if new_only and vulnerability.in_production:
            continue
        if fixable_only and not vulnerability.fix_available:
            continue
        if vulnerability.identifier not in found:
            found.append(vulnerability.identifier)
    return found


VULNERABILITY_METRICS = {
    # metric: (severities, new against production, fix available only, words)
    "critical_vulnerabilities": ({"CRITICAL"}, False, False, "critical"),
    "high_vulnerabilities": ({"HIGH"}, False, False, "high"),
    "new_critical_vulnerabilities": ({"CRITICAL"}, True, False, "critical, not in production"),
    "new_high_vulnerabilities": ({"HIGH"}, True, False, "high, not in production"),
    "fixable_vulnerabilities": ({"CRITICAL", "HIGH"}, False, True, "high or critical with a fix"),
}


def evaluate_condition(condition: Condition, evidence: Evidence) -> list[dict]:
    metric = condition.metric
    limit = f"{symbol(condition)} {number(condition.threshold)}"
    if metric in VULNERABILITY_METRICS or metric == "secrets":
        if not evidence.has_trivy:
            return [row(condition, actual="no evidence", threshold=limit, verdict=FAILED,
                        detail=evidence.trivy_problem or NO_TRIVY)]
        if metric == "secrets":
            return [counted(condition, evidence.secrets, item_kind="", what="secrets")]
        severities, new_only, fixable_only, words = VULNERABILITY_METRICS[metric]
        new_only = new_only or condition.relative_to_production
        ids = vulnerability_ids(evidence, severities=severities, new_only=new_only, fixable_only=fixable_only)
        return [counted(condition, ids, item_kind=VULNERABILITY, what=words)]
    if metric == "failed_scenarios":
        if not evidence.has_gauntlt:
            return [row(condition, actual="no evidence", threshold=limit, verdict=FAILED, detail=NO_GAUNTLT)]
        return [counted(condition, evidence.failed_scenarios, item_kind=SCENARIO, what="failed")]
    if metric in ("p95_ms", "error_percent"):
        return per_label(condition, evidence)
    if metric == "staging_availability":
        if evidence.availability is None:
            return [row(condition, actual="no evidence", threshold="passed", verdict=FAILED,
                        detail="no availability check of staging for this run")]
        ok, what = evidence.availability
        return [row(condition, actual="passed" if ok else "failed", threshold="passed",
                    verdict=PASSED if ok else FAILED, detail=what)]
    return [row(condition, actual="?", threshold=limit, verdict=FAILED, detail=f"unknown metric {metric}")]


def per_label(condition: Condition, evidence: Evidence) -> list[dict]:
    """p95 or error % of every label of the load test, against an absolute limit or production's figure + N %."""
    metric, unit = condition.metric, (" ms" if condition.metric == "p95_ms" else " %")
    if not evidence.has_jmeter:
        return [row(condition, actual="no evidence", threshold=f"{symbol(condition)} {number(condition.threshold)}",
                    verdict=FAILED, detail=NO_JMETER)]
    if condition.relative_to_production and evidence.production_labels is None and not evidence.first_release:
        return [row(condition, actual="no evidence", threshold=f"production + {number(condition.threshold)} %",
                    verdict=FAILED, detail="production has no load test to compare with")]
    rows = []
    for label, figures in sorted(evidence.labels.items()):
        value = getattr(figures, metric)
        if value is None:
            rows.append(row(condition, subject=label, actual="n/a", threshold="", verdict=FAILED,
                            detail="the load test could not measure it"))
            continue
        if condition.relative_to_production:
            base = (evidence.production_labels or {}).get(label)
            base_value = getattr(base, metric) if base else None
            if base_value is None:
                nothing = ("nothing runs in production yet" if evidence.first_release
                           else "not in production's load test")
                rows.append(row(condition, subject=label, actual=number(value) + unit, threshold="not compared",
                                verdict=PASSED, detail=f"{nothing}: nothing to compare with"))
                continue
            limit = base_value * (1 + condition.threshold / 100)
            threshold = (f"{symbol(condition)} {number(round(limit, 2))}{unit} (production {number(base_value)}"
                         f"{unit} + {number(condition.threshold)} %)")
        else:
            limit, threshold = condition.threshold, f"{symbol(condition)} {number(condition.threshold)}{unit}"
        passed = compare(value, condition, limit)
        rows.append(row(condition, subject=label, actual=number(round(value, 2)) + unit, threshold=threshold,
                        verdict=PASSED if passed else FAILED))
    if not rows:
        rows.append(row(condition, actual="no evidence", threshold="", verdict=FAILED,
                        detail="the load test has no labels"))
    return rows


def evaluate(conditions: list[Condition], evidence: Evidence, waivers: list[ActiveWaiver], *, now: datetime) -> dict:
    """The gate's verdict on the evidence: {passed, conditions: [rows], waivers_used: [...]}. A gate with no
    condition passes (nothing is asked)."""
    rows = [line for condition in conditions for line in evaluate_condition(condition, evidence)]
    return apply_waivers({"conditions": rows, "evaluated_at": now.isoformat()}, waivers, now=now)


def apply_waivers(snapshot: dict, waivers: list[ActiveWaiver], *, now: datetime) -> dict:
    """The evaluation again with the waivers in force at `now`: a failing count that the unwaived items satisfy
    becomes "waived". Returns a new dict; the snapshot is left as it was."""
    active = {(w.kind, w.identifier): w for w in waivers if w.expires_at > now}
    used: dict[int, ActiveWaiver] = {}
    rows = []
    for original in snapshot.get("conditions", []):
        line = {**original, "waived_by": []}
        if line["verdict"] == WAIVED:
            line["verdict"] = FAILED  # waived against older waivers: judged again
        if line["verdict"] == FAILED and line.get("item_kind") and "count" in line:
            covering = [active[(line["item_kind"], item)] for item in line["items"]
                        if (line["item_kind"], item) in active]
            left = len(line["items"]) - len(covering)
            condition = Condition(line["metric"], line["comparator"], line["threshold_value"])
            if covering and compare(left, condition, condition.threshold):
                line["verdict"] = WAIVED
                line["waived_by"] = [waiver.id for waiver in covering]
                used.update({waiver.id: waiver for waiver in covering})
        rows.append(line)
    return {
        **snapshot,
        "conditions": rows,
        "passed": all(line["verdict"] != FAILED for line in rows),
        "waivers_used": [
            {"id": w.id, "kind": w.kind, "identifier": w.identifier, "owner": w.owner, "reason": w.reason,
             "expires_at": w.expires_at.isoformat()}
            for w in used.values()
        ],
    }


def failures(snapshot: dict) -> list[str]:
    """The failing conditions in words, for a refusal."""
    return [
        f"{line['name']}{' (' + line['subject'] + ')' if line['subject'] else ''}: {line['actual']}"
        f"{', ' + line['detail'] if line['detail'] else ''}"
        for line in snapshot.get("conditions", []) if line["verdict"] == FAILED
    ]
