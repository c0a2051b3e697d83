"""Gauntlt results: the cucumber JSON report (`--format json`). Pure: no Django.

Gauntlt pins cucumber 1.3.20; modern cucumber-ruby writes the same format with small differences. Both are handled:

- A Background is emitted as its own element before every scenario: its steps (and hooks) are folded into the
  scenario that follows it and the background is never reported as a scenario.
- cucumber 1.3 without `--expand` writes a `scenario_outline` whose steps carry no result, plus `examples[].rows`.
  Each example row (the first row of a table is its header) is reported as its own scenario with status "unknown".
  Why one scenario per row rather than one per outline: cucumber runs (and counts in its own summary) one test per
  row, and the rows get the same names as the `--expand` output gives them, so a project switching on `--expand`
  keeps the same scenario identities. Why "unknown": the results of the rows are simply not in the file.
  A background before such an outline is folded into every row (it has no placeholders: the same setup for all).
- With `--expand` (and in modern cucumber-ruby) each row is a normal `scenario` element with results. Its name is
  the outline's name for every row, so " (example at line N)" (the row's line) is added to tell the rows apart.
- Scenario tags are the feature tags followed by the scenario's own (modern cucumber copies them, 1.3 does not).
- A missing result is never a pass: such a step is "unknown", and so is its scenario (unless something failed).
- A failed Before/After hook fails its scenario (modern cucumber then reports the steps as merely "skipped").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

from scanners.parsers.common import ReportParseError, Source, json_type_name, read_all, without_nul
from scanners.parsers.masking import mask_tokens

STEP_STATUSES = ("passed", "failed", "skipped", "undefined", "pending")
MAX_MESSAGE = 10_000  # characters kept of an error message (stack traces can be huge)
OUTLINE_KEYWORDS = ("scenario outline", "scenario template")
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
UTF8_BOM = b"\xef\xbb\xbf"
# Raw control bytes never appear in a JSON, CSV or XML report (JSON escapes them); tab, LF, CR, FF aside.
CONTROL_BYTES = bytes([*range(0, 9), 11, *range(14, 32), 127])

# First key of the first object of a top-level array, and keys only a cucumber feature has.
_FIRST_KEY = re.compile(rb'\A\s*\[\s*\{\s*"([A-Za-z_]+)"\s*:')
_FEATURE_KEYS = {b"uri", b"id", b"keyword", b"name", b"line", b"description", b"tags", b"elements", b"comments"}
_CUCUMBER_MARKER = re.compile(rb'"(?:uri|elements|keyword)"\s*:')


@dataclass(frozen=True, slots=True)
class StepResult:
    keyword: str  # "Given", "When", "Then", "And", ... (stripped)
    name: str
    line: int | None
    status: str  # passed failed skipped undefined pending unknown
    duration_ms: float | None
    error_message: str


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    feature: str  # feature name, or its uri when the name is empty
    name: str
    line: int | None
    status: str  # passed failed skipped undefined pending unknown
    duration_ms: float | None  # sum of the known step durations, None if none is known
    failing_step: str  # "Then the output should contain ..." of the first failed (else undefined/pending) step
    failure_message: str  # its error message, at most MAX_MESSAGE characters
    steps: list[StepResult]  # background steps first, then the scenario's own
    tags: list[str]


@dataclass(frozen=True, slots=True)
class GauntltReport:
    features: list[str]
    scenarios: list[ScenarioResult]

    def counts(self) -> dict[str, int]:
        passed = sum(1 for scenario in self.scenarios if scenario.status == "passed")
        failed = sum(1 for scenario in self.scenarios if scenario.status == "failed")
        total = len(self.scenarios)
        return {"scenarios": total, "passed": passed, "failed": failed, "other": total - passed - failed}


@dataclass(frozen=True, slots=True)
class _Outcome:
    """One thing cucumber ran, in order: a step or a hook. Hooks only matter when they failed."""

    label: str  # "Given a passing step" or "Before hook (features/support/env.rb:3)"
    status: str
    message: str
    is_step: bool


@dataclass(slots=True)
class _Part:
    """What a background or a scenario element contributes to a reported scenario."""

    steps: list[StepResult]
    outcomes: list[_Outcome]


def looks_like_cucumber(head: bytes) -> bool:
    """Cheap sniff of the first KB of a file: an array whose first object has cucumber feature keys."""
    head = head.removeprefix(UTF8_BOM)
    first = _FIRST_KEY.match(head)
    # The first key tells a feature from a legacy Trivy result ({"Target": ...}); the markers from any other array.
    return first is not None and first.group(1) in _FEATURE_KEYS and _CUCUMBER_MARKER.search(head) is not None


def parse_gauntlt(source: Source, *, max_bytes: int | None = None) -> GauntltReport:
    """Parse a cucumber JSON report; raises ReportParseError (with a JSON path) on anything else."""
    document = _load_json(read_all(source, max_bytes=max_bytes))
    _reject_other_formats(document)
    features: list[str] = []
    scenarios: list[ScenarioResult] = []
    for index, feature in enumerate(document):
        name = _parse_feature(feature, f"[{index}]", scenarios)
        features.append(name)
    return GauntltReport(features=features, scenarios=scenarios)


# --- reading the file -------------------------------------------------------------------------------------------


def _load_json(data: bytes):
    if data.startswith(UTF16_BOMS):
        raise ReportParseError("the file is UTF-16 encoded (PowerShell redirection does that); save it as UTF-8")
    data = data.removeprefix(UTF8_BOM)
    if not data.strip():
        raise ReportParseError("the file is empty")
    if looks_binary(data[:8192]):
        raise ReportParseError("the file is binary data, not a cucumber JSON report")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ReportParseError(f"the file is not valid UTF-8 (bad byte at offset {error.start})") from None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as error:
        start = text.lstrip()[:1]
        if start == "<":
            hint = " (it looks like XML, e.g. a JMeter results file)"
        elif start not in ("[", "{", '"') and "," in text.lstrip().split("\n", 1)[0]:
            hint = " (it looks like CSV, e.g. a JMeter results file)"
        else:
            hint = ""
        message = f"not valid JSON at line {error.lineno} column {error.colno}: {error.msg}{hint}"
        raise ReportParseError(message, f"line {error.lineno}") from None


def looks_binary(head: bytes) -> bool:
    if b"\x00" in head:
        return True
    controls = len(head) - len(head.translate(None, CONTROL_BYTES))
    return controls * 20 > len(head)


def _reject_other_formats(document) -> None:
    """Say what the file is when it is a well-known other report, not only that it is not cucumber."""
    if document is None:
        raise ReportParseError(
            "this looks like a Trivy report (the literal null of a clean legacy scan), not a cucumber JSON report"
        )
    if isinstance(document, dict):
        if any(key in document for key in ("SchemaVersion", "ArtifactName", "ClusterName", "Results")):
            raise ReportParseError("this looks like a Trivy report, not a cucumber JSON report")
        if "runs" in document and "version" in document:
            raise ReportParseError(
                "this looks like a SARIF report (e.g. Trivy --format sarif), not a cucumber JSON report"
            )
    if not isinstance(document, list):
        raise ReportParseError(
            f"not a cucumber JSON report: expected an array of features, got {json_type_name(document)}"
        )


# --- features, elements, steps ----------------------------------------------------------------------------------


def _parse_feature(feature, path: str, scenarios: list[ScenarioResult]) -> str:
    if not isinstance(feature, dict):
        raise ReportParseError(f"a feature must be an object, got {json_type_name(feature)}", path)
    if "Target" in feature and "elements" not in feature and "uri" not in feature:
        raise ReportParseError(
            "this looks like a Trivy report (legacy: results with a Target), not a cucumber one", path
        )
    if not any(key in feature for key in ("uri", "keyword", "name", "elements")):
        raise ReportParseError("not a cucumber feature: it has none of uri, keyword, name, elements", path)
    uri = _text(feature, "uri", path)
    feature_name = _text(feature, "name", path).strip() or uri
    feature_tags = _tags(feature, path)

    background: _Part | None = None
    for index, element in enumerate(_array(feature, "elements", path)):
        element_path = f"{path}.elements[{index}]"
        if not isinstance(element, dict):
            raise ReportParseError(f"an element must be an object, got {json_type_name(element)}", element_path)
        kind = _element_type(element, element_path)
        if kind == "background":
            # Emitted before every scenario: keep it for the next scenario (two in a row both apply).
            part = _element_part(element, element_path, with_results=True)
            if background is None:
                background = part
            else:
                background.steps.extend(part.steps)
                background.outcomes.extend(part.outcomes)
            continue
        before = background or _Part([], [])
        background = None

        name = _text(element, "name", element_path)
        line = _line(element, element_path)
        tags = _merge_tags(feature_tags, _tags(element, element_path))
        if kind == "scenario":
            if _is_outline_row(element, element_path):
                name = _row_name(name, line)
            own = _element_part(element, element_path, with_results=True)
            scenarios.append(_scenario(feature_name, name, line, tags, before, own))
            continue

        # A scenario_outline that was not expanded: the template steps hold no result of any row.
        own = _element_part(element, element_path, with_results=False)
        for table_index, table in enumerate(_array(element, "examples", element_path)):
            table_path = f"{element_path}.examples[{table_index}]"
            if not isinstance(table, dict):
                raise ReportParseError(f"an examples table must be an object, got {json_type_name(table)}", table_path)
            table_tags = _merge_tags(tags, _tags(table, table_path))
            rows = _array(table, "rows", table_path)
            for row_index, row in enumerate(rows[1:], start=1):  # rows[0] is the header
                row_path = f"{table_path}.rows[{row_index}]"
                if not isinstance(row, dict):
                    raise ReportParseError(f"an examples row must be an object, got {json_type_name(row)}", row_path)
                row_line = _line(row, row_path)
                scenarios.append(_scenario(feature_name, _row_name(name, row_line), row_line, table_tags, before, own))
    # A background with no scenario after it ran nothing that cucumber reports as a test: it is dropped.
    return feature_name


def _element_type(element: dict, path: str) -> str:
    kind = element.get("type")
    if kind is None:
        # Very old writers leave the type out: infer it from the keyword and the examples.
        if _text(element, "keyword", path).strip().lower() == "background":
            return "background"
        return "scenario_outline" if "examples" in element else "scenario"
    if kind not in ("background", "scenario", "scenario_outline"):
        raise ReportParseError(
            f"unknown element type {kind!r}: expected background, scenario or scenario_outline", f"{path}.type"
        )
    return kind


def _is_outline_row(element: dict, path: str) -> bool:
    """An expanded example row: keyword "Scenario Outline" (English), or an id feature;outline;examples;row."""
    keyword = _text(element, "keyword", path).strip().lower()
    return keyword in OUTLINE_KEYWORDS or _text(element, "id", path).count(";") >= 3


def _row_name(name: str, line: int | None) -> str:
    if line is None:
        return name
    return f"{name} (example at line {line})".strip()


def _element_part(element: dict, path: str, *, with_results: bool) -> _Part:
    part = _Part([], [])
    part.outcomes.extend(_hooks(element, "before", path, "Before hook"))
    for index, step in enumerate(_array(element, "steps", path)):
        step_path = f"{path}.steps[{index}]"
        result = _step(step, step_path, with_results=with_results)
        part.steps.append(result)
        part.outcomes.append(_Outcome(_step_label(result), result.status, result.error_message, is_step=True))
        part.outcomes.extend(_hooks(step, "after", step_path, "AfterStep hook"))
    part.outcomes.extend(_hooks(element, "after", path, "After hook"))
    return part


def _step(step, path: str, *, with_results: bool) -> StepResult:
    if not isinstance(step, dict):
        raise ReportParseError(f"a step must be an object, got {json_type_name(step)}", path)
    keyword = _text(step, "keyword", path).strip()
    name = _text(step, "name", path)
    line = _line(step, path)
    result = step.get("result") if with_results else None
    if result is None:
        # No result: not run or not known. Never a pass.
        return StepResult(keyword, name, line, "unknown", None, "")
    status, duration_ms, message = _result(result, f"{path}.result")
    return StepResult(keyword, name, line, status, duration_ms, message)


def _result(result, path: str) -> tuple[str, float | None, str]:
    if not isinstance(result, dict):
        raise ReportParseError(f"a result must be an object, got {json_type_name(result)}", path)
    status = _text(result, "status", path).strip().lower()
    if status not in STEP_STATUSES:
        status = "unknown"
    message = _text(result, "error_message", path)[:MAX_MESSAGE]
    return status, _duration_ms(result, path), message


def _hooks(owner: dict, key: str, path: str, label: str) -> list[_Outcome]:
    outcomes = []
    for index, hook in enumerate(_array(owner, key, path)):
        hook_path = f"{path}.{key}[{index}]"
        if not isinstance(hook, dict):
            raise ReportParseError(f"a hook must be an object, got {json_type_name(hook)}", hook_path)
        if hook.get("result") is None:
            continue
        status, _duration, message = _result(hook["result"], f"{hook_path}.result")
        match = hook.get("match")
        location = match.get("location") if isinstance(match, dict) else None
        text = f"{label} ({without_nul(location)})" if isinstance(location, str) and location else label
        outcomes.append(_Outcome(text, status, message, is_step=False))
    return outcomes


def _scenario(feature: str, name: str, line: int | None, tags: list[str], before: _Part, own: _Part) -> ScenarioResult:
    steps = before.steps + own.steps
    outcomes = before.outcomes + own.outcomes
    status = _scenario_status(steps, outcomes)
    failing = next((o for o in outcomes if o.status == "failed"), None)
    if failing is None:
        failing = next((o for o in outcomes if o.is_step and o.status in ("undefined", "pending")), None)
    durations = [step.duration_ms for step in steps if step.duration_ms is not None]
    return ScenarioResult(
        feature=feature,
        name=name,
        line=line,
        status=status,
        duration_ms=sum(durations) if durations else None,
        failing_step=failing.label if failing else "",
        failure_message=failing.message if failing else "",
        steps=steps,
        tags=tags,
    )


def _scenario_status(steps: list[StepResult], outcomes: list[_Outcome]) -> str:
    statuses = {step.status for step in steps}
    # A skipped step after a failure (or after a failed Before hook) still makes the scenario failed.
    if "failed" in statuses or any(o.status == "failed" for o in outcomes):
        return "failed"
    if not steps or "unknown" in statuses:
        return "unknown"
    for status in ("undefined", "pending", "skipped"):
        if status in statuses:
            return status
    return "passed"  # at least one step, and every step passed


def _step_label(step: StepResult) -> str:
    return f"{step.keyword} {step.name}".strip()


# --- typed field access (every error names where it is) ----------------------------------------------------------


def _text(item: dict, key: str, path: str) -> str:
    value = item.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ReportParseError(f"{key} must be a string, got {json_type_name(value)}", f"{path}.{key}")
    return mask_tokens(without_nul(value))  # an attack's output may quote a token it found


def _array(item: dict, key: str, path: str) -> list:
    value = item.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ReportParseError(f"{key} must be an array, got {json_type_name(value)}", f"{path}.{key}")
    return value


def _line(item: dict, path: str) -> int | None:
    value = item.get("line")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ReportParseError(f"line must be a number, got {json_type_name(value)}", f"{path}.line")
    return int(value)


def _duration_ms(result: dict, path: str) -> float | None:
    """Cucumber writes nanoseconds, as an int or a float; absent when not measured."""
    value = result.get("duration")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ReportParseError(f"duration must be a number, got {json_type_name(value)}", f"{path}.duration")
    if value < 0:
        return None  # a clock glitch, not a measurement
    return value / 1_000_000


def _tags(item: dict, path: str) -> list[str]:
    names = []
    for index, tag in enumerate(_array(item, "tags", path)):
        if isinstance(tag, str):
            names.append(without_nul(tag))
        elif isinstance(tag, dict) and isinstance(tag.get("name"), str):
            names.append(without_nul(tag["name"]))
        else:
            raise ReportParseError("a tag must be an object with a name", f"{path}.tags[{index}]")
    return names


def _merge_tags(first: list[str], second: list[str]) -> list[str]:
    """Union keeping the first occurrence's order: modern cucumber already repeats the feature tags."""
    return list(dict.fromkeys([*first, *second]))
