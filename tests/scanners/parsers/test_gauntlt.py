"""Gauntlt (cucumber JSON) parser: the shared real-world samples, then small inline samples, then bad input."""

import io

import orjson
import pytest

from scanners.parsers.common import ReportParseError
from scanners.parsers.gauntlt import (
    MAX_MESSAGE,
    GauntltReport,
    ScenarioResult,
    StepResult,
    looks_like_cucumber,
    parse_gauntlt,
)

# --- builders for inline samples -----------------------------------------------------------------------------------


def step(name, status="passed", keyword="Given ", line=3, duration=1_500_000, error=None):
    item = {"keyword": keyword, "name": name, "line": line, "match": {"location": "steps.rb:1"}}
    if status is not None:
        item["result"] = {"status": status}
        if duration is not None:
            item["result"]["duration"] = duration
        if error is not None:
            item["result"]["error_message"] = error
    return item


def element(name, steps, kind="scenario", keyword="Scenario", line=5, tags=(), **extra):
    item = {
        "id": f"feature;{name.lower().replace(' ', '-')}",
        "keyword": keyword,
        "name": name,
        "line": line,
        "description": "",
        "type": kind,
        "steps": steps,
    }
    if tags:
        item["tags"] = [{"name": tag, "line": line - 1} for tag in tags]
    item.update(extra)
    return item


def background(steps):
    return element("", steps, kind="background", keyword="Background", line=3)


def feature(elements, name="Attack", tags=(), uri="attacks/x.attack"):
    item = {"uri": uri, "id": "attack", "keyword": "Feature", "name": name, "line": 2, "description": ""}
    if tags:
        item["tags"] = [{"name": tag, "line": 1} for tag in tags]
    item["elements"] = elements
    return item


def parse(*features) -> GauntltReport:
    return parse_gauntlt(orjson.dumps(list(features)))


def parse_error(data: bytes, **kwargs) -> ReportParseError:
    with pytest.raises(ReportParseError) as caught:
        parse_gauntlt(data, **kwargs)
    return caught.value


# --- shared real-world samples (numbers checked by reading the files) ------------------------------------------------


def test_it_reads_cucumber_1_3_20_pass_fail(shared_fixture):
    report = parse_gauntlt(shared_fixture("gauntlt/cucumber-1.3.20-pass-fail.json"))

    assert report.features == ["One passing scenario, one failing scenario"]
    assert report.counts() == {"scenarios": 2, "passed": 1, "failed": 1, "other": 0}
    passing, failing = report.scenarios
    assert (passing.name, passing.line, passing.status, passing.failing_step) == ("Passing", 5, "passed", "")
    assert passing.duration_ms == pytest.approx(1e-6)  # "duration": 1 nanosecond
    assert passing.steps == [StepResult("Given", "a passing step", 6, "passed", 1e-6, "")]
    # cucumber 1.3 does not copy feature tags into scenarios: the parser adds @a.
    assert passing.tags == ["@a", "@b"]
    assert failing.status == "failed"
    assert failing.failing_step == "Given a failing step"
    assert failing.failure_message.startswith(" (RuntimeError)\n./features/step_definitions/steps.rb:6")
    assert failing.tags == ["@a", "@c"]


def test_it_reads_cucumber_1_3_20_docstring_failure(shared_fixture):
    report = parse_gauntlt(shared_fixture("gauntlt/cucumber-1.3.20-docstring-failed.json"))

    assert report.features == ["A DocString feature"]
    assert report.counts() == {"scenarios": 1, "passed": 0, "failed": 1, "other": 0}
    (scenario,) = report.scenarios
    assert (scenario.feature, scenario.name, scenario.line) == ("A DocString feature", "", 3)
    assert scenario.failing_step == "Then I should fail with"
    assert "a string (RuntimeError)" in scenario.failure_message
    assert scenario.duration_ms == pytest.approx(1e-6)
    assert scenario.tags == []


def test_it_reads_cucumber_1_3_20_expanded_outline(shared_fixture):
    report = parse_gauntlt(shared_fixture("gauntlt/cucumber-1.3.20-outline-expanded.json"))

    assert report.features == ["An outline feature"]
    assert report.counts() == {"scenarios": 3, "passed": 2, "failed": 1, "other": 0}
    assert [(s.name, s.line, s.status) for s in report.scenarios] == [
        ("outline (example at line 8)", 8, "passed"),
        ("outline (example at line 9)", 9, "failed"),
        ("outline (example at line 13)", 13, "passed"),
    ]
    failed = report.scenarios[1]
    assert failed.failing_step == "Given a failing step"
    assert "features/outline.feature:4:in `Given a <type> step'" in failed.failure_message
    assert report.scenarios[2].duration_ms == pytest.approx(1e-6)


def test_it_reads_modern_cucumber_ruby_pass_fail(shared_fixture):
    report = parse_gauntlt(shared_fixture("gauntlt/cucumber-ruby-modern-pass-fail.json"))

    assert report.features == ["One passing scenario, one failing scenario"]
    assert report.counts() == {"scenarios": 2, "passed": 1, "failed": 1, "other": 0}
    passing, failing = report.scenarios
    # Modern cucumber already copies @a into each scenario: not repeated.
    assert passing.tags == ["@a", "@b"]
    assert failing.tags == ["@a", "@c"]
    assert failing.failing_step == "Given this step fails"
    assert "in `/^this step fails$/'" in failing.failure_message
    assert passing.duration_ms == pytest.approx(1e-6)


# --- inline samples --------------------------------------------------------------------------------------------------


def nmap_like_report():
    """As cucumber writes the nmap example: the Background is repeated before each scenario."""
    bg = [
        step('"nmap" is installed', duration=2_000_000),
        step("the following profile:", keyword="And ", duration=None),
    ]
    return parse(
        feature(
            [
                background(bg),
                element("Fast scan", [step('I launch a "nmap-fast" attack', keyword="When ", duration=3_000_000)]),
                background(bg),
                element(
                    "No unexpected ports",
                    [
                        step('I launch an "nmap" attack with:', keyword="When ", duration=500_000),
                        step(
                            "the output should not contain:",
                            "failed",
                            keyword="Then ",
                            line=30,
                            duration=250_000,
                            error="expected output not to contain 22/tcp (RSpec::Expectations::ExpectationNotMetError)",
                        ),
                    ],
                    line=26,
                ),
            ],
            name="nmap attacks",
            tags=["@slow"],
        )
    )


def test_it_folds_the_background_into_the_scenario_that_follows():
    report = nmap_like_report()

    assert [s.name for s in report.scenarios] == ["Fast scan", "No unexpected ports"]
    fast, ports = report.scenarios
    assert [(s.keyword, s.name) for s in fast.steps] == [
        ("Given", '"nmap" is installed'),
        ("And", "the following profile:"),
        ("When", 'I launch a "nmap-fast" attack'),
    ]
    assert fast.status == "passed"
    # 2 ms + (unknown) + 3 ms: a missing duration is left out of the sum.
    assert fast.duration_ms == pytest.approx(5.0)
    assert ports.status == "failed"
    assert ports.failing_step == "Then the output should not contain:"
    assert ports.failure_message.startswith("expected output not to contain 22/tcp")
    assert ports.duration_ms == pytest.approx(2.75)
    assert ports.tags == ["@slow"]
    assert report.counts() == {"scenarios": 2, "passed": 1, "failed": 1, "other": 0}


def test_it_fails_the_scenario_when_its_background_failed():
    report = parse(
        feature(
            [
                background([step('"nmap" is installed', "failed", error="nmap not found")]),
                element("Fast scan", [step("I launch an attack", "skipped", keyword="When ")]),
            ]
        )
    )

    (scenario,) = report.scenarios
    assert scenario.status == "failed"
    assert scenario.failing_step == 'Given "nmap" is installed'
    assert scenario.failure_message == "nmap not found"


def curl_outline(expanded_background=True):
    """The curl verbs example without --expand: the template steps carry no result."""
    template = [
        step('I launch a "curl" attack with:', status=None, keyword="When ", line=11),
        step('the output should contain "<response>"', status=None, keyword="Then ", line=15),
    ]
    rows = [{"cells": ["method", "response"], "line": 17, "id": "f;verify;;1"}]
    rows += [
        {"cells": [verb, "Error 405"], "line": 18 + i, "id": f"f;verify;;{i + 2}"}
        for i, verb in enumerate(["delete", "patch", "trace", "track", "bogus"])
    ]
    examples = [{"keyword": "Examples", "name": "", "line": 16, "description": "", "id": "f;verify;", "rows": rows}]
    outline = element(
        "Verify server responds correctly",
        template,
        kind="scenario_outline",
        keyword="Scenario Outline",
        line=10,
        examples=examples,
    )
    elements = [background([step('"curl" is installed')]), outline] if expanded_background else [outline]
    return parse(feature(elements, name="Evaluate responses to various HTTP methods.", tags=["@slow"]))


def test_it_reports_each_row_of_an_outline_that_was_not_expanded_as_unknown():
    report = curl_outline()

    assert report.counts() == {"scenarios": 5, "passed": 0, "failed": 0, "other": 5}
    assert [s.name for s in report.scenarios] == [
        f"Verify server responds correctly (example at line {line})" for line in range(18, 23)
    ]
    assert [s.line for s in report.scenarios] == [18, 19, 20, 21, 22]
    first = report.scenarios[0]
    assert first.status == "unknown"
    assert first.failing_step == ""
    assert [(s.name, s.status) for s in first.steps] == [
        ('"curl" is installed', "passed"),
        ('I launch a "curl" attack with:', "unknown"),
        ('the output should contain "<response>"', "unknown"),
    ]
    assert first.tags == ["@slow"]


def test_it_reports_expanded_outline_rows_as_normal_scenarios():
    rows = [
        element(
            "outline",
            [step(f"a {kind} step", kind, line=4, error="boom" if kind == "failed" else None)],
            keyword="Scenario Outline",
            line=line,
            id=f"an-outline-feature;outline;examples;{index}",
        )
        for index, (kind, line) in enumerate([("passed", 8), ("failed", 9), ("pending", 10)], start=2)
    ]
    report = parse(feature(rows))

    assert [(s.name, s.status) for s in report.scenarios] == [
        ("outline (example at line 8)", "passed"),
        ("outline (example at line 9)", "failed"),
        ("outline (example at line 10)", "pending"),
    ]
    assert report.scenarios[1].failure_message == "boom"
    assert report.scenarios[2].failing_step == "Given a pending step"
    assert report.counts() == {"scenarios": 3, "passed": 1, "failed": 1, "other": 1}


def test_it_merges_feature_and_scenario_tags_without_duplicates():
    modern = element("Modern", [step("x")], tags=["@a", "@b"])  # modern cucumber repeats the feature tag
    old = element("Old", [step("x")], tags=["@b"])
    report = parse(feature([modern, old], tags=["@a"]))

    assert [s.tags for s in report.scenarios] == [["@a", "@b"], ["@a", "@b"]]


def test_it_never_reports_a_missing_result_as_a_pass():
    report = parse(
        feature(
            [
                element("No result", [step("ran"), step("never reported", status=None)]),
                element("Odd status", [step("ran"), step("flaky one", status="flaky")]),
                element("No steps", []),
                element("Empty result", [step("x", status="")]),
            ]
        )
    )

    assert [s.status for s in report.scenarios] == ["unknown", "unknown", "unknown", "unknown"]
    no_result = report.scenarios[0]
    assert no_result.steps[1].status == "unknown"
    assert no_result.steps[1].duration_ms is None
    assert no_result.duration_ms == pytest.approx(1.5)
    assert report.scenarios[2].duration_ms is None
    assert report.counts() == {"scenarios": 4, "passed": 0, "failed": 0, "other": 4}


def test_it_reports_undefined_pending_and_skipped_scenarios():
    report = parse(
        feature(
            [
                element(
                    "Undefined", [step("a"), step("not written", "undefined", keyword="When "), step("c", "skipped")]
                ),
                element("Pending", [step("a"), step("todo", "pending", keyword="Then ", error="TODO")]),
                element("Skipped", [step("a", "skipped"), step("b", "skipped")]),
                element("Undefined beats pending", [step("p", "pending"), step("u", "undefined")]),
            ]
        )
    )

    undefined, pending, skipped, both = report.scenarios
    assert (undefined.status, undefined.failing_step, undefined.failure_message) == (
        "undefined",
        "When not written",
        "",
    )
    assert (pending.status, pending.failing_step, pending.failure_message) == ("pending", "Then todo", "TODO")
    assert (skipped.status, skipped.failing_step) == ("skipped", "")
    # The failing step is the first undefined or pending one, in order; the status follows the precedence.
    assert (both.status, both.failing_step) == ("undefined", "Given p")
    assert report.counts() == {"scenarios": 4, "passed": 0, "failed": 0, "other": 4}


def test_it_keeps_a_scenario_failed_when_steps_after_the_failure_are_skipped():
    report = parse(
        feature([element("S", [step("a"), step("b", "failed", error="no"), step("c", "skipped"), step("d", None)])])
    )

    (scenario,) = report.scenarios
    assert scenario.status == "failed"
    assert scenario.failing_step == "Given b"


def test_it_fails_a_scenario_whose_before_hook_failed():
    hook = {"match": {"location": "features/support/env.rb:3"}, "result": {"status": "failed", "error_message": "db"}}
    passing_hook = {"match": {"location": "features/support/env.rb:9"}, "result": {"status": "passed"}}
    report = parse(
        feature(
            [
                element("Hooked", [step("a", "skipped")], before=[hook]),
                element("Fine", [step("a")], after=[passing_hook]),
            ]
        )
    )

    hooked, fine = report.scenarios
    assert hooked.status == "failed"
    assert hooked.failing_step == "Before hook (features/support/env.rb:3)"
    assert hooked.failure_message == "db"
    assert [s.name for s in hooked.steps] == ["a"]  # hooks are not steps
    assert fine.status == "passed"


def test_it_converts_nanoseconds_to_milliseconds_from_ints_and_floats():
    report = parse(feature([element("S", [step("a", duration=1_234_567), step("b", duration=2.5e6)])]))

    (scenario,) = report.scenarios
    assert [s.duration_ms for s in scenario.steps] == [pytest.approx(1.234567), pytest.approx(2.5)]
    assert scenario.duration_ms == pytest.approx(3.734567)


def test_it_truncates_long_failure_messages():
    report = parse(feature([element("S", [step("a", "failed", error="x" * 50_000)])]))

    assert len(report.scenarios[0].failure_message) == MAX_MESSAGE == 10_000


def test_it_names_a_feature_by_its_uri_when_the_name_is_empty():
    report = parse(feature([element("S", [step("a")])], name="", uri="attacks/sslyze.attack"), feature([], name="Two"))

    assert report.features == ["attacks/sslyze.attack", "Two"]
    assert report.scenarios[0].feature == "attacks/sslyze.attack"


def test_it_accepts_an_empty_report_and_features_without_elements():
    assert parse_gauntlt(b"[]") == GauntltReport(features=[], scenarios=[])
    bare = {"uri": "a.feature", "keyword": "Feature", "name": "Nothing yet", "line": 1}
    report = parse_gauntlt(orjson.dumps([bare]))
    assert report.features == ["Nothing yet"]
    assert report.counts() == {"scenarios": 0, "passed": 0, "failed": 0, "other": 0}


def test_it_ignores_doc_strings_rows_and_embeddings():
    item = step("the file should contain XML:", keyword="And ")
    item["rows"] = [{"cells": ["css"]}, {"cells": ["ports port"]}]
    item["doc_string"] = {"value": "password=hunter2", "line": 4, "content_type": ""}
    item["embeddings"] = [{"mime_type": "image/png", "data": "Zm9v"}]
    report = parse(feature([element("S", [item])]))

    assert report.scenarios[0].steps == [StepResult("And", "the file should contain XML:", 3, "passed", 1.5, "")]
    assert "hunter2" not in repr(report)


def test_it_infers_the_element_type_when_it_is_missing():
    bg = background([step("setup")])
    scenario = element("S", [step("a")])
    del bg["type"], scenario["type"]
    report = parse(feature([bg, scenario]))

    assert [(s.name, len(s.steps), s.status) for s in report.scenarios] == [("S", 2, "passed")]


def test_it_reads_bytes_paths_and_file_objects(tmp_path):
    data = orjson.dumps([feature([element("S", [step("a")])])])
    path = tmp_path / "gauntlt.json"
    path.write_bytes(data)

    reports = [parse_gauntlt(data), parse_gauntlt(path), parse_gauntlt(str(path)), parse_gauntlt(io.BytesIO(data))]

    assert all(r == reports[0] for r in reports)
    assert isinstance(reports[0].scenarios[0], ScenarioResult)


def test_it_accepts_a_utf8_byte_order_mark():
    report = parse_gauntlt(b"\xef\xbb\xbf" + orjson.dumps([feature([element("S", [step("a")])])]))

    assert report.counts()["passed"] == 1


# --- bad input ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"  \n\t "])
def test_it_rejects_an_empty_file(data):
    assert parse_error(data).message == "the file is empty"


def test_it_rejects_truncated_json_with_line_and_column():
    data = orjson.dumps([feature([element("S", [step("a")])])], option=orjson.OPT_INDENT_2)[:200]

    error = parse_error(data)

    lines = data.decode().count("\n") + 1
    assert error.message.startswith(f"not valid JSON at line {lines} column ")
    assert error.location == f"line {lines}"


def test_it_rejects_invalid_utf8():
    error = parse_error(b'[{"uri": "caf\xe9.feature", "elements": []}]')

    assert error.message == "the file is not valid UTF-8 (bad byte at offset 13)"


def test_it_rejects_binary_garbage():
    error = parse_error(bytes(range(256)) * 8)

    assert error.message == "the file is binary data, not a cucumber JSON report"


def test_it_rejects_utf16():
    error = parse_error("[]".encode("utf-16"))

    assert "UTF-16" in error.message


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'{"features": []}', "not a cucumber JSON report: expected an array of features, got an object"),
        (b'"report"', "not a cucumber JSON report: expected an array of features, got a string"),
        (b"42", "not a cucumber JSON report: expected an array of features, got a number"),
    ],
)
def test_it_rejects_a_top_level_that_is_not_an_array(data, expected):
    assert parse_error(data).message == expected


@pytest.mark.parametrize(
    "data",
    [
        b'{"SchemaVersion": 2, "ArtifactName": "alpine:3.10", "ArtifactType": "container_image", "Results": []}',
        b'[{"Target": "alpine:3.10 (alpine 3.10.2)", "Type": "alpine", "Vulnerabilities": null}]',
        b"null",
    ],
    ids=["schema-2", "legacy-array", "legacy-clean-null"],
)
def test_it_says_when_a_trivy_report_is_given_as_gauntlt(data):
    assert "looks like a Trivy report" in parse_error(data).message


def test_it_says_when_a_sarif_report_is_given_as_gauntlt():
    data = b'{"version": "2.1.0", "$schema": "https://json.schemastore.org/sarif-2.1.0.json", "runs": []}'

    assert "SARIF" in parse_error(data).message


@pytest.mark.parametrize(
    ("data", "hint"),
    [
        (b'<?xml version="1.0"?>\n<testResults version="1.2"></testResults>', "XML"),
        (b"timeStamp,elapsed,label\n1551783627191,351,JR-OK\n", "CSV"),
    ],
)
def test_it_hints_at_jmeter_files_given_as_gauntlt(data, hint):
    assert hint in parse_error(data).message


def bad_report(mutate):
    document = [
        feature(
            [
                background([step("setup")]),
                element("A", [step("a")]),
                element("B", [step("b1"), step("b2")]),
            ]
        )
    ]
    mutate(document)
    return orjson.dumps(document)


@pytest.mark.parametrize(
    ("mutate", "location", "message"),
    [
        (lambda d: d.__setitem__(0, "feature"), "[0]", "a feature must be an object, got a string"),
        (lambda d: d.append({"foo": 1}), "[1]", "not a cucumber feature"),
        (lambda d: d[0].__setitem__("elements", {}), "[0].elements", "elements must be an array, got an object"),
        (lambda d: d[0]["elements"].__setitem__(2, [1]), "[0].elements[2]", "an element must be an object"),
        (lambda d: d[0]["elements"][2]["steps"].__setitem__(1, None), "[0].elements[2].steps[1]", "a step must be"),
        (
            lambda d: d[0]["elements"][2]["steps"][1].__setitem__("result", "passed"),
            "[0].elements[2].steps[1].result",
            "a result must be an object, got a string",
        ),
        (
            lambda d: d[0]["elements"][2]["steps"][1]["result"].__setitem__("duration", "1s"),
            "[0].elements[2].steps[1].result.duration",
            "duration must be a number",
        ),
        (
            lambda d: d[0]["elements"][1].__setitem__("type", "rule"),
            "[0].elements[1].type",
            "unknown element type 'rule'",
        ),
        (lambda d: d[0]["elements"][1].__setitem__("name", 7), "[0].elements[1].name", "name must be a string"),
        (lambda d: d[0].__setitem__("tags", [3]), "[0].tags[0]", "a tag must be an object with a name"),
    ],
    ids=[
        "feature-not-object",
        "feature-without-keys",
        "elements-not-array",
        "element-not-object",
        "step-not-object",
        "result-not-object",
        "duration-not-number",
        "unknown-element-type",
        "name-not-string",
        "tag-not-object",
    ],
)
def test_it_names_the_json_path_of_a_malformed_part(mutate, location, message):
    error = parse_error(bad_report(mutate))

    assert error.location == location
    assert message in error.message
    assert str(error).startswith(f"{location}: ")


def test_it_refuses_a_file_over_max_bytes():
    data = orjson.dumps([feature([element("S", [step("a")])])])

    error = parse_error(data, max_bytes=len(data) - 1)

    assert "larger than" in error.message
    assert parse_gauntlt(data, max_bytes=len(data)).counts()["passed"] == 1


# --- sniffing ----------------------------------------------------------------------------------------------------


def test_it_sniffs_cucumber_json_even_when_cut_in_the_middle():
    data = orjson.dumps([feature([element("S", [step("a")])])], option=orjson.OPT_INDENT_2)

    assert looks_like_cucumber(data)
    assert looks_like_cucumber(data[:60])
    assert looks_like_cucumber(b'\xef\xbb\xbf [ {"keyword": "Feature", "elements": [')


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"[]",
        b"null",
        b'[{"Target": "alpine", "Vulnerabilities": [{"VulnerabilityID": "CVE-1"}]}]',
        b'{"SchemaVersion": 2, "ArtifactName": "x"}',
        b'[{"id": 1, "value": 2}]',
        b"timeStamp,elapsed,label\n",
    ],
)
def test_it_does_not_sniff_other_files_as_cucumber(head):
    assert not looks_like_cucumber(head)
