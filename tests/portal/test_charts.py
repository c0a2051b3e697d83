"""portal.charts: server-side SVG, valid XML, escaped, one element per datum, with the values as a table."""

import xml.etree.ElementTree as ET

import pytest
from django.utils.safestring import SafeString

from portal.charts import SEVERITY_COLORS, Series, bar_chart, line_chart, stacked_bar_chart

SVG = "{http://www.w3.org/2000/svg}"
XSS = "<script>alert('x')</script>"
BUILDERS = [line_chart, bar_chart, stacked_bar_chart]


def parse(chart) -> ET.Element:
    """The chart's <svg> (the builders return a <figure> holding it and its data table)."""
    return ET.fromstring(str(chart)).find(f"./div/{SVG}svg")


def data_rows(chart) -> list[list[str]]:
    """The rows of the chart's data table, header row first, as text."""
    table = ET.fromstring(str(chart)).find("./details/div/table")
    return [["".join(cell.itertext()) for cell in row] for row in table.iter("tr")]


def elements(root: ET.Element, tag: str, css_class: str | None = None) -> list[ET.Element]:
    found = root.iter(f"{SVG}{tag}")
    return [e for e in found if css_class is None or e.get("class") == css_class]


def texts(root: ET.Element) -> list[str]:
    return [element.text or "" for element in root.iter() if element.tag in (f"{SVG}text", f"{SVG}title")]


def test_a_line_chart_draws_one_path_per_series_and_a_point_per_value():
    root = parse(line_chart(
        [Series("a", [1, 2, 3, 4]), Series("b", [4, 3, 2, 1]), Series("c", [2, 2, 2, 2])],
        x_labels=["#1", "#2", "#3", "#4"], y_unit="ms", title="p95",
    ))
    assert len(elements(root, "path")) == 3
    assert len(elements(root, "circle")) == 12
    assert len(elements(root, "rect", "swatch")) == 3  # the legend
    assert root.get("role") == "img" and "p95" in root.get("aria-label")
    assert "b · #2: 3 ms" in texts(root)  # tooltips


def test_a_line_is_broken_at_missing_values():
    root = parse(line_chart([Series("a", [1, None, 3, 4])], x_labels=["1", "2", "3", "4"]))
    (path,) = elements(root, "path")
    assert path.get("d").count("M") == 2 and path.get("d").count("L") == 1
    assert len(elements(root, "circle")) == 3


def test_a_single_point_is_still_drawn():
    for builder in BUILDERS:
        root = parse(builder([Series("only", [42])], x_labels=["#1"]))
        assert elements(root, "circle") or elements(root, "rect", "bar"), builder.__name__


def test_a_bar_chart_draws_one_bar_per_value():
    root = parse(bar_chart([Series("throughput", [1.5, 2, None, 4]), Series("errors", [0, 1, 1, 0])],
                           x_labels=["a", "b", "c", "d"], y_unit="/s"))
    assert len(elements(root, "rect", "bar")) == 7  # the None is skipped, zeros are flat bars


def test_a_stacked_bar_chart_stacks_positive_values():
    series = [Series(name, values, SEVERITY_COLORS[name]) for name, values in
              [("CRITICAL", [1, 0, 2]), ("HIGH", [3, 1, None]), ("LOW", [0, 0, 5])]]
    root = parse(stacked_bar_chart(series, x_labels=["#1", "#2", "#3"], x_links=["/r/1", "/r/2", "/r/3"]))
    bars = elements(root, "rect", "bar")
    assert len(bars) == 5
    assert {bar.get("fill") for bar in bars} == {"#7b1fa2", "#c62828", "#3d66b0"}
    # the first stack: CRITICAL 1 at the bottom, HIGH 3 above it, 4 times as tall together as CRITICAL alone
    critical, high = bars[0], bars[1]
    assert float(high.get("y")) < float(critical.get("y"))
    total = float(critical.get("height")) + float(high.get("height"))
    assert total == pytest.approx(4 * float(critical.get("height")), rel=0.02)


@pytest.mark.parametrize("builder", BUILDERS)
def test_text_is_escaped(builder):
    svg = builder([Series(XSS, [1, 2])], x_labels=[XSS, "ok"], title=XSS)
    assert isinstance(svg, SafeString)
    assert "<script" not in str(svg)
    root = parse(svg)
    assert any(XSS in text for text in texts(root))  # shown as text, after the parser unescapes it
    assert not list(root.iter(f"{SVG}script")) and not list(root.iter("script"))


def test_links_colours_and_titles_cannot_break_out_of_attributes():
    chart = str(stacked_bar_chart([Series("a", [1], color='red" onload="alert(1)')], x_labels=["x"],
                                  x_links=['/x" onclick="alert(1)'], title='t" onfocus="alert(1)'))
    figure = ET.fromstring(chart)
    assert all(not key.startswith("on") for element in figure.iter() for key in element.attrib)
    assert figure.find(".//table//a").get("href") == '/x" onclick="alert(1)'


@pytest.mark.parametrize("builder", BUILDERS)
def test_a_chart_gives_its_values_as_a_table_and_its_links_outside_the_image(builder):
    chart = builder([Series("failed", [2, None, 1.5]), Series("passed", [10, 12, 11])], x_labels=["#1", "#2", "#3"],
                    x_links=["/r/1", "/r/2", "/r/3"], y_unit="ms", title="Scenarios", x_name="Run")
    figure = ET.fromstring(str(chart))
    assert figure.find(".//table/caption").text == "Scenarios"
    rows = data_rows(chart)
    assert rows[0][:3] == ["Run", "failed (ms)", "passed (ms)"]
    assert rows[1][:3] == ["#1", "2", "10"] and rows[2][:3] == ["#2", "—", "12"] and rows[3][:3] == ["#3", "1.50", "11"]
    assert [a.get("href") for a in figure.iter("a")] == ["/r/1", "/r/2", "/r/3"]  # in the table only
    assert not list(parse(chart).iter(f"{SVG}a"))  # nothing focusable inside the role="img"
    box = figure.find("./div")
    assert box.get("class") == "chart-scroll" and box.get("tabindex") == "0" and "Scenarios" in box.get("aria-label")


def test_a_stacked_chart_table_has_the_totals():
    chart = stacked_bar_chart([Series("HIGH", [1, 0]), Series("LOW", [2, 5])], x_labels=["#1", "#2"])
    assert data_rows(chart) == [["Label", "HIGH", "LOW", "Total"], ["#1", "1", "2", "3"], ["#2", "0", "5", "5"]]


@pytest.mark.parametrize("builder", BUILDERS)
@pytest.mark.parametrize(
    "series, labels", [([], []), ([Series("a", [])], []), ([Series("a", [None, None])], ["1", "2"])]
)
def test_empty_data_says_so(builder, series, labels):
    root = parse(builder(series, x_labels=labels, title="Trend"))
    assert "No data" in texts(root)
    assert not elements(root, "path") and not elements(root, "rect", "bar")


def test_values_that_are_not_finite_are_gaps():
    root = parse(line_chart([Series("a", [1, float("nan"), float("inf"), 2])], x_labels=list("abcd")))
    assert len(elements(root, "circle")) == 2


def test_many_labels_are_thinned_and_long_ones_cut():
    labels = [f"label number {n} that is long" for n in range(100)]
    root = parse(bar_chart([Series("a", list(range(100)))], x_labels=labels))
    axis_labels = [t for t in texts(root) if t.startswith("label")]
    assert 5 <= len(axis_labels) <= 10
    assert all(len(label) <= 18 for label in axis_labels)


def test_the_y_axis_has_round_ticks_above_the_highest_value():
    root = parse(line_chart([Series("a", [0, 730, 1840])], x_labels=["1", "2", "3"], y_unit="ms"))
    ticks = [t for t in texts(root) if t.endswith("ms") and "·" not in t]
    assert ticks[0] == "0 ms" and ticks[-1] == "2000 ms"
